/**
 * Async jobs under attack (issue 20): queued jobs are capped per key and per model, a job's body bytes count
 * against the key's tokens, queued jobs expire after `gateway.jobQueuedTtlSeconds`; a job whose key was revoked
 * or expired before it ran fails without reaching the model; a submission and a run each write an audit line and
 * count in `aiorch_requests_total`, and the tokens a job reserved are settled to its usage; a gateway told to seal
 * queued jobs refuses to start without a key ring. Real Redis, real sockets, the fake vLLM upstream.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isSealed, newKeyRingEntry } from "../../core/envelope";
import { ledgerMonth } from "../../core/protocol";
import { buildGateway } from "../../gateway/app";
import { startGateway } from "../../gateway/main";
import { createHarness, type Harness, REDIS_URL, testRuntimeConfig } from "./harness";

const ROOT = join(__dirname, "..", "..");

const jobBody = (model: string, extra: Record<string, unknown> = {}) => ({
  endpoint: "/v1/chat/completions",
  body: { model, messages: [{ role: "user", content: "summarise" }], max_tokens: 3, ...extra },
});

const submit = (url: string, key: string, body: unknown) =>
  fetch(`${url}/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** The job's record straight from Redis (its key may no longer be allowed to read it). */
async function waitForJob(h: Harness, id: string, timeoutMs = 10_000): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await h.redis.hgetall(h.keys.job(id));
    if (job.status === "succeeded" || job.status === "failed" || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const gatewayOf = (gateway: string) => (localUrl: string, prefix: string) =>
  testRuntimeConfig(localUrl, prefix, {
    gateway: `{ host: ai.example.com, limits: { rpm: 1000, tpm: 1000000 }, maxRequestBytes: 65536, keepAliveSeconds: 1, ${gateway} }`,
  });

describe("queued jobs cannot fill Redis", () => {
  let h: Harness;
  let url: string;
  beforeAll(async () => {
    h = await createHarness({
      config: gatewayOf("maxQueuedJobsPerKey: 3, maxQueuedJobsPerModel: 6, jobQueuedTtlSeconds: 120"),
    });
    ({ url } = await h.start());
  });
  afterAll(() => h.close());

  // (in order: cold's queue fills up through the file)
  it("a queued job and its idempotency key live jobQueuedTtlSeconds, not a week", async () => {
    const key = await h.createKey();
    const queued = (await (
      await submit(url, key, { ...jobBody("cold"), idempotencyKey: "ttl-1" })
    ).json()) as {
      id: string;
    };
    for (const redisKey of [
      h.keys.job(queued.id),
      h.keys.jobIdempotency("cold", `${(await h.store.list()).at(-1)!.id}:ttl-1`),
    ]) {
      const ttl = await h.redis.ttl(redisKey);
      expect(ttl).toBeGreaterThan(100);
      expect(ttl).toBeLessThanOrEqual(120);
    }
  });

  it("a key gets at most maxQueuedJobsPerKey jobs queued: the next is an OpenAI-shaped 429", async () => {
    const { key, record } = await h.store.create({ name: "capped" });
    const first = (await (await submit(url, key, { ...jobBody("cold"), idempotencyKey: "a" })).json()) as {
      id: string;
    };
    for (let i = 0; i < 2; i++) expect((await submit(url, key, jobBody("cold"))).status).toBe(202);
    const refused = await submit(url, key, jobBody("cold"));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    const { error } = (await refused.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ type: "rate_limit_error", code: "too_many_queued_jobs", param: null });
    expect(error.message).toMatch(/3 jobs queued.*gateway\.maxQueuedJobsPerKey/);
    expect(await h.redis.zcard(h.keys.queuedJobsOfKey(record.id))).toBe(3);
    // a job already queued is still found by its idempotency key at the cap
    const again = await submit(url, key, { ...jobBody("cold"), idempotencyKey: "a" });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(first.id);
  });

  it("a model gets at most maxQueuedJobsPerModel jobs queued, whichever keys queued them", async () => {
    const other = await h.createKey(); // the tests before hold 4 of cold's 6 places
    expect((await submit(url, other, jobBody("cold"))).status).toBe(202);
    expect((await submit(url, other, jobBody("cold"))).status).toBe(202);
    const refused = await submit(url, other, jobBody("cold"));
    expect(refused.status).toBe(429);
    const { error } = (await refused.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("too_many_queued_jobs");
    expect(error.message).toMatch(/6 jobs are queued for model "cold".*gateway\.maxQueuedJobsPerModel/);
    // another model still takes jobs
    expect((await submit(url, other, jobBody("chat"))).status).toBe(202);
  });
});

describe("a job's body counts against the key's tokens per minute", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it("padding outside the prompt fields is charged: 60 KB jobs from a 10,000 tpm key get a 429", async () => {
    const { url } = await h.start();
    const key = await h.createKey({ rpm: 10, tpm: 10_000 });
    // 60,000 bytes the prompt estimate never saw (15,000 tokens at 4 bytes a token)
    const padded = jobBody("cold", { metadata: { padding: "x".repeat(60_000) } });
    const first = await submit(url, key, padded);
    expect(first.status).toBe(202); // a request larger than the bucket is admitted once, against a full one
    const second = await submit(url, key, padded);
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe("rate_limit_exceeded");
    // a small job by another key is not affected
    expect((await submit(url, await h.createKey({ rpm: 10, tpm: 10_000 }), jobBody("cold"))).status).toBe(
      202,
    );
  });
});

describe("jobs are admitted as inference is: budgets too", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it("a running job shows its worker as busy to the controller, as a request does", async () => {
    const { url } = await h.start();
    await h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-job" });
    h.fake.delayNext(800);
    const { id } = (await (await submit(url, await h.createKey(), jobBody("cold"))).json()) as { id: string };
    let members: string[] = [];
    for (let i = 0; i < 40 && !members.some((m) => m.startsWith("w-job|")); i++) {
      await new Promise((r) => setTimeout(r, 25));
      members = await h.redis.zrange(h.keys.inflight("cold"), 0, -1);
    }
    expect(members.some((m) => m.startsWith("w-job|"))).toBe(true);
    expect((await waitForJob(h, id)).status).toBe("succeeded");
    await h.removeRoutes("cold");
  });

  it("a key over its monthly budget, or a model the controller blocked, cannot queue a job", async () => {
    const { url } = await h.start();
    const { key, record } = await h.store.create({ name: "spent", monthlyBudgetUsd: 1 });
    await h.redis.hset(h.keys.spendMonth(ledgerMonth(Date.now())), `key:${record.id}`, 1_500_000);
    const over = await submit(url, key, jobBody("cold"));
    expect(over.status).toBe(429);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe("insufficient_quota");
    await h.redis.hset(h.keys.budgetBlocked, "cold", "model cold reached its monthly budget of $5");
    await h.redis.publish(h.keys.budgetChannel, "changed");
    await new Promise((r) => setTimeout(r, 50));
    const blocked = await submit(url, await h.createKey(), jobBody("cold"));
    expect(blocked.status).toBe(429);
    expect(((await blocked.json()) as { error: { code: string } }).error.code).toBe("budget_exceeded");
  });
});

describe("a job whose key was revoked or expired before it ran", () => {
  let h: Harness;
  afterEach(() => h.close());

  for (const how of ["revoked", "expired"] as const) {
    it(`fails (${how}) with a clear error, sends nothing upstream, and writes an audit line`, async () => {
      h = await createHarness();
      const { url, audit } = await h.start();
      const { key, record } = await h.store.create({
        name: how,
        ...(how === "expired" ? { expiresAtMs: Date.now() + 1_500 } : {}),
      });
      const secret = `PROMPT-${randomBytes(4).toString("hex")}`;
      const accepted = await submit(url, key, {
        endpoint: "/v1/chat/completions",
        body: { model: "cold", messages: [{ role: "user", content: secret }], max_tokens: 2 },
      });
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      if (how === "revoked") expect(await h.store.revoke(record.id)).toBe(true);
      else await new Promise((r) => setTimeout(r, 1_600));
      await h.addRoute("cold", { baseUrl: h.fake.url }); // a worker is ready: the job is picked up
      const job = await waitForJob(h, id);
      expect(job.status).toBe("failed");
      const error = JSON.parse(job.result!) as { code: string; message: string; type: string };
      expect(error.code).toBe(how === "revoked" ? "key_revoked" : "key_expired");
      expect(error.message).toMatch(new RegExp(`${how} before the job ran; nothing was sent to the model`));
      expect(job.body).toBe(""); // the prompt is gone from Redis
      expect(h.fake.records.requests.some((r) => r.rawBody.includes(secret))).toBe(false);
      const run = audit.entries.find((e) => e.requestId === id);
      expect(run).toMatchObject({
        keyId: record.id,
        model: "cold",
        jobId: id,
        status: 401,
        error: error.code,
        backend: null,
        costUsd: 0,
      });
    });
  }
});

describe("a job in the audit stream, the metrics and the limits like a request", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it("its submission and its run each write an audit line and count in aiorch_requests_total", async () => {
    const { url, audit, gateway } = await h.start();
    const { key, record } = await h.store.create({ name: "audited" });
    const accepted = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "x-request-id": "sub-1",
      },
      body: JSON.stringify(jobBody("chat")),
    });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as { id: string };
    expect((await waitForJob(h, id)).status).toBe("succeeded");
    const lines = audit.entries.filter((e) => e.jobId === id);
    expect(lines).toHaveLength(2);
    const submitted = lines.find((e) => e.endpoint === "jobs");
    const ran = lines.find((e) => e.endpoint !== "jobs");
    expect(submitted).toMatchObject({ status: 202, keyId: record.id, model: "chat", backend: null });
    expect(submitted!.requestId).not.toBe(id);
    expect(ran).toMatchObject({
      requestId: id,
      endpoint: "chat",
      status: 200,
      keyId: record.id,
      model: "chat",
      completionTokens: 3,
      error: null,
    });
    expect(ran!.backend).toBeTruthy();
    expect(ran!.promptTokens).toBeGreaterThan(0);
    const text = await gateway.metrics.registry.metrics();
    expect(text).toMatch(/aiorch_requests_total\{model="chat",variant="",status="202"\} 1\b/);
    expect(text).toMatch(/aiorch_requests_total\{model="chat",variant="",status="200"\} 1\b/);
    // refused by a limit: a line and a count too
    const limited = await h.store.create({ name: "limited", rpm: 1 });
    expect((await submit(url, limited.key, jobBody("chat"))).status).toBe(202);
    expect((await submit(url, limited.key, jobBody("chat"))).status).toBe(429);
    expect(audit.entries.filter((e) => e.keyId === limited.record.id && e.endpoint === "jobs")).toEqual([
      expect.objectContaining({ status: 202 }),
      expect.objectContaining({ status: 429, error: "rate_limit_exceeded" }),
    ]);
  });

  it("the tokens it reserved are settled to its usage when it finishes", async () => {
    const { url } = await h.start();
    // 1,200 tokens per minute refill 20 a second: a give-back of ~500 shows at once, a refill would take 25 s
    const { key, record } = await h.store.create({ name: "settled", tpm: 1_200 });
    const bucket = h.keys.rateBucket(record.id, "tpm");
    const level = async () => {
      const [tokens, ts] = await h.redis.hmget(bucket, "tokens", "ts");
      return Math.min(1_200, Number(tokens) + ((Date.now() - Number(ts)) * 1_200) / 60_000);
    };
    // no max_tokens: 512 completion tokens are reserved; the fake answers with a few
    const accepted = await submit(url, key, {
      endpoint: "/v1/chat/completions",
      body: { model: "chat", messages: [{ role: "user", content: "hi" }] },
    });
    expect(accepted.status).toBe(202);
    expect(Number(accepted.headers.get("x-ratelimit-remaining-tokens"))).toBeLessThan(700);
    const { id } = (await accepted.json()) as { id: string };
    const job = await waitForJob(h, id);
    expect(job.status).toBe("succeeded");
    const used = (JSON.parse(job.result!) as { usage: { total_tokens: number } }).usage.total_tokens;
    expect(used).toBeLessThan(100);
    let settled = 0;
    for (let i = 0; i < 40 && settled < 1_100; i++) {
      await new Promise((r) => setTimeout(r, 25));
      settled = await level();
    }
    expect(settled).toBeGreaterThan(1_100);
  });
});

describe("security.encryptQueued without a key ring", () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const prefix = `e${randomBytes(4).toString("hex")}:`;
  const sealing = testRuntimeConfig("http://127.0.0.1:9/v1", prefix, { security: "{ encryptQueued: true }" });
  const dir = mkdtempSync(join(tmpdir(), "aiorch-seal-"));
  const configFile = join(dir, "runtime.json");
  writeFileSync(configFile, JSON.stringify(sealing));
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    const found = await redis.keys(`${prefix}*`);
    if (found.length > 0) await redis.del(...found);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it("buildGateway throws instead of storing job bodies in clear", async () => {
    await expect(buildGateway({ config: sealing, redis, runJobs: false })).rejects.toThrow(
      /security\.encryptQueued is on but no key ring was given.*AIORCH_ENCRYPTION_KEYS/,
    );
  });

  it("startGateway refuses to start, naming AIORCH_ENCRYPTION_KEYS and the config key; with the ring it seals", async () => {
    const lines: string[] = [];
    const options = {
      config: sealing,
      port: 0,
      metricsPort: 0,
      host: "127.0.0.1",
      log: (line: string) => lines.push(line),
    };
    await expect(startGateway({ ...options, env: { REDIS_URL } })).rejects.toThrow(
      /security\.encryptQueued is on.*AIORCH_ENCRYPTION_KEYS is not set.*ai-orchestrator:security\.encryptQueued: false/,
    );
    expect(lines).toEqual([]); // refused before it listened anywhere
    const handle = await startGateway({
      ...options,
      env: { REDIS_URL, AIORCH_ENCRYPTION_KEYS: newKeyRingEntry("k1") },
    });
    try {
      const { ApiKeyStore } = await import("../../core/api-keys");
      const { redisKeys } = await import("../../core/redis-keys");
      const keys = redisKeys(prefix);
      const { key } = await new ApiKeyStore(redis, keys).create({ name: "sealed" });
      const accepted = await submit(`http://127.0.0.1:${handle.port}`, key, jobBody("cold"));
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      expect(isSealed((await redis.hget(keys.job(id), "body"))!)).toBe(true);
    } finally {
      await handle.close();
    }
    // an explicit local opt-out runs, and says so
    const plain = await startGateway({ ...options, env: { REDIS_URL }, allowPlaintextQueue: true });
    await plain.close();
    expect(lines.join("\n")).toMatch(
      /WARNING security\.encryptQueued is on but AIORCH_ENCRYPTION_KEYS is not set/,
    );
  });

  it("aiorch gateway exits 2 with the fix; --plaintext-jobs runs it on a workstation", async () => {
    const bin = join(ROOT, "bin", "aiorch.js");
    const args = ["gateway", "--config", configFile, "--port", "0", "--metrics-port", "0"];
    const env = { ...process.env, REDIS_URL, AIORCH_ENCRYPTION_KEYS: "" };
    const refused = spawnSync(process.execPath, [bin, ...args], { env, encoding: "utf8", timeout: 60_000 });
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/aiorch gateway: security\.encryptQueued is on .*AIORCH_ENCRYPTION_KEYS/);
    expect(refused.stderr).toMatch(/--plaintext-jobs/);
    const child = spawn(process.execPath, [bin, ...args, "--plaintext-jobs"], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(child);
    const seen = await new Promise<string>((resolve, reject) => {
      let text = "";
      child.stderr!.on("data", (d: Buffer) => {
        text += d.toString();
        if (/listening on http/.test(text)) resolve(text);
      });
      child.on("exit", (code) => reject(new Error(`gateway exited ${code}: ${text}`)));
      setTimeout(() => reject(new Error(`gateway did not start: ${text}`)), 30_000);
    });
    expect(seen).toMatch(/WARNING security\.encryptQueued is on/);
    child.kill("SIGTERM");
    expect(await new Promise((resolve) => child.on("exit", resolve))).toBe(0);
  }, 90_000);
});
