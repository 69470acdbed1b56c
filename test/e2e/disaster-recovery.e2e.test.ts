/**
 * The disaster-recovery drill (issue 25), on the e2e stack's real processes — Redis, `aiorch gateway`,
 * `aiorch controller`, the Vast.ai contract fake with fake vLLM instances — plus an S3-compatible server
 * (s3rver) and the CLI as an operator runs it. Two drills on one stack:
 * - lose the node: serve traffic, `aiorch backup now`, keep serving, the gateway and controller die, Redis is
 *   flushed and restarts without its data, `aiorch restore`, the runtime starts again;
 * - lose Redis under the running gateway and controller: the same, but the processes keep running — the
 *   controller notices the loss (its fencing token went back) and holds instead of starting a second worker, and
 *   gateways answer 503 while Redis is away and, once it is back but empty, 503 "restore pending" (the stack
 *   epoch is gone: core/stack-epoch.ts) instead of 401 for keys the backup holds.
 *
 * Measured and printed (README "Disaster recovery"): how long the backup and the restore take, and the time from
 * the start of the restore to the first request served again (RTO on this machine). RPO is the backup interval:
 * what was written after the backup (here, an API key created after it) is gone; spend is not, since a restored
 * worker is booked again from where the backup's ledger stopped.
 */
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2EStack } from "../../devkit/e2e-stack";
import { AIORCH_BIN, ROOT, sleep, until } from "../../devkit/process";
import { chat, Tally } from "../../devkit/traffic";
import { type FakeS3, S3RVER_CREDENTIALS, startFakeS3 } from "../fakes/s3-server";
import { scenarioRow, writeReport } from "./harness";

const MODEL = "dr";
/** As scenarios.e2e.test.ts: each side's round-up, the image pull Vast does not bill at the GPU price. */
const BILLING_TOLERANCE_SECONDS = 3;

let stack: E2EStack;
let s3: FakeS3;
let configFile: string;
let failed = false;

beforeAll(async () => {
  s3 = await startFakeS3();
  stack = new E2EStack({
    name: "dr",
    models: `[{ name: ${MODEL}, kind: chat, source: o/dr, gpu: [RTX_3090], providers: [vastai], idleTimeoutSeconds: 25, queueTimeoutSeconds: 60 }]`,
  });
  await stack.start();
  configFile = join(stack.workDir, "runtime-backup.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      ...stack.config,
      backup: {
        endpoint: s3.endpoint,
        bucket: s3.bucket,
        prefix: "drill/",
        schedule: "0 * * * *",
        retentionDays: 14,
        alertAfterHours: 3,
      },
    }),
  );
}, 120_000);
afterAll(async () => {
  await stack?.close({ keepLogs: failed });
  await s3?.close();
  if (failed) process.stderr.write(`disaster-recovery drill logs kept in ${stack?.logs}\n`);
});

/** `aiorch ARGS` as an operator runs it, in a child process (the s3rver in this process keeps answering). */
function aiorch(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AIORCH_BIN, ...args, "--config", configFile],
      {
        cwd: ROOT,
        timeout: 60_000,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          NODE_OPTIONS: "",
          REDIS_URL: stack.redisServer.url,
          AIORCH_ENCRYPTION_KEYS: stack.encryptionKeys,
          ...S3RVER_CREDENTIALS,
        },
      },
      (error, stdout, stderr) =>
        resolve({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr,
          ms: Date.now() - started,
        }),
    );
  });
}

const send = (tally: Tally, n: number) =>
  Promise.all(
    Array.from({ length: n }, () => tally.track(() => chat(stack.client(), { model: MODEL }), 60_000)),
  );

describe("disaster recovery drill", () => {
  it("loses Redis, restores the backup: keys work, audit verifies, no duplicate or orphan, spend matches the fake", async () => {
    try {
      const started = Date.now();
      const tally = new Tally();
      // an operator's key, created through the CLI (so the audit trail has it)
      const created = await aiorch(["keys", "create", "--name", "ops", "--json"]);
      expect(created.code, created.stderr).toBe(0);
      const opsKey = (JSON.parse(created.stdout) as { key: string }).key;

      // 1. serve: a cold start, then traffic
      const before = await send(tally, 4);
      expect(before.map((o) => o.kind)).toEqual(["ok", "ok", "ok", "ok"]);
      const [worker] = (await stack.workers(MODEL)).filter((w) => w.state === "ready");
      expect(worker).toBeDefined();

      // 2. back up, keep serving, and write something after the backup
      const backup = await aiorch(["backup", "now"]);
      expect(backup.code, backup.stderr).toBe(0);
      const url = backup.stdout.trim();
      expect(url).toMatch(/^s3:\/\/aiorch-backups\/drill\/dr\/\S+\.json$/);
      await send(tally, 3);
      const late = await aiorch(["keys", "create", "--name", "after-backup", "--json"]);
      const lateKey = (JSON.parse(late.stdout) as { key: string }).key;
      await sleep(1_500); // a couple of billing ticks after the backup, which the restore must book again

      // 3. lose the node Redis, the gateway and the controller ran on: the processes die, Redis is flushed and
      // comes back without its data; requests meanwhile must get an answer (here: the connection is refused)
      await Promise.all([stack.controller.kill9(), stack.gateway().kill9()]);
      await stack.redis.flushall();
      await stack.redisServer.kill9();
      const dataDir = join(stack.workDir, "redis");
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { recursive: true });
      const outage = new Tally();
      await send(outage, 3);
      await stack.redisServer.start();

      // 4. restore into the empty Redis, then the runtime comes back (what `pulumi up` on a new cluster starts)
      const restoreStarted = Date.now();
      const restored = await aiorch(["restore", "--from", url, "--actor", "drill"]);
      expect(restored.code, `${restored.stdout}${restored.stderr}`).toBe(0);
      await Promise.all([stack.controller.start(), stack.gateway().start()]);
      const firstServed = await until(
        "a request served after the restore",
        async () => ((await chat(stack.client(), { model: MODEL })).kind === "ok" ? Date.now() : undefined),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      const rtoMs = firstServed - restoreStarted;

      // every key that existed at the backup works; the one created after it is gone (RPO)
      const after = await send(tally, 4);
      expect(after.every((o) => o.kind === "ok")).toBe(true);
      const withKey = (key: string) =>
        new (stack.client().constructor as typeof import("openai").default)({
          baseURL: `${stack.gateway().url}/v1`,
          apiKey: key,
          maxRetries: 0,
        });
      expect((await chat(withKey(opsKey), { model: MODEL })).kind).toBe("ok");
      const lost = await chat(withKey(lateKey), { model: MODEL });
      expect(lost).toMatchObject({ kind: "failed", error: "HTTP 401 invalid_api_key" });

      // the worker was re-adopted: one instance, the same worker, nothing orphaned
      const account = await stack.instanceAccount(MODEL);
      expect(account.created).toBe(1);
      expect(account.orphans).toBe(0);
      expect(account.mismatches).toEqual([]);
      expect((await stack.workers(MODEL)).filter((w) => w.state !== "terminated").map((w) => w.id)).toEqual([
        worker!.id,
      ]);

      // the audit trail verifies and shows the restore
      const verified = await aiorch(["audit", "verify"]);
      expect(verified.code, verified.stdout).toBe(0);
      expect(verified.stdout).toMatch(/restored at \S+ by drill: restored from backup /);

      // requests during the outage got answers (the connection refused), none lost
      expect(outage.lost, JSON.stringify(outage.errors())).toBe(0);
      expect(outage.succeeded + outage.failed).toBe(outage.sent);

      // spend: once the worker is gone, the ledger matches the fake's billing within a tick or two
      await until(
        `${MODEL} scaled to zero`,
        async () => (await stack.workers(MODEL)).every((w) => w.state === "terminated"),
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      const settled = await until("the fake to confirm the termination", async () => {
        const a = await stack.instanceAccount(MODEL);
        return a.instances.every((i) => !i.alive) ? a : undefined;
      });
      const instance = settled.instances[0]!;
      const ledgerUsd = (await stack.ledger())[worker!.id] ?? 0;
      const gapSeconds = (ledgerUsd - instance.usd) / (instance.usdPerHour / 3600);
      expect(Math.abs(gapSeconds), `ledger $${ledgerUsd} vs fake $${instance.usd}`).toBeLessThanOrEqual(
        BILLING_TOLERANCE_SECONDS,
      );

      const all = new Tally();
      all.add(tally);
      all.add(outage);
      writeReport("Disaster recovery drill", [scenarioRow("lose the node, restore", all, settled, started)]);
      process.stderr.write(
        `DR drill: backup ${backup.ms} ms (CLI wall time); restore ${restored.ms} ms (CLI wall time); first request served ${rtoMs} ms after the restore began (restore + runtime start + a request); outage answers: ${JSON.stringify(outage.errors())}; ledger-vs-fake gap ${gapSeconds.toFixed(2)} s\n`,
      );
    } catch (error) {
      failed = true;
      throw error;
    }
  }, 240_000);

  it("loses Redis under the running gateway and controller: the controller holds, no second worker, restore resumes", async () => {
    try {
      const started = Date.now();
      const instancesBefore = (await stack.instances()).length;
      const tally = new Tally();
      expect((await send(tally, 3)).every((o) => o.kind === "ok")).toBe(true);
      const [worker] = (await stack.workers(MODEL)).filter((w) => w.state === "ready");
      expect(worker).toBeDefined();
      // a key in the backup that no gateway has cached: during the outage it must not be told it is wrong
      const quiet = await aiorch(["keys", "create", "--name", "quiet", "--json"]);
      expect(quiet.code, quiet.stderr).toBe(0);
      const quietKey = (JSON.parse(quiet.stdout) as { key: string }).key;
      const modelsWith = (key: string) =>
        fetch(`${stack.gateway().url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      const backup = await aiorch(["backup", "now"]);
      expect(backup.code, backup.stderr).toBe(0);
      const url = backup.stdout.trim();
      await send(tally, 3);
      await sleep(1_500);

      // FLUSHALL, then a restart without its data, under the running processes; requests keep coming
      await stack.redis.flushall();
      await stack.redisServer.kill9();
      const dataDir = join(stack.workDir, "redis");
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { recursive: true });
      const outage = new Tally();
      const during = [send(outage, 3)];
      await sleep(1_000);
      await stack.redisServer.start();
      await until("gateway ready again", async () => (await fetch(`${stack.gateway().opsUrl}/readyz`)).ok, {
        timeoutMs: 20_000,
      });
      during.push(send(outage, 3));
      // Redis is back but empty: a key that is in the backup gets 503 "restore pending", not 401
      const pending = await modelsWith(quietKey);
      expect(pending.status).toBe(503);
      expect(pending.headers.get("retry-after")).toBe("30");
      expect(await pending.json()).toMatchObject({
        error: { type: "server_error", code: "store_unavailable", message: expect.stringMatching(/restore/) },
      });
      await sleep(3_000); // a few controller ticks on the empty Redis: it must hold, not start a second worker
      expect((await stack.instances()).length).toBe(instancesBefore + 1);

      const restoreStarted = Date.now();
      const restored = await aiorch(["restore", "--from", url, "--actor", "drill"]);
      expect(restored.code, `${restored.stdout}${restored.stderr}`).toBe(0);
      const firstServed = await until(
        "a request served after the restore",
        async () => ((await chat(stack.client(), { model: MODEL })).kind === "ok" ? Date.now() : undefined),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      await Promise.all(during);
      expect(outage.lost, JSON.stringify(outage.errors())).toBe(0);
      // clear answers: 503 while Redis was away or empty (never a 401 for a key the backup has), or served after
      // the restore
      for (const error of Object.keys(outage.errors())) expect(error).toBe("HTTP 503 store_unavailable");
      expect((await modelsWith(quietKey)).status).toBe(200);
      expect(stack.controller.log()).toMatch(/Redis lost the stack's state .* holding/);
      // the restore dropped the lock and lifted the fence: the controller's next election sees it
      await until("the controller to notice the restore", () =>
        /Redis was restored: going on from the restored registry/.test(stack.controller.log()),
      );

      // the same worker serves; nothing was created meanwhile and nothing is orphaned
      expect((await send(tally, 3)).every((o) => o.kind === "ok")).toBe(true);
      expect((await stack.instances()).length).toBe(instancesBefore + 1);
      const account = await stack.instanceAccount(MODEL);
      expect(account.orphans).toBe(0);
      expect(account.mismatches).toEqual([]);
      expect((await stack.workers(MODEL)).filter((w) => w.state !== "terminated").map((w) => w.id)).toEqual([
        worker!.id,
      ]);
      const verified = await aiorch(["audit", "verify"]);
      expect(verified.code, verified.stdout).toBe(0);
      expect(verified.stdout.match(/restored at \S+ by drill/g)).toHaveLength(2);

      await until(
        `${MODEL} scaled to zero`,
        async () => (await stack.workers(MODEL)).every((w) => w.state === "terminated"),
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      const settled = await until("the fake to confirm the termination", async () => {
        const a = await stack.instanceAccount(MODEL);
        return a.instances.every((i) => !i.alive) ? a : undefined;
      });
      const instance = settled.instances.find((i) => i.workerId === worker!.id)!;
      const ledgerUsd = (await stack.ledger())[worker!.id] ?? 0;
      const gapSeconds = (ledgerUsd - instance.usd) / (instance.usdPerHour / 3600);
      expect(Math.abs(gapSeconds), `ledger $${ledgerUsd} vs fake $${instance.usd}`).toBeLessThanOrEqual(
        BILLING_TOLERANCE_SECONDS,
      );

      const all = new Tally();
      all.add(tally);
      all.add(outage);
      writeReport("Disaster recovery drill", [
        scenarioRow("lose Redis under load, restore", all, settled, started),
      ]);
      process.stderr.write(
        `DR drill (Redis lost under running processes): restore ${restored.ms} ms (CLI wall time); first request served ${firstServed - restoreStarted} ms after the restore began; outage answers: ${JSON.stringify(outage.errors())} (${outage.succeeded} served after the restore); ledger-vs-fake gap ${gapSeconds.toFixed(2)} s\n`,
      );
    } catch (error) {
      failed = true;
      throw error;
    }
  }, 240_000);
});
