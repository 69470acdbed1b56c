import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../devkit/process";

describe("bench:controller", () => {
  it("runs quickly with --quick --json and reports every figure", () => {
    const result = spawnSync(
      process.execPath,
      ["--expose-gc", "-r", "tsx/cjs", "bench/controller.ts", "--quick", "--json"],
      {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(result.status, result.stderr).toBe(0);
    const figures = JSON.parse(result.stdout) as Record<string, number>;
    for (const key of [
      "reactionP50Ms",
      "reactionP99Ms",
      "tickMs",
      "models",
      "workers",
      "rssStartMb",
      "rssEndMb",
    ]) {
      expect(figures[key], key).toBeGreaterThan(0);
    }
    expect(figures.models).toBe(100);
    expect(figures.workers).toBe(2000);
    expect(figures.reactionSamples).toBe(40);
    expect(figures.churnWorkersStarted).toBeGreaterThan(10); // the churn really starts and stops workers
  });
});
