/**
 * The servers of the end-to-end stack, each a separate process started from its entry point: a dedicated Redis
 * (AOF, so it survives a restart), the Vast.ai and DataCrunch contract fakes (test/e2e/fake-provider.ts) whose
 * instances are fake vLLM processes, a real Prometheus with the stack's rendered alert rules, and `aiorch gateway` /
 * `aiorch controller`. Every one is restartable after a kill -9.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { renderAlertRules } from "../components/alert-rules";
import { AIORCH_BIN, type Child, freePort, ROOT, sleep, spawnChild, until } from "./process";

/** The provider fakes as a process of their own (a test fixture: it lives with the contract fakes in test/). */
const FAKE_PROVIDER_ENTRY = join(ROOT, "test", "e2e", "fake-provider.ts");
export const VAST_KEY = "vast-e2e-key";
export const DC_ID = "dc-e2e-id";
export const DC_SECRET = "dc-e2e-secret";

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
        FAKE_PROVIDER_ENTRY,
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
        AIORCH_BIN,
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
