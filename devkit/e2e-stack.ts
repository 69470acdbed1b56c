/**
 * The end-to-end stack: the whole runtime on this machine as separate processes started from their entry points —
 * a dedicated Redis, `aiorch gateway` and `aiorch controller` on a runtime config rendered from a stack YAML by the
 * real loader, the Vast.ai and DataCrunch contract fakes whose instances are fake vLLM processes, and a real
 * Prometheus scraping gateway and controller with the stack's rendered alert rules. Clients are the official
 * `openai` package. Used by the end-to-end tests (test/e2e) and the soak (devkit/soak.ts, bench/soak.ts).
 *
 * Every child runs in a process group of its own and is SIGKILLed (the whole group) when the stack closes, when
 * the process exits, and on failure; every wait is bounded.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { renderAlertRules } from "../components/alert-rules";
import { ApiKeyStore } from "../core/api-keys";
import type { RuntimeConfig } from "../core/config";
import { newKeyRingEntry } from "../core/envelope";
import { fromMicroUsd, ledgerMonth } from "../core/protocol";
import { type RedisKeys, redisKeys } from "../core/redis-keys";
import {
  DC_ID,
  DC_SECRET,
  type FakeInstance,
  FakeProvider,
  PrometheusServer,
  RedisServer,
  RuntimeProcess,
  VAST_KEY,
} from "./e2e-servers";
import { AIORCH_BIN, freePort, ROOT } from "./process";
import { runtimeConfigOf, stackYaml } from "./stack-yaml";

/**
 * The Verda location the DataCrunch fake offers its instance types in (VERDA_LOCATION of test/e2e/fake-provider.ts,
 * which keeps its own copy: devkit imports nothing from test/). A stack asking elsewhere would find no offers.
 */
const VERDA_LOCATION = "FIN-03";

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
  readonly encryptionKeys = newKeyRingEntry("e2e");
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
      this.config = runtimeConfigOf(yaml, this.options.name, "e2e.yaml");
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
    const r = spawnSync(process.execPath, [AIORCH_BIN, "status", "--config", this.configFile, ...args], {
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
