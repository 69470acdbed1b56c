/**
 * The long soak (issue 8): the whole runtime as separate processes — a dedicated Redis, two `aiorch gateway`, one
 * `aiorch controller`, the Vast.ai and DataCrunch fakes whose instances are fake vLLM processes, Prometheus —
 * under mixed traffic from the official openai client for N minutes while a gateway, the controller or a worker's
 * engine is killed every 8–14 s (none in the last 30%, so everything can drain). Reports request outcomes
 * (succeeded / failed with a clear error / lost), p50/p99 latency and TTFT, the kills, the instances (terminated,
 * running, orphans, registry agreement) and the gateways' and controller's resident memory over time.
 *
 *   node -r tsx/cjs bench/soak.ts [--minutes 30] [--clients 6] [--seed 42] [--json] [--keep-logs] [--help]
 *
 * Needs redis-server and prometheus on PATH (Debian: apt-get install redis-server prometheus). Exit code 1 when a
 * request was lost, an instance is orphaned or the fakes and the registry disagree.
 */
import { renderSoak, runSoak, startSoakStack } from "../devkit/soak";
import { benchArgs, USAGE_EXIT_CODE } from "./args";

const USAGE_LINE = "usage: bench/soak.ts [--minutes N] [--clients N] [--seed N] [--json] [--keep-logs]";
const USAGE = `The long soak: the whole runtime as separate processes (Redis, two gateways, the controller, the provider
fakes, Prometheus) under mixed traffic while a gateway, the controller or a worker's engine is killed every 8–14 s.
Needs redis-server and prometheus on PATH. Exit code 1 when a request was lost, an instance is orphaned or the fakes
and the registry disagree.

${USAGE_LINE}
       npm run bench:soak -- [options]

  --minutes N     how long the traffic runs (default 30)
  --clients N     concurrent clients (default 6)
  --seed N        seed of the traffic and the kills, to replay a run (default 42)
  --json          print the report as JSON
  --keep-logs     keep the processes' logs even when the run passes
  -h, --help      this text
`;

async function main(): Promise<number> {
  const values = benchArgs("bench:soak", USAGE, {
    minutes: { type: "string" },
    clients: { type: "string" },
    seed: { type: "string" },
    json: { type: "boolean" },
    "keep-logs": { type: "boolean" },
  });
  const minutes = Number(values.minutes ?? 30);
  const clients = Number(values.clients ?? 6);
  if (!(minutes > 0) || !Number.isInteger(clients) || clients < 1) {
    process.stderr.write(`${USAGE_LINE}\n`);
    return USAGE_EXIT_CODE;
  }
  const stack = startSoakStack(`soak${process.pid % 10_000}`);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let ok = false;
  const stop = () => {
    void stack.close({ keepLogs: true }).then(() => process.exit(130));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await stack.start();
    log(`soak: ${minutes} min, ${clients} clients; process logs in ${stack.logs}`);
    const report = await runSoak(stack, {
      durationMs: minutes * 60_000,
      clients,
      seed: Number(values.seed ?? 42),
      sampleEveryMs: minutes >= 10 ? 30_000 : 5_000,
      log,
    });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderSoak(report));
    ok =
      report.requests.lost === 0 &&
      report.instances.orphans === 0 &&
      report.mismatches.length === 0 &&
      report.instances.running === report.instances.registryLive;
    return ok ? 0 : 1;
  } finally {
    await stack.close({ keepLogs: !ok || values["keep-logs"] === true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(3);
  },
);
