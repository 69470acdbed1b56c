import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(__dirname, "..", "..");
const BIN = join(ROOT, "bin", "aiorch.js");

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the real `aiorch` entry point in a child process (one Pulumi runtime per process). */
export function aiorch(args: readonly string[], cwd: string = ROOT): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: "utf8",
    timeout: 90_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A throwaway project folder inside the repository (so the program's imports resolve to its node_modules),
 * with the real `Pulumi.yaml` and program linked in unless the test brings its own files.
 */
export function tempProject(files: Record<string, string>, options: { linkProgram?: boolean } = {}): string {
  const base = join(ROOT, ".tmp-test");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, "project-"));
  symlinkSync(join(ROOT, "Pulumi.yaml"), join(dir, "Pulumi.yaml"));
  if (options.linkProgram ?? true) symlinkSync(join(ROOT, "index.ts"), join(dir, "index.ts"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export const removeProject = (dir: string) => rmSync(dir, { recursive: true, force: true });
