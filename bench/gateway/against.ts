/**
 * `--against REV`: this checkout's gateway against revision REV's, built from a git worktree — saturation
 * throughput and the gateway's CPU time per request (both processes up at once, alternate runs, pinned to a CPU of
 * their own with taskset when there are two), then time to first token with direct and both builds taking turns
 * stream by stream. How each change of the gateway's hot path was judged.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, symlinkSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { ROOT, which } from "../../devkit/process";
import { saturate, writeWrkScript } from "./load";
import { median, round, signedMs } from "./numbers";
import {
  benchStackYaml,
  cleanup,
  configureFake,
  gatewayBundle,
  onCleanupRemoveWorktree,
  startGateway,
} from "./processes";
import { table } from "./report";
import { CHAT_BODY, progress, type Run, roundsOf, streamBody } from "./settings";
import type { Ground } from "./setup";
import { medianTtfts } from "./streams";

/** CPU seconds a process has used (user + system), from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // after "pid (comm) ": state is field 3, utime and stime fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

let clockTicksPerSecond: number | undefined;
/** The kernel's clock ticks per second (the unit of /proc/<pid>/stat), asked once when first needed. */
function clockTicks(): number {
  clockTicksPerSecond ??=
    Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
  return clockTicksPerSecond;
}

/** REV's gateway bundle, built from a detached git worktree of it (sharing this checkout's node_modules). */
function bundleOfRevision(dir: string, revision: string): { bundle: string; tree: string } {
  const tree = join(dir, "against");
  const git = (argv: string[]) => {
    const r = spawnSync("git", argv, { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${argv.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const commit = git(["rev-parse", "--verify", `${revision}^{commit}`]);
  git(["worktree", "add", "--detach", tree, commit]);
  onCleanupRemoveWorktree(() => {
    spawnSync("git", ["worktree", "remove", "--force", tree], { cwd: ROOT });
  });
  symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"), "dir");
  return {
    bundle: gatewayBundle(dir, false, join(tree, "gateway/main.ts"), join(dir, "gateway-against.js")),
    tree,
  };
}

/** The bench stack's runtime config as REV's own code renders it (run in its worktree). */
function runtimeJsonOfRevision(tree: string, yaml: string): string {
  const script = [
    'const c = require("./core/config");',
    "const yaml = require('fs').readFileSync(0, 'utf8');",
    'process.stdout.write(JSON.stringify(c.renderRuntimeConfig(c.loadStackConfig(c.parseStackFile(yaml, "bench.yaml")), "bench")));',
  ].join(" ");
  const r = spawnSync(process.execPath, ["-r", "tsx/cjs", "-e", script], {
    cwd: tree,
    input: yaml,
    encoding: "utf8",
  });
  if (r.status !== 0)
    throw new Error(`rendering the runtime config of the other revision: ${r.stderr.trim()}`);
  return r.stdout;
}

interface AbRun {
  readonly build: "this" | "against";
  readonly rps: number;
  /** CPU time of the gateway process per answered request, µs. */
  readonly cpuUsPerRequest: number;
}

/**
 * Saturation throughput and CPU time per request of this checkout's gateway against REV's, in one run: both
 * processes up at once, alternate wrk runs (the order swapped every round, so neither always goes first), each
 * gateway pinned to CPU 1 and wrk and the fake upstream to CPU 0 where taskset and two CPUs exist. CPU time per
 * request is steadier than requests per second on a shared machine (a neighbour's load slows both alike).
 */
export async function againstRevision(run: Run, ground: Ground, revision: string): Promise<void> {
  const { args, plan, launch } = run;
  const { dir, fake, prefix, key, headers } = ground;
  const rounds = roundsOf(args, 4);
  const pin = which("taskset") !== undefined && cpus().length >= 2;
  if (pin) spawnSync(which("taskset")!, ["-p", "-c", "0", String(fake.child.proc.pid)]);
  progress(`building the gateway of ${revision} (git worktree in ${dir})`);
  const builds = {
    this: await startGateway(dir, fake.origin, prefix, launch, { cpu: pin ? 1 : undefined }),
    against: await (async () => {
      const { bundle, tree } = bundleOfRevision(dir, revision);
      return startGateway(dir, fake.origin, prefix, launch, {
        bundle,
        cpu: pin ? 1 : undefined,
        runtimeJson: runtimeJsonOfRevision(tree, benchStackYaml(fake.origin, prefix)),
      });
    })(),
  };
  // --stream: the saturation runs send streamed requests (16 tokens each), for changes to the streaming path
  const script = writeWrkScript(dir, key, args.stream ? streamBody(16) : CHAT_BODY);
  await configureFake(fake.origin, { ttftMs: 0, interTokenDelayMs: 0 });
  for (const b of ["this", "against"] as const)
    await saturate(builds[b].origin, script, plan, pin ? 0 : undefined); // warm-up
  const runs: AbRun[] = [];
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? (["this", "against"] as const) : (["against", "this"] as const);
    for (const b of order) {
      const pid = builds[b].child.proc.pid!;
      const before = cpuSeconds(pid);
      const r = await saturate(builds[b].origin, script, plan, pin ? 0 : undefined);
      const cpuUsPerRequest = ((cpuSeconds(pid) - before) * 1e6) / r.requests;
      runs.push({ build: b, rps: r.rps, cpuUsPerRequest });
      progress(
        `  round ${i + 1}/${rounds} ${b === "this" ? "this checkout" : revision}: ${r.rps.toFixed(0)} req/s, ${cpuUsPerRequest.toFixed(1)} µs CPU per request`,
      );
    }
  }
  // time to first token: direct and both builds taking turns, stream by stream
  await configureFake(fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
  progress(`TTFT: ${plan.ttftStreams} sequential streams each, direct and both builds taking turns`);
  const [directTtft, thisTtft, againstTtft] = (
    await medianTtfts([fake.origin, builds.this.origin, builds.against.origin], headers, plan.ttftStreams)
  ).medians as [number, number, number];
  const ttft = {
    directMs: round(directTtft, 3),
    thisAddedMs: round(thisTtft - directTtft, 3),
    revisionAddedMs: round(againstTtft - directTtft, 3),
  };
  const summary = (b: AbRun["build"]) => {
    const mine = runs.filter((r) => r.build === b);
    return {
      rps: Math.round(median(mine.map((r) => r.rps))),
      cpuUsPerRequest: round(median(mine.map((r) => r.cpuUsPerRequest)), 1),
    };
  };
  const report = {
    against: revision,
    pinned: pin,
    rounds,
    this: summary("this"),
    revision: summary("against"),
    cpuRatio: round(summary("this").cpuUsPerRequest / summary("against").cpuUsPerRequest, 3),
    rpsRatio: round(summary("this").rps / summary("against").rps, 3),
    ttft,
    runs,
  };
  await cleanup();
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const rows = [
    ["build", "req/s (median)", "µs CPU / request (median)"],
    ["this checkout", report.this.rps.toLocaleString("en-US"), report.this.cpuUsPerRequest.toFixed(1)],
    [revision, report.revision.rps.toLocaleString("en-US"), report.revision.cpuUsPerRequest.toFixed(1)],
  ];
  process.stdout.write(
    `saturation, wrk -t1 -c${plan.wrkConnections} ${plan.saturationSeconds} s, ${rounds} round(s) each, alternating${pin ? "; gateways on CPU 1, wrk and the fake on CPU 0" : ""}\n\n` +
      `${table(rows)}\n\nthis ÷ ${revision}: CPU per request ${report.cpuRatio.toFixed(3)}, throughput ${report.rpsRatio.toFixed(3)}\n` +
      `TTFT added over direct (median of ${plan.ttftStreams} streams each, fake TTFT ${plan.ttftMs} ms): this checkout ` +
      `${signedMs(ttft.thisAddedMs)} ms, ${revision} ${signedMs(ttft.revisionAddedMs)} ms\n`,
  );
}
