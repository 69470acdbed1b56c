/** Layer 3 of the security model: what waits in Redis is sealed, and a real dump of Redis shows no prompt. */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSealed, newKeyRingEntry, open, parseKeyRing, seal } from "../../core/envelope";
import { createHarness, type Harness, REDIS_URL } from "./harness";

describe("envelope", () => {
  const ring = parseKeyRing(`${newKeyRingEntry("k2")},${newKeyRingEntry("k1")}`)!;

  it("seals with the current key and opens with the ring", () => {
    const sealed = seal(ring, "the prompt", "job_1");
    expect(sealed).toMatch(/^enc:v1:k2:/);
    expect(sealed).not.toContain("the prompt");
    expect(open(ring, sealed, "job_1")).toBe("the prompt");
  });

  it("keeps old keys for values sealed before a rotation", () => {
    const old = parseKeyRing(`k1:${ring.keys.get("k1")!.toString("base64")}`)!;
    const sealedBefore = seal(old, "queued yesterday", "job_2");
    expect(open(ring, sealedBefore, "job_2")).toBe("queued yesterday");
    const withoutOld = parseKeyRing(`k2:${ring.keys.get("k2")!.toString("base64")}`)!;
    expect(() => open(withoutOld, sealedBefore, "job_2")).toThrow(/no key "k1"/);
  });

  it("refuses a value moved to another place, a tampered value, and plain text where sealing is on", () => {
    const sealed = seal(ring, "x", "job_3");
    expect(() => open(ring, sealed, "job_4")).toThrow();
    const tampered = `${sealed.slice(0, -4)}AAAA`;
    expect(() => open(ring, tampered, "job_3")).toThrow();
    expect(() => open(ring, "plain text", "job_3")).toThrow(/plain text/);
    expect(open(undefined, "plain text")).toBe("plain text");
  });

  it("names a bad key ring entry and the fix", () => {
    expect(() => parseKeyRing("nocolon")).toThrow(/entry 1 must be "id:base64key"/);
    expect(() => parseKeyRing("k1:c2hvcnQ=")).toThrow(/must be 32 bytes \(openssl rand -base64 32\)/);
    expect(parseKeyRing("")).toBeUndefined();
  });
});

describe("queued jobs at rest", () => {
  let h: Harness;
  let key: string;
  const dir = mkdtempSync(join(tmpdir(), "aiorch-dump-"));
  beforeAll(async () => {
    h = await createHarness();
    key = await h.createKey();
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const submit = (url: string, prompt: string) =>
    fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        endpoint: "/v1/chat/completions",
        body: { model: "cold", messages: [{ role: "user", content: prompt }], max_tokens: 3 },
      }),
    }).then((r) => r.json() as Promise<{ id: string }>);

  /** A real dump of the whole Redis, as an attacker with a backup would get it. */
  const dump = (): string => {
    const file = join(dir, `dump-${randomBytes(3).toString("hex")}.rdb`);
    const { hostname, port } = new URL(REDIS_URL);
    const result = spawnSync("redis-cli", ["-h", hostname, "-p", port || "6379", "--rdb", file], {
      encoding: "utf8",
    });
    if (result.error) throw new Error(`redis-cli is needed for this test: ${result.error.message}`);
    expect(result.status, result.stderr).toBe(0);
    return readFileSync(file).toString("latin1");
  };

  it("a dump of Redis shows no prompt text when the stack encrypts, and would without it", async () => {
    const sealedGateway = await h.start(h.config, { encryption: parseKeyRing(newKeyRingEntry("k1")) });
    const plainGateway = await h.start();
    const secret = `TOPSECRET-${randomBytes(6).toString("hex")}`;
    const control = `CONTROL-${randomBytes(6).toString("hex")}`;
    const sealedJob = await submit(sealedGateway.url, secret);
    await submit(plainGateway.url, control);
    expect(isSealed((await h.redis.hget(h.keys.job(sealedJob.id), "body"))!)).toBe(true);
    const text = dump();
    expect(text).toContain(control); // the grep finds text that is stored in plain: the check can fail
    expect(text).not.toContain(secret);
  });

  it("a sealed job runs, and its result is sealed at rest but readable by its owner", async () => {
    // a stack of its own: every gateway of a stack shares the key ring
    const own = await createHarness();
    const ownKey = await own.createKey();
    const { url } = await own.start(own.config, { encryption: parseKeyRing(newKeyRingEntry("k9")) });
    const job = (await (
      await fetch(`${url}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${ownKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          endpoint: "/v1/chat/completions",
          body: { model: "cold", messages: [{ role: "user", content: "hello" }], max_tokens: 3 },
        }),
      })
    ).json()) as { id: string };
    await own.addRoute("cold", { baseUrl: own.fake.url });
    let view: { status?: string; result?: { usage?: { completion_tokens: number } } } = {};
    for (let i = 0; i < 100 && view.status !== "succeeded"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      view = (await (
        await fetch(`${url}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${ownKey}` } })
      ).json()) as typeof view;
    }
    expect(view.status).toBe("succeeded");
    expect(view.result?.usage?.completion_tokens).toBe(3);
    expect(isSealed((await own.redis.hget(own.keys.job(job.id), "result"))!)).toBe(true);
    await own.close();
  });
});
