import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One Pulumi runtime per process: keep every file in its own fork.
    pool: "forks",
    isolate: true,
    // A safety net for hangs, not a speed check (benchmarks check speed): the tests that run a whole `aiorch plan`
    // take 10–15 s alone and over 40 s on a loaded 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
