/**
 * Process helpers shared by the benchmarks (`bench/`) and the tests (`test/`): the repository root, waiting and
 * polling, free ports, tools on PATH, readiness over HTTP, resident memory of a process, and children that run in a
 * process group of their own with their output logged.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { request } from "undici";

export const ROOT = resolve(__dirname, "..");
/** The `aiorch` command as operators run it. */
export const AIORCH_BIN = join(ROOT, "bin", "aiorch.js");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns something truthy; throws with `what` (and `detail()`) after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => Promise<string> | string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as T;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = options.detail ? await Promise.resolve(options.detail()).catch(() => "") : "";
      throw new Error(
        `timed out after ${options.timeoutMs ?? 20_000} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}${detail ? `\n${detail}` : ""}`,
      );
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** A TCP port nothing listens on right now (the OS picks it; closed again before it is handed out). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** The path of `tool` on PATH or in the sbin folders (Debian puts nginx there), or undefined. */
export function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/sbin", "/sbin"])) {
    const candidate = join(dir, tool);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export const onPath = (tool: string): boolean => which(tool) !== undefined;

/** One GET answered 200 (the body read and dropped); bounded, so a hung server fails the probe. */
export async function httpOk(url: string): Promise<boolean> {
  const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
  await res.body.dump();
  return res.statusCode === 200;
}

/** Resident set size of a process, MB (VmRSS of /proc/<pid>/status); throws when there is no such process. */
export function residentMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

/** Resident set size in MB to one decimal, or undefined for a process that is gone (sampling what may be killed). */
export function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    return Math.round(residentMb(pid) * 10) / 10;
  } catch {
    return undefined;
  }
}

// ── children in process groups of their own ─────────────────────────────────────────────────────────────────

const groups = new Set<number>();
let exitHookInstalled = false;

/** SIGKILL a child's whole process group (the child and what it started, e.g. a fake's engines). */
function killGroup(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Last resort when the process ends without closing its children (a crash, a timeout). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of groups) killGroup(pid);
  });
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  readonly alive: boolean;
  /** Everything it wrote to stdout and stderr so far (also in its log file). */
  output(): string;
  /** Resolves with the first line matching, bounded. */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; logFile: string; cwd?: string },
): Child {
  installExitHook();
  const proc = spawn(command, [...args], {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // a process group of its own: killGroup takes the children it spawned with it
  });
  proc.on("error", () => undefined); // a failed spawn shows as a missing pid below
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${command}`);
  groups.add(pid);
  let text = "";
  let alive = true;
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onData = (chunk: Buffer) => {
    const s = chunk.toString("utf8");
    appendFileSync(options.logFile, s);
    text += s;
    if (text.length > 2_000_000) text = text.slice(-1_000_000);
    for (const w of [...waiters]) {
      const hit = text.split("\n").find((l) => w.pattern.test(l));
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  proc.stdout?.on("data", onData);
  proc.stderr?.on("data", onData);
  const exited = new Promise<number | null>((r) =>
    proc.once("exit", (code) => {
      alive = false;
      groups.delete(pid);
      r(code);
    }),
  );
  return {
    name,
    proc,
    pid,
    exited,
    get alive() {
      return alive;
    },
    output: () => text,
    line(pattern, timeoutMs = 15_000) {
      const hit = text.split("\n").find((l) => pattern.test(l));
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.findIndex((w) => w.pattern === pattern);
          if (i !== -1) waiters.splice(i, 1);
          reject(
            new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms\n${text.slice(-2_000)}`),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolveLine(l);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`${name} exited before printing ${pattern}\n${text.slice(-2_000)}`));
        });
      });
    },
    async kill(signal = "SIGKILL") {
      if (!alive) return;
      killGroup(pid, signal);
      await Promise.race([exited, sleep(5_000)]);
      if (alive) killGroup(pid, "SIGKILL");
      await Promise.race([exited, sleep(2_000)]);
    },
  };
}
