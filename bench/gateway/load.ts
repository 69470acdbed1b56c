/**
 * Load generation: latency at a fixed rate (an open-loop generator on an undici Pool, timed with hrtime from just
 * before dispatch to the last body byte) and saturation throughput (wrk with a Lua script posting the same JSON).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Pool } from "undici";
import { sleep, which } from "../../devkit/process";
import { nearestRank } from "../../devkit/stats";
import { nowNs } from "./numbers";
import { forgetChild, pinned, startChild } from "./processes";
import { CHAT_BODY, CHAT_PATH, type Plan } from "./settings";

// ── fixed rate (open loop) ────────────────────────────────────────────────────────────────────────────────

export interface LatencyResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly requests: number;
  readonly achievedRps: number;
  /** How late the generator dispatched, p99, ms (its own health, not the server's). */
  readonly sendLagP99Ms: number;
  /** Requests slower than 10 ms in each 100 ms of the measurement: when the tail happened (stalls vs spread). */
  readonly slowPerTenth: number[];
}

/**
 * Send `plan.rate` requests per second on a fixed schedule: first for the warm-up time, then — once every warm-up
 * request has been answered and after a short pause — for the measured time. A request is sent when it is due,
 * whatever happened to the earlier ones (open loop); the latency of each is measured from just before dispatch
 * to its last body byte. The schedule is kept with a 1 ms timer that sends whatever has come due, so the
 * generator does not spin on a CPU the servers need. The warm-up is a run of its own because a cold process
 * (JIT not yet warm) may fall behind the schedule at first; on a slow machine the backlog it builds would
 * otherwise spill into the measured run and report the process's start-up, not its steady state.
 */
export async function fixedRate(
  origin: string,
  headers: Record<string, string>,
  plan: Plan,
): Promise<LatencyResult> {
  const pool = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000 });
  try {
    await openLoop(pool, headers, Math.round((plan.warmupMs / 1000) * plan.rate), plan.rate);
    await sleep(500);
    const run = await openLoop(pool, headers, Math.round((plan.measureMs / 1000) * plan.rate), plan.rate);
    const sorted = run.latencies.slice().sort();
    const slowPerTenth = new Array<number>(Math.ceil(plan.measureMs / 100)).fill(0);
    run.latencies.forEach((ms, i) => {
      const tenth = Math.floor((run.sentAtMs[i] ?? 0) / 100);
      if (ms > 10 && tenth >= 0 && tenth < slowPerTenth.length) slowPerTenth[tenth]! += 1;
    });
    return {
      p50Ms: nearestRank(sorted, 50),
      p99Ms: nearestRank(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? Number.NaN,
      requests: sorted.length,
      achievedRps: sorted.length / run.seconds,
      sendLagP99Ms: nearestRank(run.lags.slice().sort(), 99),
      slowPerTenth,
    };
  } catch (error) {
    throw new Error(`${origin}: ${(error as Error).message}`);
  } finally {
    await pool.close();
  }
}

/** `count` requests at `rate` per second, open loop; resolves when every one has been answered. */
async function openLoop(
  pool: Pool,
  headers: Record<string, string>,
  count: number,
  rate: number,
): Promise<{ latencies: Float64Array; lags: Float64Array; sentAtMs: Float64Array; seconds: number }> {
  const intervalNs = 1e9 / rate;
  const latencies = new Float64Array(count);
  const lags = new Float64Array(count);
  const sentAtMs = new Float64Array(count);
  let sent = 0;
  let done = 0;
  let failure: Error | undefined;
  const start = nowNs();
  let end = start;

  await new Promise<void>((resolveRun) => {
    const fire = (i: number, due: bigint) => {
      const t0 = nowNs();
      pool
        .request({ path: CHAT_PATH, method: "POST", headers, body: CHAT_BODY })
        .then(async (res) => {
          const text = await res.body.text();
          const t1 = nowNs();
          if (res.statusCode !== 200)
            failure ??= new Error(`answered ${res.statusCode}: ${text.slice(0, 300)}`);
          latencies[i] = Number(t1 - t0) / 1e6;
          lags[i] = Number(t0 - due) / 1e6;
          sentAtMs[i] = Number(t0 - start) / 1e6;
          if (t1 > end) end = t1;
        })
        .catch((error: Error) => {
          failure ??= error;
        })
        .finally(() => {
          done += 1;
          if (done === count) resolveRun();
        });
    };
    const tick = () => {
      const elapsed = nowNs() - start;
      const due = Math.min(count, Number(elapsed / BigInt(Math.round(intervalNs))) + 1);
      while (sent < due) {
        fire(sent, start + BigInt(Math.round(sent * intervalNs)));
        sent += 1;
      }
      if (sent < count) setTimeout(tick, 1);
    };
    tick();
  });
  if (failure) throw failure;
  return { latencies, lags, sentAtMs, seconds: Number(end - start) / 1e9 };
}

// ── saturation (wrk) ──────────────────────────────────────────────────────────────────────────────────────

export function writeWrkScript(dir: string, apiKey: string, body = CHAT_BODY): string {
  const path = join(dir, body === CHAT_BODY ? "chat.lua" : "chat-stream.lua");
  // JSON string literals are valid Lua string literals for this ASCII content.
  writeFileSync(
    path,
    `wrk.method = "POST"
wrk.body = ${JSON.stringify(body)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${apiKey}`)}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`,
    { mode: 0o600 },
  );
  return path;
}

export interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** One wrk run (one thread, `plan.wrkConnections` connections, `plan.saturationSeconds`), optionally on one CPU. */
export async function saturate(origin: string, script: string, plan: Plan, cpu?: number): Promise<WrkResult> {
  const wrk = which("wrk");
  if (!wrk) throw new Error("wrk not found (apt-get install wrk)");
  const child = startChild(
    "wrk",
    ...pinned(cpu, wrk, [
      "-t1",
      `-c${plan.wrkConnections}`,
      `-d${plan.saturationSeconds}s`,
      "--timeout",
      "5s",
      "-s",
      script,
      `${origin}${CHAT_PATH}`,
    ]),
  );
  let out = "";
  child.proc.stdout?.on("data", (data: Buffer) => {
    out += data.toString("utf8");
  });
  await child.exit;
  forgetChild(child);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (child.proc.exitCode !== 0 || !line) throw new Error(`wrk failed:\n${out}\n${child.tail.join("\n")}`);
  const r = JSON.parse(line.slice("BENCH_JSON ".length)) as Record<string, number>;
  const errors = r.connect! + r.read! + r.write! + r.status! + r.timeout!;
  if (r.status! > 0) throw new Error(`wrk against ${origin}: ${r.status} non-2xx answers`);
  return {
    rps: r.requests! / (r.durationUs! / 1e6),
    requests: r.requests!,
    errors,
    p50Ms: r.p50Us! / 1000,
    p99Ms: r.p99Us! / 1000,
  };
}
