/**
 * Issue 25: a Redis that came back empty (lost the stack's state, no restore yet) gets 503 "restore pending" from
 * every gateway — not 401 for keys that exist in the backup — and a new stack's first start is not taken for a
 * loss. Gateways with `inject()` on a real Redis; the loss is every key under the test's prefix deleted (the
 * FLUSHALL of a shared Redis), the restore is the real one (core/backup-redis.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { openBackup, sealBackup } from "../../core/backup";
import { exportBackup, restoreBackup } from "../../core/backup-redis";
import { markStateLost } from "../../core/stack-epoch";
import type { Gateway } from "../../gateway/app";
import { RESTORE_PENDING_RETRY_AFTER_SECONDS } from "../../gateway/stack-state";
import { createHarness, type Harness } from "./harness";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const models = (gateway: Gateway, key: string) =>
  gateway.app.inject({ method: "GET", url: "/v1/models", headers: { authorization: `Bearer ${key}` } });
const chat = (gateway: Gateway, key: string) =>
  gateway.app.inject({
    method: "POST",
    url: "/v1/chat/completions",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    payload: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }] }),
  });
const NEVER_CREATED = "sk-aiorch-nevercreatednevercreatednever0";

/** Every key under the prefix gone: what FLUSHALL or a restart without data does to the stack. */
async function wipe(harness: Harness): Promise<void> {
  const found = await harness.redis.keys(`${harness.keys.prefix}*`);
  if (found.length > 0) await harness.redis.del(...found);
}

function expectRestorePending(response: {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}) {
  expect(response.statusCode, response.body).toBe(503);
  expect(response.headers["retry-after"]).toBe(String(RESTORE_PENDING_RETRY_AFTER_SECONDS));
  const body = JSON.parse(response.body) as { error: { type: string; code: string; message: string } };
  expect(body.error).toMatchObject({ type: "server_error", code: "store_unavailable" });
  expect(body.error.message).toMatch(/restore from backup is pending/);
}

describe("a gateway whose Redis lost the stack's state", () => {
  it("a new stack is not a loss: unknown keys get 401 before and after its first key, which starts the epoch", async () => {
    h = await createHarness();
    const { gateway } = await h.start();
    expect((await models(gateway, NEVER_CREATED)).statusCode).toBe(401);
    expect(await h.redis.exists(h.keys.stateLost)).toBe(0);
    const key = await h.createKey();
    expect(await h.redis.get(h.keys.stackEpoch)).toMatch(/^epoch_[0-9a-f]{16}$/);
    const epoch = await h.redis.get(h.keys.stackEpoch);
    await h.createKey(); // the epoch is written once
    expect(await h.redis.get(h.keys.stackEpoch)).toBe(epoch);
    expect((await models(gateway, key)).statusCode).toBe(200);
    expect((await models(gateway, NEVER_CREATED)).statusCode).toBe(401);
  });

  it("answers 503 restore-pending (not 401) once Redis comes back empty, on every gateway, until the restore", async () => {
    h = await createHarness();
    const key = await h.createKey();
    const content = await exportBackup(h.redis, { prefix: h.keys.prefix, stack: "test", nowMs: Date.now() });
    const { header, content: opened } = openBackup(sealBackup(content, "b-dr", undefined), undefined);
    const { gateway: witness } = await h.start();
    expect((await models(witness, key)).statusCode).toBe(200);

    await wipe(h);
    // a key no gateway has cached: before it is refused, the gateway sees the epoch gone and marks the loss
    const before = Date.now();
    expectRestorePending(await models(witness, NEVER_CREATED));
    const marker = JSON.parse((await h.redis.get(h.keys.stateLost)) ?? "{}") as Record<string, unknown>;
    expect(marker).toMatchObject({
      epoch: content.records.find((r) => r.key === "stack:epoch")?.value,
      by: "gateway",
    });
    expect(marker.sinceMs).toBeGreaterThanOrEqual(before);
    // the key the witness had cached is not served from an empty Redis either (no budget, no route to judge)
    expectRestorePending(await models(witness, key));
    expectRestorePending(await chat(witness, key));
    // a gateway started during the outage knows nothing of the epoch, but reads the marker
    const { gateway: fresh } = await h.start();
    expectRestorePending(await models(fresh, key));
    expectRestorePending(await models(fresh, NEVER_CREATED));

    // the gateways' own looks (every second) keep the verdict while nothing is restored
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await h.redis.exists(h.keys.stateLost)).toBe(1);
    expectRestorePending(await models(witness, key));

    const result = await restoreBackup(h.redis, header, opened, {
      prefix: h.keys.prefix,
      force: false,
      actor: "ops",
      nowMs: Date.now(),
    });
    expect(result.restored).toBeGreaterThan(0);
    expect(await h.redis.exists(h.keys.stateLost)).toBe(0);
    expect(await h.redis.get(h.keys.stackEpoch)).toBe(marker.epoch);
    // each gateway looks again within its interval (1 s)
    await new Promise((r) => setTimeout(r, 1_100));
    for (const gateway of [witness, fresh]) {
      expect((await models(gateway, key)).statusCode).toBe(200);
      expect((await models(gateway, NEVER_CREATED)).statusCode).toBe(401);
    }
  });

  it("a marker a controller wrote (its fencing token went back) turns a gateway's answers to 503, a restored epoch is never marked", async () => {
    h = await createHarness();
    const key = await h.createKey();
    const { gateway } = await h.start();
    // while the epoch is there, a late witness cannot mark the stack lost (a restore landed meanwhile)
    expect(await markStateLost(h.redis, h.keys, { epoch: "", sinceMs: Date.now(), by: "controller" })).toBe(
      false,
    );
    await wipe(h);
    expect(await markStateLost(h.redis, h.keys, { epoch: "", sinceMs: Date.now(), by: "controller" })).toBe(
      true,
    );
    await new Promise((r) => setTimeout(r, 1_100));
    expectRestorePending(await models(gateway, key));
  });

  it("a stack from before epochs (keys, no epoch) gets one from its first gateway and is not taken as lost", async () => {
    h = await createHarness();
    const key = await h.createKey();
    await h.redis.del(h.keys.stackEpoch);
    const { gateway } = await h.start();
    expect(await h.redis.get(h.keys.stackEpoch)).toMatch(/^epoch_/);
    expect((await models(gateway, key)).statusCode).toBe(200);
    expect((await models(gateway, NEVER_CREATED)).statusCode).toBe(401);
  });
});
