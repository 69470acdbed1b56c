/**
 * The end-to-end harness: the whole runtime on this machine as separate processes started from their entry
 * points — a dedicated Redis (AOF, so it survives a restart), `aiorch gateway` and `aiorch controller` on a runtime
 * config rendered from a stack YAML by the real loader, the Vast.ai and DataCrunch contract fakes
 * (test/e2e/fake-provider.ts) whose instances are fake vLLM processes, and a real Prometheus scraping gateway and
 * controller with the stack's rendered alert rules. Clients are the official `openai` package.
 *
 * Every child runs in a process group of its own and is SIGKILLed (the whole group) when the stack closes, when
 * the test process exits, and on failure; every wait is bounded.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { stringify } from "yaml";
import { renderAlertRules } from "../../components/alert-rules";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { newKeyRingEntry } from "../../core/envelope";
import { fromMicroUsd, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { ApiKeyStore } from "../../gateway/keys";
import { stackYaml } from "../stack-yaml";
import { VERDA_LOCATION } from "./fake-provider";

export const ROOT = resolve(__dirname, "..", "..");
const BIN = join(ROOT, "bin", "aiorch.js");
export const VAST_KEY = "vast-e2e-key";
export const DC_ID = "dc-e2e-id";
export const DC_SECRET = "dc-e2e-secret";

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

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

// ── child processes ─────────────────────────────────────────────────────────────────────────────────────────

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

/** Last resort when the test process ends without closing its stacks (a crash, a timeout). */
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

// ── Redis ──────────────────────────────────────────────────────────────────────────────────────────────────

/** A dedicated redis-server with the append-only file on (fsync always), so a kill -9 loses nothing. */
export class RedisServer {
  child?: Child;
  port = 0;
  private readonly dir: string;

  constructor(private readonly workDir: string) {
    this.dir = join(workDir, "redis");
    mkdirSync(this.dir, { recursive: true });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.child = spawnChild(
      "redis",
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        this.dir,
      ],
      { logFile: join(this.workDir, "redis.log") },
    );
    await this.child.line(/Ready to accept connections/, 10_000);
  }

  async kill9(): Promise<void> {
    await this.child?.kill("SIGKILL");
  }

  async restart(downMs = 0): Promise<void> {
    await this.kill9();
    if (downMs > 0) await sleep(downMs);
    await this.start();
  }
}

// ── fake providers ─────────────────────────────────────────────────────────────────────────────────────────

export interface FakeInstance {
  readonly id: string;
  readonly ownerLabel?: string;
  readonly workerId?: string;
  readonly status: string;
  readonly alive: boolean;
  readonly createdAtMs: number;
  readonly usdPerHour: number;
  readonly usd: number;
  readonly engine: { pid: number; host: string; port: number | null; model: string; alive: boolean } | null;
}

export class FakeProvider {
  child?: Child;
  url = "";

  constructor(
    readonly kind: "vastai" | "datacrunch",
    private readonly workDir: string,
    private readonly bootDelayMs: number,
  ) {}

  get apiBase(): string {
    return this.kind === "vastai" ? `${this.url}/api/v0` : `${this.url}/v1`;
  }

  async start(): Promise<void> {
    const stateDir = join(this.workDir, `${this.kind}-engines`);
    mkdirSync(stateDir, { recursive: true });
    this.child = spawnChild(
      this.kind,
      process.execPath,
      [
        "-r",
        "tsx/cjs",
        join(ROOT, "test", "e2e", "fake-provider.ts"),
        "--kind",
        this.kind,
        "--state-dir",
        stateDir,
        "--boot-delay-ms",
        String(this.bootDelayMs),
        "--api-key",
        VAST_KEY,
        "--client-id",
        DC_ID,
        "--client-secret",
        DC_SECRET,
      ],
      { logFile: join(this.workDir, `${this.kind}.log`) },
    );
    const line = await this.child.line(/^\{"port":\d+\}/, 15_000);
    this.url = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}/__e2e/${path}`, {
      method,
      headers: { "content-type": "application/json" },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(5_000),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${this.kind} control ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  instances(): Promise<FakeInstance[]> {
    return this.call("GET", "instances");
  }

  configure(tuning: {
    bootDelayMs?: number;
    bootDelayByModel?: Record<string, number>;
    createDelayMs?: number;
    engineArgs?: string[];
  }): Promise<unknown> {
    return this.call("POST", "config", tuning);
  }

  /** The provider API answers `status` to every matching call (all of /api or /v1 by default), for `forMs`. */
  fault(fault: {
    status: number;
    body?: string;
    path?: string;
    method?: string;
    times?: number;
    forMs?: number;
  }) {
    return this.call("POST", "fault", fault);
  }

  clearFaults(): Promise<unknown> {
    return this.call("POST", "clear-faults");
  }

  /** kill -9 of the engine process of a worker's instance (the worker dies; a Vast container exits). */
  killEngine(workerId: string): Promise<{ killed: boolean; instance: string | null }> {
    return this.call("POST", "kill-engine", { worker: workerId });
  }
}

// ── Prometheus ─────────────────────────────────────────────────────────────────────────────────────────────

export interface AlertView {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing" | "inactive";
  readonly activeAt?: string;
  readonly value?: string;
}

/** `for:` durations are divided by this (time compression); thresholds are compressed through rule inputs. */
export const ALERT_FOR_SCALE = 60;

function compressFor(duration: string): string {
  const m = /^(\d+)([smh])$/.exec(duration);
  if (!m) return duration;
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
  return `${Math.max(1, Math.round(seconds / ALERT_FOR_SCALE))}s`;
}

export class PrometheusServer {
  child?: Child;
  port = 0;
  private readonly dir: string;
  private readonly jobs: { job: string; targets: string[]; namespace: string }[] = [];
  private readonly ruleFiles: string[] = [];

  constructor(private readonly workDir: string) {
    this.dir = join(workDir, "prometheus");
    mkdirSync(join(this.dir, "data"), { recursive: true });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Scrape `targets` (host:port) with the stack's namespace label, as a ServiceMonitor would in the cluster. */
  scrape(job: string, targets: string[], namespace: string): void {
    this.jobs.push({ job, targets, namespace });
  }

  /**
   * Load the stack's alert rules from `renderAlertRules` (the PrometheusRule spec), `for:` durations divided by
   * ALERT_FOR_SCALE; checked with promtool first.
   */
  rules(name: string, spec: ReturnType<typeof renderAlertRules>): void {
    const groups = spec.groups.map((g) => ({
      ...g,
      rules: g.rules.map((r) => ({ ...r, ...(r.for ? { for: compressFor(r.for) } : {}) })),
    }));
    const file = join(this.dir, `${name}.rules.yml`);
    writeFileSync(file, stringify({ groups }));
    const check = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8", timeout: 20_000 });
    if (check.status !== 0) throw new Error(`promtool check rules ${file}: ${check.stdout}${check.stderr}`);
    this.ruleFiles.push(file);
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const config = {
      global: { scrape_interval: "1s", scrape_timeout: "900ms", evaluation_interval: "1s" },
      rule_files: this.ruleFiles,
      scrape_configs: this.jobs.map((j) => ({
        job_name: j.job,
        static_configs: [{ targets: j.targets, labels: { namespace: j.namespace } }],
      })),
    };
    const file = join(this.dir, "prometheus.yml");
    writeFileSync(file, stringify(config));
    const check = spawnSync("promtool", ["check", "config", file], { encoding: "utf8", timeout: 20_000 });
    if (check.status !== 0) throw new Error(`promtool check config: ${check.stdout}${check.stderr}`);
    this.child = spawnChild(
      "prometheus",
      "prometheus",
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(this.dir, "data")}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
        "--storage.tsdb.retention.time=1h",
      ],
      { logFile: join(this.workDir, "prometheus.log") },
    );
    await until("prometheus ready", async () => (await fetch(`${this.url}/-/ready`)).ok, {
      timeoutMs: 15_000,
    });
  }

  async alerts(): Promise<AlertView[]> {
    const res = await fetch(`${this.url}/api/v1/alerts`, { signal: AbortSignal.timeout(5_000) });
    return ((await res.json()) as { data: { alerts: AlertView[] } }).data.alerts;
  }

  /** Wait until an alert with these labels fires; returns it. */
  async firing(alertname: string, labels: Record<string, string>, timeoutMs = 30_000): Promise<AlertView> {
    return until(
      `alert ${alertname} ${JSON.stringify(labels)} firing in Prometheus`,
      async () =>
        (await this.alerts()).find(
          (a) =>
            a.state === "firing" &&
            a.labels.alertname === alertname &&
            Object.entries(labels).every(([k, v]) => a.labels[k] === v),
        ),
      {
        timeoutMs,
        intervalMs: 250,
        detail: async () => `alerts: ${JSON.stringify(await this.alerts().catch(() => []))}`,
      },
    );
  }

  async query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`, {
      signal: AbortSignal.timeout(5_000),
    });
    return (
      (await res.json()) as {
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      }
    ).data.result;
  }
}

// ── gateway and controller ─────────────────────────────────────────────────────────────────────────────────

/**
 * `aiorch gateway` or `aiorch controller` on fixed ports, restartable (after a kill -9, too). A gateway serves
 * its API on `port` and /metrics, /healthz, /readyz on `metricsPort`; the controller serves only the latter, on
 * `port` (its `metricsPort` too).
 */
export class RuntimeProcess {
  child?: Child;
  restarts = 0;
  readonly metricsPort: number;

  constructor(
    readonly role: "gateway" | "controller",
    readonly name: string,
    readonly port: number,
    private readonly configFile: string,
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly workDir: string,
    metricsPort?: number,
  ) {
    if (role === "gateway" && metricsPort === undefined) throw new Error("a gateway needs its metrics port");
    this.metricsPort = metricsPort ?? port;
  }

  /** The public API (gateway) or the ops server (controller). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** /metrics, /healthz, /readyz. */
  get opsUrl(): string {
    return `http://127.0.0.1:${this.metricsPort}`;
  }

  get pid(): number | undefined {
    return this.child?.alive ? this.child.pid : undefined;
  }

  async start(): Promise<void> {
    this.child = spawnChild(
      this.name,
      process.execPath,
      [
        BIN,
        this.role,
        "--config",
        this.configFile,
        "--port",
        String(this.port),
        ...(this.role === "gateway" ? ["--metrics-port", String(this.metricsPort)] : []),
        "--host",
        "127.0.0.1",
      ],
      { env: this.env(), logFile: join(this.workDir, `${this.name}.log`) },
    );
    const started = Date.now();
    await this.child.line(
      this.role === "gateway" ? /gateway: .*listening on/ : /controller: .*metrics on/,
      20_000,
    );
    await until(`${this.name} answering /healthz`, async () => (await fetch(`${this.opsUrl}/healthz`)).ok, {
      timeoutMs: Math.max(1_000, 20_000 - (Date.now() - started)),
    });
  }

  async kill9(): Promise<void> {
    await this.child?.kill("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.kill9();
    this.restarts += 1;
    await this.start();
  }

  /** Lines of its output (stderr logs, audit lines on stdout). */
  log(): string {
    return this.child?.output() ?? "";
  }
}

/** Resident set size of a process in MB, from /proc. */
export function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return Number.isFinite(kb) ? Math.round((kb / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

// ── request accounting ─────────────────────────────────────────────────────────────────────────────────────

export type Outcome =
  | { kind: "ok"; latencyMs: number; ttftMs?: number }
  | { kind: "failed"; latencyMs: number; error: string }
  | { kind: "lost"; latencyMs: number; why: string };

/**
 * Every request a scenario sends ends in exactly one bucket: succeeded (a complete answer: a finish reason, and for
 * streams the end of the stream), failed with a clear error (an HTTP status with an OpenAI error body, an SSE
 * error event, or the connection dropping because the process serving it was killed), or lost (no answer within
 * the bound, or an answer that silently stopped short). Lost must be 0.
 */
export class Tally {
  sent = 0;
  readonly outcomes: Outcome[] = [];
  private readonly pending = new Set<Promise<Outcome>>();

  get succeeded(): number {
    return this.outcomes.filter((o) => o.kind === "ok").length;
  }
  get failed(): number {
    return this.outcomes.filter((o) => o.kind === "failed").length;
  }
  get lost(): number {
    return this.outcomes.filter((o) => o.kind === "lost").length;
  }
  errors(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.outcomes) {
      const key = o.kind === "failed" ? o.error : o.kind === "lost" ? `LOST: ${o.why}` : undefined;
      if (key) out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** Track a request; the promise resolves with its outcome (never rejects). */
  track(run: () => Promise<Outcome>, boundMs = 120_000): Promise<Outcome> {
    this.sent += 1;
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const bounded = Promise.race([
      run().catch(
        (error: unknown): Outcome => ({ kind: "lost", latencyMs: Date.now() - started, why: String(error) }),
      ),
      new Promise<Outcome>((r) => {
        timer = setTimeout(
          () => r({ kind: "lost", latencyMs: Date.now() - started, why: `no answer within ${boundMs} ms` }),
          boundMs,
        );
      }),
    ]).then((o) => {
      clearTimeout(timer);
      this.outcomes.push(o);
      this.pending.delete(bounded);
      return o;
    });
    this.pending.add(bounded);
    return bounded;
  }

  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  add(other: Tally): void {
    this.sent += other.sent;
    this.outcomes.push(...other.outcomes);
  }
}

/** What a thrown error tells the client, or undefined when it is not a clear error. */
export function clearError(error: unknown): string | undefined {
  if (error instanceof OpenAI.APIConnectionTimeoutError) return undefined; // the client gave up: that is lost
  if (error instanceof OpenAI.APIConnectionError) return "connection dropped";
  if (error instanceof OpenAI.APIError) {
    const body = error.error as { code?: string; message?: string } | undefined;
    const code = error.code ?? body?.code ?? "?";
    if (error.status === undefined) return `SSE error event (${code})`; // an error frame inside the stream
    return `HTTP ${error.status} ${code}`;
  }
  const message = String((error as Error)?.message ?? error);
  // undici's body stream ending because the server's socket closed mid-answer
  if (/terminated|other side closed|socket hang up|ECONNRESET|premature close/i.test(message))
    return "connection dropped";
  return undefined;
}

export interface ChatOptions {
  readonly model: string;
  readonly stream?: boolean;
  readonly maxTokens?: number;
  readonly prompt?: string;
  /** Called with the number of content chunks received so far (streams). */
  readonly onChunk?: (chunks: number) => void;
  /** Called with the error a failed request threw (to look at its status and headers). */
  readonly onError?: (error: unknown) => void;
  readonly timeoutMs?: number;
}

/** One chat completion through the openai client, classified. */
export async function chat(client: OpenAI, options: ChatOptions): Promise<Outcome> {
  const started = Date.now();
  const messages = [{ role: "user" as const, content: options.prompt ?? "say something" }];
  try {
    if (options.stream) {
      const stream = await client.chat.completions.create(
        {
          model: options.model,
          messages,
          stream: true,
          max_tokens: options.maxTokens ?? 8,
          stream_options: { include_usage: true },
        },
        { timeout: options.timeoutMs ?? 90_000, maxRetries: 0 },
      );
      let finished = false;
      let chunks = 0;
      let ttftMs: number | undefined;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) {
          chunks += 1;
          ttftMs ??= Date.now() - started;
          options.onChunk?.(chunks);
        }
        if (chunk.choices[0]?.finish_reason) finished = true;
      }
      if (!finished)
        return { kind: "lost", latencyMs: Date.now() - started, why: "stream ended without a finish" };
      return { kind: "ok", latencyMs: Date.now() - started, ...(ttftMs !== undefined ? { ttftMs } : {}) };
    }
    const res = await client.chat.completions.create(
      { model: options.model, messages, max_tokens: options.maxTokens ?? 8 },
      { timeout: options.timeoutMs ?? 90_000, maxRetries: 0 },
    );
    if (!res.choices[0]?.finish_reason || typeof res.choices[0].message.content !== "string")
      return { kind: "lost", latencyMs: Date.now() - started, why: "answer without a finish" };
    return { kind: "ok", latencyMs: Date.now() - started };
  } catch (error) {
    options.onError?.(error);
    const clear = clearError(error);
    return clear
      ? { kind: "failed", latencyMs: Date.now() - started, error: clear }
      : { kind: "lost", latencyMs: Date.now() - started, why: `unclear error: ${String(error)}` };
  }
}

// ── the stack ─────────────────────────────────────────────────────────────────────────────────────────────

export interface StackOptions {
  /** Stack name: owner label `ai-orchestrator-<name>`, key prefix `<name>:`, namespace `e2e-<name>`. */
  readonly name: string;
  /** The models list (YAML flow sequence) of the stack file. */
  readonly models: string;
  readonly budgetUsd?: number;
  /** Extra gateways beyond `g1` (e.g. one to kill). */
  readonly gateways?: number;
  readonly bootDelayMs?: number;
  readonly alertRules?: { gpuIdleAlertSeconds?: number; coldStartAlertSeconds?: number };
}

export interface WorkerRow {
  readonly id: string;
  readonly model: string;
  readonly provider: string;
  readonly state: string;
  readonly providerId?: string;
  readonly detail?: string;
  readonly createdAtMs: number;
  readonly readyAtMs?: number;
}

export class E2EStack {
  readonly workDir: string;
  readonly redisServer: RedisServer;
  readonly vast: FakeProvider;
  readonly datacrunch: FakeProvider;
  readonly prometheus: PrometheusServer;
  readonly keys: RedisKeys;
  readonly namespace: string;
  readonly ownerLabel: string;
  config!: RuntimeConfig;
  configFile = "";
  apiKey = "";
  redis!: Redis;
  controller!: RuntimeProcess;
  readonly gateways: RuntimeProcess[] = [];
  /** AIORCH_ENCRYPTION_KEYS of the stack's processes (one ring, as the cluster's queue-encryption Secret). */
  private readonly encryptionKeys = newKeyRingEntry("e2e");
  private closed = false;

  constructor(readonly options: StackOptions) {
    this.workDir = mkdtempSync(join(tmpdir(), `aiorch-e2e-${options.name}-`));
    this.redisServer = new RedisServer(this.workDir);
    this.vast = new FakeProvider("vastai", this.workDir, options.bootDelayMs ?? 1_500);
    this.datacrunch = new FakeProvider("datacrunch", this.workDir, options.bootDelayMs ?? 1_500);
    this.prometheus = new PrometheusServer(this.workDir);
    this.keys = redisKeys(`${options.name}:`);
    this.namespace = `e2e-${options.name}`;
    this.ownerLabel = `ai-orchestrator-${options.name}`;
  }

  /** Where the processes' logs are (kept when a test fails). */
  get logs(): string {
    return this.workDir;
  }

  private env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_OPTIONS: "",
      REDIS_URL: this.redisServer.url,
      VASTAI_API_KEY: VAST_KEY,
      DATACRUNCH_CLIENT_ID: DC_ID,
      DATACRUNCH_CLIENT_SECRET: DC_SECRET,
      // the stack seals queued jobs (security.encryptQueued, on by default): every gateway shares the ring
      AIORCH_ENCRYPTION_KEYS: this.encryptionKeys,
    };
  }

  async start(): Promise<void> {
    const missing = ["redis-server", "prometheus", "promtool"].filter(
      (bin) => spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0,
    );
    if (missing.length > 0)
      throw new Error(
        `the end-to-end suite needs ${missing.join(", ")} on PATH (Debian: apt-get install redis-server prometheus)`,
      );
    try {
      await Promise.all([this.redisServer.start(), this.vast.start(), this.datacrunch.start()]);
      const yaml = stackYaml({
        namespace: this.namespace,
        dataClass: "public",
        budget: `{ monthlyUsd: ${this.options.budgetUsd ?? 100}, alertAtPercent: [50, 80, 100] }`,
        providers: `{ vastai: { apiBase: "${this.vast.apiBase}" }, datacrunch: { apiBase: "${this.datacrunch.apiBase}", location: ${VERDA_LOCATION} } }`,
        models: this.options.models.replace(/\s*\n\s*/g, " "),
        redis: `{ keyPrefix: "${this.keys.prefix}" }`,
        gateway:
          "{ host: ai.example.com, limits: { rpm: 1000000, tpm: 100000000 }, keepAliveSeconds: 1, maxWaitingPerModel: 1000 }",
      });
      this.config = renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "e2e.yaml")), this.options.name);
      this.configFile = join(this.workDir, "runtime.json");
      writeFileSync(this.configFile, JSON.stringify(this.config, null, 2));

      this.redis = new Redis(this.redisServer.url, { maxRetriesPerRequest: 3 });
      this.redis.on("error", () => undefined);
      this.apiKey = (await new ApiKeyStore(this.redis, this.keys).create({ name: "e2e" })).key;

      // the controller's, then each gateway's API and ops ports
      const ports = await Promise.all(
        Array.from({ length: 3 + 2 * (this.options.gateways ?? 0) }, () => freePort()),
      );
      this.controller = new RuntimeProcess(
        "controller",
        "controller",
        ports[0]!,
        this.configFile,
        () => this.env(),
        this.workDir,
      );
      for (let i = 0; i <= (this.options.gateways ?? 0); i++)
        this.gateways.push(
          new RuntimeProcess(
            "gateway",
            `g${i + 1}`,
            ports[1 + 2 * i]!,
            this.configFile,
            () => this.env(),
            this.workDir,
            ports[2 + 2 * i]!,
          ),
        );
      // both on their ops ports, as the ServiceMonitors in the cluster (the gateway's API port serves no /metrics)
      this.prometheus.scrape("controller", [`127.0.0.1:${this.controller.metricsPort}`], this.namespace);
      this.prometheus.scrape(
        "gateway",
        this.gateways.map((g) => `127.0.0.1:${g.metricsPort}`),
        this.namespace,
      );
      this.prometheus.rules(
        this.options.name,
        renderAlertRules({
          namespace: this.namespace,
          stack: this.options.name,
          budgetAlertAtPercent: this.config.budget?.alertAtPercent ?? [],
          modelBudgets: this.config.models.some((m) => m.monthlyBudgetUsd !== undefined),
          ...this.options.alertRules,
        }),
      );
      await Promise.all([
        this.controller.start(),
        ...this.gateways.map((g) => g.start()),
        this.prometheus.start(),
      ]);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  gateway(name = "g1"): RuntimeProcess {
    const g = this.gateways.find((x) => x.name === name);
    if (!g) throw new Error(`no gateway ${name}`);
    return g;
  }

  /** The official client against one gateway; no client-side retries, so every outcome is the gateway's. */
  client(gateway = "g1"): OpenAI {
    return new OpenAI({ baseURL: `${this.gateway(gateway).url}/v1`, apiKey: this.apiKey, maxRetries: 0 });
  }

  /** Every worker record (live and terminated) of the registry. */
  async workers(model?: string): Promise<WorkerRow[]> {
    const ids: string[] = [];
    let cursor = "0";
    do {
      const [next, found] = await this.redis.scan(
        cursor,
        "MATCH",
        `${this.keys.prefix}worker:*`,
        "COUNT",
        500,
      );
      cursor = next;
      ids.push(...found);
    } while (cursor !== "0");
    const rows: WorkerRow[] = [];
    for (const key of ids) {
      const h = await this.redis.hgetall(key);
      if (!h.id || !h.model || !h.state || !h.provider) continue;
      rows.push({
        id: h.id,
        model: h.model,
        provider: h.provider,
        state: h.state,
        ...(h.providerId ? { providerId: h.providerId } : {}),
        ...(h.detail ? { detail: h.detail } : {}),
        createdAtMs: Number(h.createdAtMs),
        ...(h.readyAtMs ? { readyAtMs: Number(h.readyAtMs) } : {}),
      });
    }
    return rows
      .filter((r) => model === undefined || r.model === model)
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  /**
   * Requests the controller counts as in flight for a model: the unexpired members of `inflight(model)` — one per
   * request (`<worker>|<request>`), or per gateway replica and worker with a count (`<worker>|<replica>|<n>`).
   */
  async inflight(model: string): Promise<{ requests: number; latestExpiryMs: number }> {
    const members = await this.redis.zrangebyscore(
      this.keys.inflight(model),
      Date.now(),
      "+inf",
      "WITHSCORES",
    );
    let requests = 0;
    let latestExpiryMs = 0;
    for (let i = 0; i < members.length; i += 2) {
      const parts = members[i]!.split("|");
      const count = parts.length >= 3 ? Number(parts.at(-1)) : 1;
      requests += Number.isInteger(count) && count > 0 ? count : 1;
      latestExpiryMs = Math.max(latestExpiryMs, Number(members[i + 1]));
    }
    return { requests, latestExpiryMs };
  }

  async routes(model: string): Promise<string[]> {
    return this.redis.hkeys(this.keys.routes(model));
  }

  /** Ledger USD per worker this month. */
  async ledger(): Promise<Record<string, number>> {
    const fields = await this.redis.hgetall(this.keys.spendMonth(ledgerMonth(Date.now())));
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(fields))
      if (k.startsWith("worker:")) out[k.slice(7)] = fromMicroUsd(Number(v));
    return out;
  }

  /** Instances of this stack at both fakes, with the provider they are at. */
  async instances(): Promise<(FakeInstance & { provider: "vastai" | "datacrunch" })[]> {
    const [v, d] = await Promise.all([this.vast.instances(), this.datacrunch.instances()]);
    return [
      ...v.map((i) => ({ ...i, provider: "vastai" as const })),
      ...d.map((i) => ({ ...i, provider: "datacrunch" as const })),
    ].filter((i) => i.ownerLabel === this.ownerLabel);
  }

  /**
   * The instance accounting of a model: every instance the fakes created for it, terminated or still running,
   * matched against the registry — the same instances, running exactly where the registry has a live worker.
   */
  async instanceAccount(model: string): Promise<InstanceAccount> {
    const workers = await this.workers();
    const byId = new Map(workers.map((w) => [w.id, w]));
    const all = await this.instances();
    const mine = all.filter((i) => i.workerId !== undefined && byId.get(i.workerId)?.model === model);
    const unknown = all.filter((i) => i.workerId === undefined || !byId.has(i.workerId));
    const mismatches: string[] = [];
    for (const i of mine) {
      const w = byId.get(i.workerId!)!;
      const registryLive = w.state !== "terminated";
      if (registryLive !== i.alive)
        mismatches.push(
          `${i.provider} ${i.id} (worker ${w.id}) is ${i.status} but the registry says ${w.state}`,
        );
      if (w.providerId !== undefined && w.providerId !== i.id)
        mismatches.push(`worker ${w.id} records ${w.providerId}, the instance carrying its tag is ${i.id}`);
    }
    for (const w of workers.filter((x) => x.model === model && x.providerId))
      if (!mine.some((i) => i.id === w.providerId))
        mismatches.push(`worker ${w.id} records ${w.providerId}, which no fake ever created`);
    return {
      created: mine.length,
      terminated: mine.filter((i) => !i.alive).length,
      running: mine.filter((i) => i.alive).length,
      registryLive: workers.filter((w) => w.model === model && w.state !== "terminated").length,
      orphans: unknown.filter((i) => i.alive).length,
      mismatches,
      instances: mine,
    };
  }

  /** kill -9 of the engine serving a worker. */
  killEngine(worker: WorkerRow): Promise<unknown> {
    return (worker.provider === "datacrunch" ? this.datacrunch : this.vast).killEngine(worker.id);
  }

  /** `aiorch status` as an operator runs it, against this stack. */
  status(args: string[] = ["--json"]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, "status", "--config", this.configFile, ...args], {
      cwd: ROOT,
      env: this.env(),
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async close(options: { keepLogs?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.redis?.disconnect();
    await Promise.allSettled([
      this.prometheus.child?.kill(),
      this.controller?.child?.kill(),
      ...this.gateways.map((g) => g.child?.kill()),
      this.vast.child?.kill(),
      this.datacrunch.child?.kill(),
      this.redisServer.child?.kill(),
    ]);
    if (!options.keepLogs) rmSync(this.workDir, { recursive: true, force: true });
  }
}

export interface InstanceAccount {
  readonly created: number;
  readonly terminated: number;
  readonly running: number;
  /** Live (not terminated) workers of the model in the registry. */
  readonly registryLive: number;
  /** Live instances of the stack that no worker record owns (all models). */
  readonly orphans: number;
  readonly mismatches: string[];
  readonly instances: (FakeInstance & { provider: "vastai" | "datacrunch" })[];
}

// ── the scenario table ────────────────────────────────────────────────────────────────────────────────────

export interface ScenarioRow {
  scenario: string;
  sent: number;
  succeeded: number;
  failed: number;
  lost: number;
  created: number;
  terminated: number;
  running: number;
  seconds: number;
  errors: Record<string, number>;
}

export function scenarioRow(
  scenario: string,
  tally: Tally,
  account: Pick<InstanceAccount, "created" | "terminated" | "running">,
  startedMs: number,
): ScenarioRow {
  return {
    scenario,
    sent: tally.sent,
    succeeded: tally.succeeded,
    failed: tally.failed,
    lost: tally.lost,
    created: account.created,
    terminated: account.terminated,
    running: account.running,
    seconds: Math.round((Date.now() - startedMs) / 100) / 10,
    errors: tally.errors(),
  };
}

/** The scenario table as Markdown (README) — also appended to E2E_REPORT when that is set. */
export function renderScenarioTable(rows: readonly ScenarioRow[]): string {
  const head =
    "| scenario | requests sent | succeeded | failed (clear error) | lost | instances created | terminated | running | duration |\n" +
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.sent} | ${r.succeeded} | ${r.failed}${
        Object.keys(r.errors).length > 0
          ? ` (${Object.entries(r.errors)
              .map(([k, v]) => `${v}× ${k}`)
              .join("; ")})`
          : ""
      } | ${r.lost} | ${r.created} | ${r.terminated} | ${r.running} | ${r.seconds} s |`,
  );
  return [head, ...lines].join("\n");
}

export function writeReport(title: string, rows: readonly ScenarioRow[]): void {
  const table = renderScenarioTable(rows);
  process.stderr.write(`\n${title}\n${table}\n`);
  const file = process.env.E2E_REPORT;
  if (file) appendFileSync(file, `\n### ${title}\n\n${table}\n`);
}
