/**
 * The short soak in CI: mixed traffic through two gateways for E2E_SOAK_SECONDS (default 120, the "about 2 minutes") while a gateway, the
 * controller or a worker's engine is killed every 8–14 s; then everything drains to zero and is accounted for.
 * `npm run bench:soak` runs the same for 30 minutes and prints memory over time.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { E2EStack } from "../../devkit/e2e-stack";
import { renderSoak, runSoak, type SoakReport, startSoakStack } from "../../devkit/soak";

const SECONDS = Number(process.env.E2E_SOAK_SECONDS ?? 120);
let stack: E2EStack;
let report: SoakReport | undefined;
let failed = false;

beforeAll(async () => {
  stack = startSoakStack();
  await stack.start();
}, 60_000);

afterAll(async () => {
  if (report) process.stderr.write(`\n${renderSoak(report)}`);
  if (failed) process.stderr.write(`e2e soak: logs of the processes kept in ${stack?.logs}\n`);
  await stack?.close({ keepLogs: failed });
}, 60_000);

it(
  `soak: ${SECONDS} s of mixed traffic with random kills — nothing lost, nothing orphaned, memory bounded`,
  async () => {
    try {
      report = await runSoak(stack, {
        durationMs: SECONDS * 1_000,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const r = report.requests;
      expect(r.lost, JSON.stringify(r.errors)).toBe(0);
      expect(r.succeeded + r.failed).toBe(r.sent);
      expect(r.sent).toBeGreaterThan(SECONDS); // the traffic really ran
      expect(r.succeeded).toBeGreaterThan(r.sent * 0.7);
      expect(report.kills.length).toBeGreaterThanOrEqual(2);
      expect(report.mismatches).toEqual([]);
      expect(report.instances.orphans).toBe(0);
      expect(report.instances.running).toBe(report.instances.registryLive);
      expect(report.instances.running).toBe(0); // drained to zero
      for (const { worker, gap } of report.billingGapSeconds) {
        const detection = report.killedWorkers.includes(worker) ? 12 : 0;
        expect(gap, worker).toBeLessThanOrEqual(3 + detection);
        expect(gap, worker).toBeGreaterThanOrEqual(-3);
      }
      // resident memory stays bounded (no process grows without limit over the run)
      for (const s of report.rss) {
        for (const mb of s.gatewaysMb) if (mb !== null) expect(mb).toBeLessThan(400);
        if (s.controllerMb !== null) expect(s.controllerMb).toBeLessThan(400);
      }
    } catch (error) {
      failed = true;
      throw error;
    }
  },
  (SECONDS + 240) * 1_000,
);
