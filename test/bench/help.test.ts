/**
 * Every bench script answers `--help` / `-h` with its usage on stdout (exit 0, nothing started) and refuses an
 * unknown option with exit 2, naming it and pointing at --help — a typo must not start a long run on the defaults.
 */
import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../devkit/process";

const BENCHES = ["bench/gateway/main.ts", "bench/controller.ts", "bench/soak.ts", "bench/sim.ts"];

function runBench(entry: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      ["-r", "tsx/cjs", entry, ...args],
      { cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

describe.each(BENCHES)("%s", (entry) => {
  it.each(["--help", "-h"])(
    "%s prints the usage on stdout and exits 0",
    { timeout: 40_000 },
    async (flag) => {
      const { code, stdout, stderr } = await runBench(entry, [flag]);
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(/^usage: /m);
      expect(stdout).toMatch(/--help/);
      expect(stderr).toBe("");
    },
  );

  it("an unknown option exits 2, naming it and pointing at --help", { timeout: 40_000 }, async () => {
    const { code, stdout, stderr } = await runBench(entry, ["--no-such-flag"]);
    expect(code, stderr).toBe(2);
    expect(stderr).toContain("--no-such-flag");
    expect(stderr).toContain("--help");
    expect(stdout).toBe("");
  });
});
