/**
 * A provider contract fake (Vast.ai or DataCrunch/Verda, from test/fakes) as a process of its own whose instances
 * really run: every instance the controller rents starts a fake vLLM process (test/fakes/vllm-upstream.ts) with
 * the worker's served model name, API key and the TLS certificate and key the controller handed the provider
 * (AIORCH_TLS_CERT_B64 / AIORCH_TLS_KEY_B64 in the instance's environment, exactly what the real start-up script
 * decodes), after a configurable boot delay. The instance's reported address is the engine's:
 * - Vast.ai: `public_ipaddr` 127.0.0.1 and the engine's port as the host port of `8000/tcp`;
 * - Verda: `ip` 127.B.C.D, a loopback address of its own, with the engine on port 8000 (the adapter always
 *   reads port 8000 there, as on a real VM).
 * Destroying an instance stops its engine; an engine that dies by itself makes a Vast instance `exited` (its
 * container stopped) and leaves a Verda VM `running` (a VM whose engine container died).
 *
 *   node -r tsx/cjs test/e2e/fake-provider.ts --kind vastai|datacrunch --state-dir DIR [--boot-delay-ms N]
 *         [--api-key K] [--client-id ID --client-secret S]
 *
 * prints `{"port":N}` once listening. Control routes (never faulted, no auth), JSON:
 * - `GET  /__e2e/instances`          every instance ever created: status, tag, cost so far, engine
 * - `POST /__e2e/config`             `{ bootDelayMs?, bootDelayByModel?, createDelayMs?, engineArgs? }`
 * - `POST /__e2e/fault`              `{ status, body?, path?, method?, times?, forMs? }` → the API answers it
 * - `POST /__e2e/clear-faults`
 * - `POST /__e2e/kill-engine`        `{ instance? | worker? }` SIGKILL of the engine process
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { VerdaFake, type VerdaTypeSeed } from "../fakes/datacrunch-api";
import type { RecordedRequest, Reply } from "../fakes/fake-api-server";
import { joinedEnvValue, VastAiFake, type VastOfferSeed } from "../fakes/vastai-api";

const ROOT = resolve(__dirname, "..", "..");
const VLLM = join(ROOT, "test", "fakes", "vllm-upstream.ts");
const TLS_CERT_ENV = "AIORCH_TLS_CERT_B64";
const TLS_KEY_ENV = "AIORCH_TLS_KEY_B64";

/** Vast.ai asks: cheap RTX 3090s for most models, very expensive RTX 4090s (a budget runs out in seconds). */
export const VAST_OFFERS: VastOfferSeed[] = [
  ...Array.from({ length: 40 }, (_, i) => ({
    id: 1001 + i,
    gpu_name: "RTX 3090",
    num_gpus: 1,
    dph_base: Math.round((0.2 + i * 0.002) * 1000) / 1000,
    storage_dph: 0.01,
    reliability: 0.995,
    verified: true,
  })),
  ...Array.from({ length: 6 }, (_, i) => ({
    id: 2001 + i,
    gpu_name: "RTX 4090",
    num_gpus: 1,
    dph_base: 36,
    storage_dph: 0.01,
    reliability: 0.995,
    verified: true,
  })),
];

/** Verda instance types: an RTX A6000 dearer than the Vast 3090s (so Vast is preferred while it works). */
export const VERDA_TYPES: VerdaTypeSeed[] = [
  { instance_type: "1A6000.10V", price_per_hour: 0.49, gpus: 1, gpuMemoryGb: 48 },
  { instance_type: "1A100.22V", price_per_hour: 1.29, gpus: 1, gpuMemoryGb: 80 },
];
export const VERDA_LOCATION = "FIN-03";

interface Tuning {
  bootDelayMs: number;
  bootDelayByModel: Record<string, number>;
  /** The create call takes effect at once but is answered only after this long. */
  createDelayMs: number;
  /** Extra arguments for every new engine (e.g. --inter-token-delay-ms 20). */
  engineArgs: string[];
}

interface Engine {
  readonly instance: string;
  readonly model: string;
  readonly proc: ChildProcess;
  port?: number;
  host: string;
  /** We stopped it (destroy), as opposed to it dying. */
  stopping: boolean;
  exited: boolean;
}

interface EngineLaunch {
  model: string;
  apiKey?: string;
  certPem?: string;
  keyPem?: string;
}

/** Tokens of a POSIX shell command line (quotes and backslashes; enough for the start-up script). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word += line.slice(i + 1, end === -1 ? line.length : end);
      i = end === -1 ? line.length : end;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && i + 1 < line.length) i++;
        word += line[i];
        i++;
      }
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const after = (words: readonly string[], flag: string): string | undefined => {
  const at = words.indexOf(flag);
  return at === -1 ? undefined : words[at + 1];
};

const decode = (b64: string | undefined): string | undefined =>
  b64 ? Buffer.from(b64, "base64").toString("utf8") : undefined;

class Engines {
  readonly byInstance = new Map<string, Engine>();
  readonly tuning: Tuning = { bootDelayMs: 1_500, bootDelayByModel: {}, createDelayMs: 0, engineArgs: [] };

  constructor(
    private readonly stateDir: string,
    private readonly onDeath: (instance: string) => void,
  ) {}

  /** Start the engine of an instance; resolves with its port once it listens (it answers 503 while booting). */
  start(instance: string, launch: EngineLaunch, host: string, port: number): Promise<number> {
    const dir = join(this.stateDir, instance.replace(/[^\w.-]/g, "_"));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tls: string[] = [];
    if (launch.certPem && launch.keyPem) {
      writeFileSync(join(dir, "cert.pem"), launch.certPem, { mode: 0o600 });
      writeFileSync(join(dir, "key.pem"), launch.keyPem, { mode: 0o600 });
      tls.push("--ssl-certfile", join(dir, "cert.pem"), "--ssl-keyfile", join(dir, "key.pem"));
    }
    const boot = this.tuning.bootDelayByModel[launch.model] ?? this.tuning.bootDelayMs;
    const args = [
      "-r",
      "tsx/cjs",
      VLLM,
      "--host",
      host,
      "--port",
      String(port),
      "--model",
      launch.model,
      "--boot-delay-ms",
      String(boot),
      ...(launch.apiKey ? [`--api-key=${launch.apiKey}`] : []),
      ...tls,
      ...this.tuning.engineArgs,
    ];
    const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const engine: Engine = { instance, model: launch.model, proc, host, stopping: false, exited: false };
    this.byInstance.set(instance, engine);
    proc.stderr?.on("data", (d: Buffer) => process.stderr.write(`engine ${instance}: ${d}`));
    return new Promise((resolvePort, reject) => {
      let buffered = "";
      proc.stdout?.on("data", (d: Buffer) => {
        buffered += d.toString("utf8");
        const line = buffered.split("\n")[0];
        if (engine.port === undefined && line && buffered.includes("\n")) {
          try {
            engine.port = (JSON.parse(line) as { port: number }).port;
            resolvePort(engine.port);
          } catch (error) {
            reject(error);
          }
        }
      });
      proc.once("exit", () => {
        engine.exited = true;
        if (engine.port === undefined) reject(new Error(`engine of ${instance} exited before listening`));
        if (!engine.stopping) this.onDeath(instance);
      });
    });
  }

  stop(instance: string): void {
    const engine = this.byInstance.get(instance);
    if (!engine || engine.exited || engine.stopping) return;
    engine.stopping = true;
    engine.proc.kill("SIGKILL");
  }

  kill(instance: string): boolean {
    const engine = this.byInstance.get(instance);
    if (!engine || engine.exited) return false;
    engine.proc.kill("SIGKILL");
    return true;
  }

  stopAll(): void {
    for (const e of this.byInstance.values()) if (!e.exited) e.proc.kill("SIGKILL");
  }

  view(instance: string): Record<string, unknown> | null {
    const e = this.byInstance.get(instance);
    if (!e) return null;
    return { pid: e.proc.pid, host: e.host, port: e.port ?? null, model: e.model, alive: !e.exited };
  }
}

interface Control {
  readonly engines: Engines;
  /** Every instance ever created, for the accounting. */
  instancesView(): Record<string, unknown>[];
  /** Instance id of a worker. */
  instanceOf(workerId: string): string | undefined;
  inject(fault: { status: number; body?: string; path?: string; method?: string; times?: number }): void;
  clearFaults(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const parseTag = (tag: unknown): { ownerLabel: string; workerId: string } | undefined => {
  if (typeof tag !== "string") return undefined;
  const dot = tag.indexOf(".");
  return dot > 0 ? { ownerLabel: tag.slice(0, dot), workerId: tag.slice(dot + 1) } : undefined;
};

let faultTimer: NodeJS.Timeout | undefined;

async function control(c: Control, req: RecordedRequest): Promise<Reply> {
  const body = (req.body ?? {}) as Record<string, unknown>;
  switch (`${req.method} ${req.path}`) {
    case "GET /__e2e/instances":
      return { status: 200, json: c.instancesView() };
    case "POST /__e2e/config": {
      const t = c.engines.tuning;
      if (typeof body.bootDelayMs === "number") t.bootDelayMs = body.bootDelayMs;
      if (typeof body.createDelayMs === "number") t.createDelayMs = body.createDelayMs;
      if (body.bootDelayByModel && typeof body.bootDelayByModel === "object")
        t.bootDelayByModel = { ...t.bootDelayByModel, ...(body.bootDelayByModel as Record<string, number>) };
      if (Array.isArray(body.engineArgs)) t.engineArgs = body.engineArgs.map(String);
      return { status: 200, json: t };
    }
    case "POST /__e2e/fault": {
      if (typeof body.status !== "number") return { status: 400, json: { error: "status is required" } };
      c.inject({
        status: body.status,
        ...(typeof body.body === "string" ? { body: body.body } : {}),
        ...(typeof body.path === "string" ? { path: body.path } : {}),
        ...(typeof body.method === "string" ? { method: body.method } : {}),
        times: typeof body.times === "number" ? body.times : 1_000_000,
      });
      if (typeof body.forMs === "number") {
        if (faultTimer) clearTimeout(faultTimer);
        faultTimer = setTimeout(() => c.clearFaults(), body.forMs);
      }
      return { status: 200, json: { ok: true } };
    }
    case "POST /__e2e/clear-faults":
      c.clearFaults();
      return { status: 200, json: { ok: true } };
    case "POST /__e2e/kill-engine": {
      const instance =
        typeof body.instance === "string"
          ? body.instance
          : typeof body.worker === "string"
            ? c.instanceOf(body.worker)
            : undefined;
      const killed = instance !== undefined && c.engines.kill(instance);
      return { status: killed ? 200 : 404, json: { killed, instance: instance ?? null } };
    }
    default:
      return { status: 404, json: { error: `no control route ${req.method} ${req.path}` } };
  }
}

/** Vast.ai whose instances run engines on 127.0.0.1. */
class E2EVast extends VastAiFake {
  readonly engines: Engines;
  private readonly known = new Set<number>();

  constructor(apiKey: string, stateDir: string) {
    super({ apiKey, offers: VAST_OFFERS, walk: { createdMs: 200, loadingMs: 300 } });
    this.engines = new Engines(stateDir, (instance) => {
      // the container stopped: Vast reports the instance exited
      const inst = this.instances.get(Number(instance));
      if (inst && inst.timeline.statusAt(this.now()) !== "destroyed") inst.timeline.set("exited", this.now());
    });
  }

  private get control(): Control {
    return {
      engines: this.engines,
      instancesView: () =>
        [...this.instances.values()].map((i) => {
          const status = i.timeline.statusAt(this.now()) ?? "created";
          const tag = parseTag(i.label);
          return {
            id: String(i.id),
            ...(tag ?? {}),
            status,
            alive: status !== "destroyed",
            createdAtMs: i.createdAt,
            usdPerHour: Math.round((i.dphGpu + i.dphStorage) * 1e6) / 1e6,
            usd: this.costOf(i.id).usd,
            engine: this.engines.view(String(i.id)),
          };
        }),
      instanceOf: (workerId) => {
        for (const i of this.instances.values())
          if (parseTag(i.label)?.workerId === workerId) return String(i.id);
        return undefined;
      },
      inject: (f) =>
        this.inject(
          {
            type: "status",
            status: f.status,
            body: f.body ?? (f.status === 429 ? "API requests too frequent" : ""),
          },
          {
            path: f.path ? new RegExp(f.path) : /^\/api\//,
            ...(f.method ? { method: f.method } : {}),
            times: f.times,
          },
        ),
      clearFaults: () => this.clearFaults(),
    };
  }

  protected override async handle(req: RecordedRequest): Promise<Reply> {
    if (req.path.startsWith("/__e2e/")) return control(this.control, req);
    const reply = await super.handle(req);
    if (this.requests.length > 4_000) this.requests.splice(0, 2_000);
    let created = false;
    for (const [id, inst] of this.instances) {
      const status = inst.timeline.statusAt(this.now());
      if (!this.known.has(id)) {
        this.known.add(id);
        created = true;
        this.launch(id);
      } else if (status === "destroyed") this.engines.stop(String(id));
    }
    if (created && this.engines.tuning.createDelayMs > 0) await sleep(this.engines.tuning.createDelayMs);
    return reply;
  }

  private launch(id: number): void {
    const inst = this.instances.get(id)!;
    const args = Array.isArray(inst.args) ? inst.args.map(String) : [];
    const model = after(args, "--served-model-name") ?? "unknown";
    inst.publicIp = "127.0.0.1";
    const portKeys = Object.keys(inst.portMap);
    inst.portMap = {}; // no address until the engine listens
    // the Vast adapter sends them in numbered parts (256 characters per env entry): joined as the script does
    const certPem = decode(joinedEnvValue(inst.env, TLS_CERT_ENV));
    const keyPem = decode(joinedEnvValue(inst.env, TLS_KEY_ENV));
    this.engines
      .start(
        String(id),
        {
          model,
          ...(after(args, "--api-key") ? { apiKey: after(args, "--api-key") } : {}),
          ...(certPem ? { certPem } : {}),
          ...(keyPem ? { keyPem } : {}),
        },
        "127.0.0.1",
        0,
      )
      .then(
        (port) => {
          for (const key of portKeys.length > 0 ? portKeys : ["8000/tcp"]) inst.portMap[key] = port;
        },
        (error: Error) => process.stderr.write(`fake-provider: ${error.message}\n`),
      );
  }
}

/** Verda whose VMs each get a loopback address of their own, the engine on port 8000 there. */
class E2EVerda extends VerdaFake {
  readonly engines: Engines;
  private readonly known = new Set<string>();
  private nextHost = 1;
  private readonly hostBase: string;

  constructor(clientId: string, clientSecret: string, stateDir: string) {
    super({
      clientId,
      clientSecret,
      types: VERDA_TYPES,
      availability: { [VERDA_LOCATION]: VERDA_TYPES.map((t) => t.instance_type) },
      walk: { orderedMs: 200, provisioningMs: 300, deletingMs: 300 },
    });
    // 127.B.C.D: B, C from the pid so fakes of parallel test files do not share addresses
    this.hostBase = `127.${10 + (process.pid % 200)}.${Math.floor(process.pid / 200) % 250}`;
    this.engines = new Engines(stateDir, () => undefined);
  }

  private get control(): Control {
    return {
      engines: this.engines,
      instancesView: () =>
        [...this.instances.values()].map((i) => {
          const status = i.timeline.statusAt(this.now()) ?? "ordered";
          const tag = parseTag(i.body.description);
          return {
            id: i.id,
            ...(tag ?? {}),
            status,
            alive: status !== "gone" && status !== "deleting",
            createdAtMs: i.createdAt,
            usdPerHour: i.type.price_per_hour,
            usd: this.costOf(i.id).usd,
            engine: this.engines.view(i.id),
          };
        }),
      instanceOf: (workerId) => {
        for (const i of this.instances.values())
          if (parseTag(i.body.description)?.workerId === workerId) return i.id;
        return undefined;
      },
      inject: (f) =>
        this.inject(
          { type: "status", status: f.status, json: { code: "server_error", message: f.body ?? "injected" } },
          {
            path: f.path ? new RegExp(f.path) : /^\/v1\//,
            ...(f.method ? { method: f.method } : {}),
            times: f.times,
          },
        ),
      clearFaults: () => this.clearFaults(),
    };
  }

  protected override async handle(req: RecordedRequest): Promise<Reply> {
    if (req.path.startsWith("/__e2e/")) return control(this.control, req);
    const reply = await super.handle(req);
    if (this.requests.length > 4_000) this.requests.splice(0, 2_000);
    let created = false;
    for (const [id, inst] of this.instances) {
      const status = inst.timeline.statusAt(this.now());
      if (!this.known.has(id)) {
        this.known.add(id);
        created = true;
        this.launch(id);
      } else if (status === "deleting" || status === "gone") this.engines.stop(id);
    }
    if (created && this.engines.tuning.createDelayMs > 0) await sleep(this.engines.tuning.createDelayMs);
    return reply;
  }

  private launch(id: string): void {
    const inst = this.instances.get(id)!;
    const script = this.scripts.get(String(inst.body.startup_script_id ?? ""))?.script ?? "";
    const run = script.split("\n").find((l) => l.startsWith("docker run")) ?? "";
    const words = shellWords(run);
    const env: Record<string, string> = {};
    words.forEach((w, i) => {
      if (w === "-e" && words[i + 1]) {
        const kv = words[i + 1]!;
        env[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);
      }
    });
    const host = `${this.hostBase}.${this.nextHost++ % 250}`;
    inst.ip = host;
    this.engines
      .start(
        id,
        {
          model: after(words, "--served-model-name") ?? "unknown",
          ...(after(words, "--api-key") ? { apiKey: after(words, "--api-key") } : {}),
          ...(decode(env[TLS_CERT_ENV]) ? { certPem: decode(env[TLS_CERT_ENV]) } : {}),
          ...(decode(env[TLS_KEY_ENV]) ? { keyPem: decode(env[TLS_KEY_ENV]) } : {}),
        },
        host,
        8000,
      )
      .catch((error: Error) => process.stderr.write(`fake-provider: ${error.message}\n`));
  }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kind: { type: "string" },
      "state-dir": { type: "string" },
      "boot-delay-ms": { type: "string" },
      "api-key": { type: "string" },
      "client-id": { type: "string" },
      "client-secret": { type: "string" },
    },
  });
  const stateDir = values["state-dir"];
  if (!stateDir) throw new Error("--state-dir is required");
  let fake: E2EVast | E2EVerda;
  if (values.kind === "vastai") fake = new E2EVast(values["api-key"] ?? "vast-e2e-key", stateDir);
  else if (values.kind === "datacrunch")
    fake = new E2EVerda(
      values["client-id"] ?? "dc-e2e-id",
      values["client-secret"] ?? "dc-e2e-secret",
      stateDir,
    );
  else throw new Error('--kind must be "vastai" or "datacrunch"');
  if (values["boot-delay-ms"]) fake.engines.tuning.bootDelayMs = Number(values["boot-delay-ms"]);
  const url = await fake.start();
  process.stdout.write(`${JSON.stringify({ port: Number(new URL(url).port) })}\n`);
  process.on("exit", () => fake.engines.stopAll());
  const stop = () => {
    fake.engines.stopAll();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`fake-provider: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
