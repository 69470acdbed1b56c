/**
 * Process control of the gateway benchmark: every server it measures runs in a process of its own — the fake vLLM
 * upstream, nginx, the bare reference proxy, the gateway (bundled as deployed) — and so does wrk. Each child is
 * registered so that one `cleanup()` stops them all and removes what the run left behind (its Redis keys, a git
 * worktree, the temp dir), however the run ends.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildSync } from "esbuild";
import { request } from "undici";
import { newKeyRingEntry } from "../../core/envelope";
import { GATEWAY_NODE_FLAGS, GATEWAY_PROCESS_ENV } from "../../core/process-env";
import { runtimeBuildOptions } from "../../core/runtime-build";
import { freePort, httpOk, ROOT, sleep, which } from "../../devkit/process";
import { runtimeConfigOf, stackYaml } from "../../devkit/stack-yaml";
import {
  BARE_ENTRY,
  FAKE_ENTRY,
  GATEWAY_ENTRY,
  type GatewayLaunch,
  MODEL,
  progress,
  REDIS_URL,
} from "./settings";

// ── child processes and cleanup ───────────────────────────────────────────────────────────────────────────

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Last lines of stderr (and stdout when not parsed), for failure messages. */
  readonly tail: string[];
  exited: boolean;
  readonly exit: Promise<void>;
}

/** A server the benchmark started: its child process and where it listens. */
export interface Server {
  readonly child: Child;
  readonly origin: string;
}

const children: Child[] = [];
/** What the run leaves besides its children, undone by `cleanup()` in this order. */
const leftovers: {
  removeWorktree?: () => void;
  deleteRedisKeys?: () => Promise<void>;
  tmpDir?: string;
} = {};

/** The run's temp dir (bundles, configs, nginx prefix, wrk scripts), removed by `cleanup()`. */
export function makeTempDir(): string {
  leftovers.tmpDir = mkdtempSync(join(tmpdir(), "aiorch-bench-"));
  return leftovers.tmpDir;
}

export function onCleanupDeleteRedisKeys(deleteKeys: () => Promise<void>): void {
  leftovers.deleteRedisKeys = deleteKeys;
}

export function onCleanupRemoveWorktree(removeWorktree: () => void): void {
  leftovers.removeWorktree = removeWorktree;
}

export function startChild(
  name: string,
  command: string,
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; stdout?: "pipe" | "ignore" } = {},
): Child {
  const proc = spawn(command, argv, {
    cwd: ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", options.stdout ?? "pipe", "pipe"],
  });
  const tail: string[] = [];
  const keep = (data: Buffer) => {
    for (const line of data.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
    }
  };
  proc.stderr?.on("data", keep);
  let markExited: () => void = () => undefined;
  const exit = new Promise<void>((r) => {
    markExited = r;
  });
  const child: Child = { name, proc, tail, exited: false, exit };
  proc.once("exit", () => {
    child.exited = true;
    markExited();
  });
  proc.once("error", (error) => {
    tail.push(`spawn failed: ${error.message}`);
    child.exited = true;
    markExited();
  });
  children.push(child);
  return child;
}

/** A child that ended on its own (wrk) needs no stopping at cleanup. */
export function forgetChild(child: Child): void {
  children.splice(children.indexOf(child), 1);
}

export async function stopChild(child: Child): Promise<void> {
  if (child.exited) return;
  child.proc.kill("SIGTERM");
  await Promise.race([child.exit, sleep(5_000)]);
  if (!child.exited) {
    child.proc.kill("SIGKILL");
    await Promise.race([child.exit, sleep(2_000)]);
  }
}

let cleaning: Promise<void> | undefined;
/** Stop every child (last started first), delete the Redis keys and the temp dir. Safe to call twice. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of [...children].reverse()) await stopChild(child);
    leftovers.removeWorktree?.();
    await leftovers
      .deleteRedisKeys?.()
      .catch((error: Error) => progress(`redis cleanup failed: ${error.message}`));
    if (leftovers.tmpDir) rmSync(leftovers.tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}

let interrupted = false;
/** Whether SIGINT or SIGTERM ended the run (then a failure under main's feet is no news). */
export const wasInterrupted = (): boolean => interrupted;

/** Clean up on SIGINT / SIGTERM (exit 130), and kill what is left when the process leaves without `cleanup()`. */
export function installCleanupHooks(): void {
  // Last resort when the process leaves without `cleanup()` finishing (an uncaught throw, process.exit).
  process.on("exit", () => {
    for (const child of children) if (!child.exited) child.proc.kill("SIGKILL");
    if (leftovers.tmpDir) rmSync(leftovers.tmpDir, { recursive: true, force: true });
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      interrupted = true;
      progress(`${signal}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }
}

function describeExit(child: Child): string {
  const code = child.proc.exitCode ?? child.proc.signalCode;
  return `${child.name} exited (${code}):\n  ${child.tail.join("\n  ")}`;
}

/** Poll until `probe` resolves true; fails early when `child` exits. */
async function waitFor(what: string, child: Child, probe: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(`${what}: ${describeExit(child)}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms\n  ${child.tail.join("\n  ")}`);
}

/** A command run on one CPU through taskset (same pid: taskset execs it), or as it is without a CPU. */
export function pinned(cpu: number | undefined, command: string, argv: string[]): [string, string[]] {
  if (cpu === undefined) return [command, argv];
  return [which("taskset")!, ["-c", String(cpu), command, ...argv]];
}

// ── the servers ───────────────────────────────────────────────────────────────────────────────────────────

export async function startFake(): Promise<Server> {
  // records of every TTFT stream (four paths × 330), for the split of each into its way there and back
  return startPrintingPort("fake vLLM", [
    FAKE_ENTRY,
    ...["--host", "127.0.0.1", "--port", "0", "--model", MODEL, "--record-limit", "5000"],
  ]);
}

/** The reference path: a bare fastify + undici pass-through to the fake (bench/gateway/bare-proxy.ts). */
export async function startBare(fakeOrigin: string): Promise<Server> {
  return startPrintingPort("bare proxy", [BARE_ENTRY, fakeOrigin, "0"]);
}

/** A TypeScript server run through tsx that prints `{"port":N}` as its first line once it listens. */
async function startPrintingPort(name: string, argv: string[]): Promise<Server> {
  const child = startChild(name, process.execPath, ["-r", "tsx/cjs", ...argv]);
  const port = await new Promise<number>((resolvePort, reject) => {
    let buffered = "";
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start: ${child.tail.join(" ")}`)),
      30_000,
    );
    child.proc.stdout?.on("data", (data: Buffer) => {
      buffered += data.toString("utf8");
      const line = buffered.split("\n")[0];
      if (!buffered.includes("\n") || line === undefined) return;
      clearTimeout(timer);
      try {
        resolvePort((JSON.parse(line) as { port: number }).port);
      } catch {
        reject(new Error(`${name} printed ${line}`));
      }
    });
    void child.exit.then(() => reject(new Error(describeExit(child))));
  });
  return { child, origin: `http://127.0.0.1:${port}` };
}

/** Set the fake's timing (`ttftMs`, `interTokenDelayMs`) for the step that follows. */
export async function configureFake(origin: string, tuning: Record<string, number>): Promise<void> {
  const res = await request(`${origin}/__config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(tuning),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`fake /__config answered ${res.statusCode}: ${text}`);
}

export async function startNginx(dir: string, upstreamPort: number): Promise<Server> {
  const nginx = which("nginx");
  if (!nginx) throw new Error("nginx not found (apt-get install nginx-light)");
  const port = await freePort();
  const prefix = join(dir, "nginx");
  mkdirSync(join(prefix, "logs"), { recursive: true });
  const temp = (name: string) => `${name}_temp_path ${join(prefix, name)};`;
  // One worker, like the one gateway process it is compared with; as root the worker stays root so it can
  // use the 0700 temp dir.
  const conf = `
daemon off;
master_process on;
worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${join(prefix, "nginx.pid")};
error_log ${join(prefix, "logs/error.log")} warn;
events { worker_connections 8192; }
http {
  access_log off;
  ${temp("client_body")} ${temp("proxy")} ${temp("fastcgi")} ${temp("uwsgi")} ${temp("scgi")}
  upstream fake {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const confPath = join(prefix, "nginx.conf");
  writeFileSync(confPath, conf);
  const child = startChild("nginx", nginx, [
    "-p",
    prefix,
    "-e",
    join(prefix, "logs/error.log"),
    "-c",
    confPath,
  ]);
  const origin = `http://127.0.0.1:${port}`;
  await waitFor("nginx", child, () => httpOk(`${origin}/health`));
  return { child, origin };
}

/**
 * The gateway bundled as the RuntimeBundle component bundles it for the cluster (esbuild, CommonJS, minified),
 * targeting this machine's Node; identifiers stay readable when profiling. Built once per run.
 */
export function gatewayBundle(
  dir: string,
  readableNames: boolean,
  entry = GATEWAY_ENTRY,
  outfile = join(dir, "gateway.js"),
): string {
  if (existsSync(outfile)) return outfile;
  buildSync({
    ...runtimeBuildOptions(entry, `node${process.versions.node.split(".")[0]}`),
    // readable names in profiles: every minification but the identifiers'
    ...(readableNames ? { minify: false, minifyWhitespace: true, minifySyntax: true } : {}),
    outfile,
  });
  return outfile;
}

/** The bench's stack: one chat model on the fake upstream, limits out of the way. */
export function benchStackYaml(fakeOrigin: string, prefix: string): string {
  return stackYaml({
    providers: `{ local: { url: "${fakeOrigin}/v1" } }`,
    models: `[{ name: ${MODEL}, kind: chat, source: bench/chat, gpu: [RTX_3090], providers: [local] }]`,
    redis: `{ keyPrefix: "${prefix}" }`,
    gateway: "{ host: bench.invalid, limits: { rpm: 1000000000, tpm: 1000000000000 } }",
  });
}

/**
 * A gateway process: its API on `origin`, its /metrics, /healthz, /readyz on `opsOrigin` (a port of its own,
 * given as METRICS_PORT; a revision from before the ops port ignores that and serves them on `origin`).
 */
export async function startGateway(
  dir: string,
  fakeOrigin: string,
  prefix: string,
  launch: GatewayLaunch,
  options: { bundle?: string; cpu?: number; runtimeJson?: string } = {},
): Promise<Server & { opsOrigin: string }> {
  // another revision's gateway reads the config its own code renders (its schema may lack today's fields)
  const runtimeJson =
    options.runtimeJson ?? JSON.stringify(runtimeConfigOf(benchStackYaml(fakeOrigin, prefix), "bench"));
  const configPath = join(dir, options.runtimeJson ? "runtime-against.json" : "runtime.json");
  writeFileSync(configPath, runtimeJson);
  const port = await freePort();
  const metricsPort = await freePort();
  const profDir = launch.cpuProfDir;
  const nodeFlags = [
    ...(launch.nodeFlags?.split(/\s+/).filter(Boolean) ?? GATEWAY_NODE_FLAGS),
    ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profDir)}`] : []),
  ];
  const entry = launch.fromSource
    ? ["-r", "tsx/cjs", GATEWAY_ENTRY]
    : [options.bundle ?? gatewayBundle(dir, profDir !== undefined)];
  const argv = [
    ...nodeFlags,
    ...entry,
    "--config",
    configPath,
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
  ];
  // The audit log (one JSON line per request on stdout) goes to /dev/null.
  const child = startChild("gateway", ...pinned(options.cpu, process.execPath, argv), {
    env: {
      ...process.env,
      ...GATEWAY_PROCESS_ENV,
      REDIS_URL,
      METRICS_PORT: String(metricsPort),
      // the stack seals queued jobs (security.encryptQueued, on by default) and the gateway refuses without a ring
      AIORCH_ENCRYPTION_KEYS: newKeyRingEntry("bench"),
    },
    stdout: "ignore",
  });
  const origin = `http://127.0.0.1:${port}`;
  let opsOrigin = `http://127.0.0.1:${metricsPort}`;
  await waitFor("gateway", child, async () => {
    if (await httpOk(`${opsOrigin}/readyz`).catch(() => false)) return true;
    // an older revision (--against): health and metrics on its API port
    if (!(await httpOk(`${origin}/readyz`).catch(() => false))) return false;
    opsOrigin = origin;
    return true;
  });
  return { child, origin, opsOrigin };
}
