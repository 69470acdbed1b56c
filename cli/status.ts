/**
 * `aiorch status`: what an operator runs first when something looks wrong — the stack's workers by model, provider
 * and state, queue depth and in-flight requests per model, spend against the budgets this month (and any budget
 * block in force), the controller leader, and its last scale decisions with their reasons. Read-only; reads the
 * stack's Redis (REDIS_URL) under the config's key prefix.
 *
 *   aiorch status [--stack NAME | --config FILE] [--json] [--decisions N]   (N: the last N decisions, default 20)
 */
import { parseArgs } from "node:util";
import { DEFAULT_DECISIONS, readStatus, type StatusReport } from "../core/stack-status";
import { renderTable } from "../core/table";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

export { readStatus, type StatusReport, type StatusWorker } from "../core/stack-status";

const usd = (n: number) => (n < 0.01 && n > 0 ? `$${n.toFixed(6)}` : `$${n.toFixed(2)}`);
const since = (seconds: number) =>
  seconds < 120
    ? `${seconds}s`
    : seconds < 7_200
      ? `${Math.round(seconds / 60)}m`
      : `${Math.round(seconds / 3600)}h`;

/** The report as the tables an operator reads. */
export function renderStatus(report: StatusReport): string {
  const out: string[] = [];
  out.push(
    `stack ${report.stack} at ${report.at}; controller leader: ${report.leader ?? "NONE (no controller holds the lock)"}`,
  );
  out.push("");
  out.push("workers");
  out.push(
    report.workersByState.length === 0
      ? "  (none: every model is at zero)"
      : renderTable(
          ["model", "provider", "state", "workers", "$/h"],
          report.workersByState.map((g) => [g.model, g.provider, g.state, g.workers, usd(g.usdPerHour)]),
        ),
  );
  if (report.workers.length > 0) {
    out.push("");
    out.push(
      renderTable(
        ["worker", "model", "provider", "instance", "state", "for", "age", "detail"],
        report.workers.map((w) => [
          w.id,
          w.model,
          w.provider,
          w.providerId ?? "-",
          w.state,
          since(w.stateSeconds),
          since(w.ageSeconds),
          (w.detail ?? "").slice(0, 60),
        ]),
      ),
    );
  }
  out.push("");
  out.push("queue");
  out.push(
    renderTable(
      ["model", "waiting", "jobs", "in flight", "routes"],
      report.queue.map((q) => [q.model, q.waiting, q.jobs, q.inFlight, q.routes]),
    ),
  );
  out.push("");
  const s = report.spend;
  out.push(
    `spend ${s.month}: ${usd(s.totalUsd)}${s.budgetUsd !== null ? ` of ${usd(s.budgetUsd)} (${s.percent}%)` : " (no stack budget)"}`,
  );
  out.push(
    renderTable(
      ["model", "spend", "budget", "requests"],
      s.byModel.map((m) => [m.model, usd(m.usd), m.budgetUsd === null ? "—" : usd(m.budgetUsd), m.requests]),
    ),
  );
  const blocks = Object.entries(report.budgetBlocks);
  if (blocks.length > 0) {
    out.push("");
    out.push("budget blocks (no new workers):");
    for (const [scope, why] of blocks) out.push(`  ${scope === "*" ? "stack" : scope}: ${why}`);
  }
  const { bounds, paused, budgets } = report.controls;
  const controls = [
    ...Object.entries(bounds).map(([unit, b]) => `  ${unit}: workers [${b.minWorkers}, ${b.maxWorkers}]`),
    ...Object.entries(paused).map(([model, why]) => `  ${model}: PAUSED — ${why}`),
    ...Object.entries(budgets).map(
      ([scope, usd]) =>
        `  ${scope === "*" ? "stack" : scope}: budget lowered to ${usd === 0 ? "$0" : `$${usd}`} this month`,
    ),
  ];
  if (controls.length > 0) {
    out.push("");
    out.push("run-time controls (aiorch mcp):");
    out.push(...controls);
  }
  out.push("");
  out.push("last scale decisions");
  out.push(
    report.decisions.length === 0
      ? "  (none recorded)"
      : renderTable(
          ["time", "model", "action", "n", "reason"],
          report.decisions.map((d) => [
            d.at.slice(11, 19),
            d.model,
            d.action,
            d.workers ?? (d.worker ? d.worker : "—"),
            d.reason,
          ]),
        ),
  );
  return `${out.join("\n")}\n`;
}

export async function runStatus(
  argv: readonly string[],
  io: Io,
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean" },
      decisions: { type: "string" },
    },
    strict: true,
  });
  const decisions = values.decisions === undefined ? DEFAULT_DECISIONS : Number(values.decisions);
  if (!Number.isInteger(decisions) || decisions < 0 || decisions > 200)
    throw new UsageError(`--decisions must be 0-200; got "${values.decisions}"`);
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const redis = await connectStackRedis(env);
  try {
    const report = await readStatus(redis, config, { decisions });
    io.out(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
    return 0;
  } finally {
    redis.disconnect();
  }
}
