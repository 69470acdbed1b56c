/**
 * The soak: mixed traffic (streams and plain answers, three models on two providers, busy and quiet phases so
 * models go to zero and come back) through two gateways while processes are killed at random — a gateway, the
 * controller, a worker's engine — and restarted. Then everything drains and is accounted for: every request
 * (succeeded / failed with a clear error / lost), every instance (terminated at the fake and in the registry),
 * latency percentiles and the gateways' and controller's resident memory over time.
 *
 * Used by test/e2e/soak.e2e.test.ts (a short run in CI) and bench/soak.ts (30 minutes by default).
 */
import { E2EStack } from "./e2e-stack";
import { rssMb, sleep, until } from "./process";
import { nearestRank } from "./stats";
import { chat, type Outcome, Tally } from "./traffic";

export const SOAK_MODELS = `[
  { name: chat-a, kind: chat, source: o/chat-a, gpu: [RTX_3090, RTX_A6000], providers: [vastai, datacrunch], maxWorkers: 2, targetConcurrency: 3, idleTimeoutSeconds: 3, queueTimeoutSeconds: 60 },
  { name: chat-b, kind: chat, source: o/chat-b, gpu: [RTX_A6000], providers: [datacrunch], maxWorkers: 2, targetConcurrency: 3, idleTimeoutSeconds: 3, queueTimeoutSeconds: 60 },
  { name: chat-c, kind: chat, source: o/chat-c, gpu: [RTX_3090], providers: [vastai], maxWorkers: 1, idleTimeoutSeconds: 2, queueTimeoutSeconds: 60 }
]`;
const MODEL_NAMES = ["chat-a", "chat-b", "chat-c"];

export interface SoakOptions {
  /** How long traffic runs. */
  readonly durationMs: number;
  /** Concurrent clients. @default 6 */
  readonly clients?: number;
  /** Random kills happen every this many ms (uniform in the range). @default [8000, 14000] */
  readonly killEveryMs?: readonly [number, number];
  /** No kills in the last part of the run, so the leases of a killed gateway expire in time. @default 0.3 */
  readonly quietTailFraction?: number;
  /** Resident memory sampled this often. @default 5000 */
  readonly sampleEveryMs?: number;
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

export interface SoakReport {
  readonly seconds: number;
  readonly requests: {
    sent: number;
    succeeded: number;
    failed: number;
    lost: number;
    errors: Record<string, number>;
  };
  readonly latencyMs: { p50: number; p99: number; max: number };
  readonly ttftMs: { p50: number; p99: number };
  readonly kills: { atSeconds: number; what: string }[];
  readonly rss: { atSeconds: number; gatewaysMb: (number | null)[]; controllerMb: number | null }[];
  readonly instances: {
    created: number;
    terminated: number;
    running: number;
    registryLive: number;
    orphans: number;
  };
  readonly mismatches: string[];
  /** Workers whose engine was killed (the ledger books them until the controller notices). */
  readonly killedWorkers: string[];
  readonly billingGapSeconds: { worker: string; gap: number }[];
}

/** A small deterministic generator (mulberry32), so a soak can be replayed by its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Nearest-rank percentile of an unsorted series; 0 when it is empty (a report shows 0, not NaN). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  return nearestRank(
    [...values].sort((a, b) => a - b),
    p,
  );
}

export function startSoakStack(name = "soak"): E2EStack {
  return new E2EStack({ name, models: SOAK_MODELS, gateways: 1 });
}

export async function runSoak(stack: E2EStack, options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const rnd = random(options.seed ?? 42);
  const started = Date.now();
  const end = started + options.durationMs;
  const killUntil = started + options.durationMs * (1 - (options.quietTailFraction ?? 0.3));
  const tally = new Tally();
  const kills: SoakReport["kills"] = [];
  const killedWorkers = new Set<string>();
  const rss: SoakReport["rss"] = [];
  const t = () => Math.round((Date.now() - started) / 100) / 10;
  await Promise.all([
    stack.vast.configure({ engineArgs: ["--inter-token-delay-ms", "15"] }),
    stack.datacrunch.configure({ engineArgs: ["--inter-token-delay-ms", "15"] }),
  ]);

  // clients: pick a live gateway (a Service routes only to ready pods), a model, a shape
  const client = async (i: number) => {
    while (Date.now() < end) {
      const live = stack.gateways.filter((g) => g.child?.alive);
      const gateway = live[Math.floor(rnd() * live.length)];
      if (!gateway) {
        await sleep(200);
        continue;
      }
      // chat-c has quiet phases (12 s on, 12 s off): it scales to zero and cold-starts again
      const phaseOff = Math.floor((Date.now() - started) / 12_000) % 2 === 1;
      const models = phaseOff ? MODEL_NAMES.filter((m) => m !== "chat-c") : MODEL_NAMES;
      const model = models[Math.floor(rnd() * models.length)]!;
      const stream = rnd() < 0.5;
      await tally.track(
        (): Promise<Outcome> =>
          chat(stack.client(gateway.name), {
            model,
            stream,
            maxTokens: 4 + Math.floor(rnd() * 60),
            prompt: `client ${i} says hello`,
            timeoutMs: 100_000,
          }),
        110_000,
      );
      await sleep(Math.floor(rnd() * 800));
    }
  };

  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      rss.push({
        atSeconds: t(),
        gatewaysMb: stack.gateways.map((g) => rssMb(g.pid) ?? null),
        controllerMb: rssMb(stack.controller.pid) ?? null,
      });
      await sleep(options.sampleEveryMs ?? 5_000);
    }
  })();

  const [minKill, maxKill] = options.killEveryMs ?? [8_000, 14_000];
  const chaos = (async () => {
    for (;;) {
      const wait = minKill + rnd() * (maxKill - minKill);
      if (Date.now() + wait > killUntil) return;
      await sleep(wait);
      const roll = rnd();
      if (roll < 0.4) {
        const g = stack.gateways[Math.floor(rnd() * stack.gateways.length)]!;
        kills.push({ atSeconds: t(), what: `kill -9 gateway ${g.name}` });
        log(`soak ${t()}s: kill -9 gateway ${g.name}`);
        await g.kill9();
        await sleep(500 + rnd() * 1_500);
        await g.restart();
      } else if (roll < 0.7) {
        kills.push({ atSeconds: t(), what: "kill -9 controller" });
        log(`soak ${t()}s: kill -9 controller`);
        await stack.controller.kill9();
        await sleep(500 + rnd() * 1_500);
        await stack.controller.restart();
      } else {
        const ready = (await stack.workers()).filter((w) => w.state === "ready");
        const victim = ready[Math.floor(rnd() * ready.length)];
        if (!victim) continue;
        kills.push({
          atSeconds: t(),
          what: `kill -9 engine of ${victim.model} worker on ${victim.provider}`,
        });
        log(`soak ${t()}s: kill -9 engine of ${victim.id} (${victim.model}, ${victim.provider})`);
        killedWorkers.add(victim.id);
        await stack.killEngine(victim);
      }
    }
  })();

  const clients = Array.from({ length: options.clients ?? 6 }, (_, i) => client(i));
  await Promise.all([...clients, chaos]);
  await tally.settle();
  const seconds = t();
  log(`soak ${seconds}s: traffic stopped (${tally.sent} requests); draining`);

  // drain: every model back at zero (a killed gateway's in-flight leases expire on their own), the fakes agree
  for (const g of stack.gateways) if (!g.child?.alive) await g.restart();
  if (!stack.controller.child?.alive) await stack.controller.restart();
  await until(
    "every soak model back at zero",
    async () => (await stack.workers()).every((w) => w.state === "terminated"),
    { timeoutMs: 120_000, intervalMs: 500, detail: async () => JSON.stringify(await stack.workers()) },
  ).catch((error: Error) => log(`soak: ${error.message}`));
  stop = true;
  await sampler;

  const accounts = await Promise.all(MODEL_NAMES.map((m) => stack.instanceAccount(m)));
  const ledger = await stack.ledger();
  const billingGapSeconds = accounts
    .flatMap((a) => a.instances)
    .filter((i) => !i.alive)
    .map((i) => ({
      worker: i.workerId!,
      gap: Math.round((((ledger[i.workerId!] ?? 0) - i.usd) / (i.usdPerHour / 3600)) * 100) / 100,
    }));
  const ok = tally.outcomes.filter((o): o is Extract<Outcome, { kind: "ok" }> => o.kind === "ok");
  const latencies = ok.map((o) => o.latencyMs);
  const ttfts = ok.flatMap((o) => (o.ttftMs !== undefined ? [o.ttftMs] : []));
  return {
    seconds,
    requests: {
      sent: tally.sent,
      succeeded: tally.succeeded,
      failed: tally.failed,
      lost: tally.lost,
      errors: tally.errors(),
    },
    latencyMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(0, ...latencies),
    },
    ttftMs: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
    kills,
    rss,
    instances: {
      created: accounts.reduce((n, a) => n + a.created, 0),
      terminated: accounts.reduce((n, a) => n + a.terminated, 0),
      running: accounts.reduce((n, a) => n + a.running, 0),
      registryLive: accounts.reduce((n, a) => n + a.registryLive, 0),
      orphans: accounts[0]?.orphans ?? 0,
    },
    mismatches: accounts.flatMap((a) => a.mismatches),
    killedWorkers: [...killedWorkers],
    billingGapSeconds,
  };
}

/** The report for people: outcomes, latency, kills, memory over time. */
export function renderSoak(report: SoakReport): string {
  const r = report.requests;
  const lines = [
    `soak: ${report.seconds} s of traffic, ${report.kills.length} kills`,
    `requests: ${r.sent} sent, ${r.succeeded} succeeded, ${r.failed} failed with a clear error, ${r.lost} lost`,
    ...Object.entries(r.errors).map(([k, v]) => `  ${v}× ${k}`),
    `latency (succeeded): p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, max ${report.latencyMs.max} ms; TTFT p50 ${report.ttftMs.p50} ms, p99 ${report.ttftMs.p99} ms`,
    `instances: ${report.instances.created} created, ${report.instances.terminated} terminated, ${report.instances.running} running (registry: ${report.instances.registryLive} live), ${report.instances.orphans} orphans${report.mismatches.length > 0 ? `; MISMATCHES: ${report.mismatches.join("; ")}` : ""}`,
    "kills:",
    ...report.kills.map((k) => `  ${k.atSeconds}s ${k.what}`),
    "resident memory (MB):",
    "  t(s)   gateways            controller",
    ...report.rss.map(
      (s) =>
        `  ${String(s.atSeconds).padStart(5)}  ${s.gatewaysMb.map((m) => String(m ?? "-").padStart(7)).join(" ")}   ${String(s.controllerMb ?? "-").padStart(7)}`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}
