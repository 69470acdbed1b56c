import { parseTraceParent as otelParseTraceParent } from "@opentelemetry/core";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { ApiKeyStore, ApiKeyVerifier, hashApiKey } from "../../core/api-keys";
import { ledgerMonth } from "../../core/protocol";
import { redisKeys } from "../../core/redis-keys";
import type { AuditEntry } from "../../core/request-audit";
import { AbortFlag } from "../../gateway/abort";
import { AuditLog, auditLine, isoTimestamp } from "../../gateway/audit";
import { spendMonthKey } from "../../gateway/bookkeeping";
import { upstreamBody, usageOf } from "../../gateway/inference";
import { GatewayMetrics } from "../../gateway/metrics";
import { SseUsageTap } from "../../gateway/sse";
import { parseTraceParent } from "../../gateway/tracing";
import { validateInference } from "../../gateway/validate";
import { REDIS_URL } from "./harness";

const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };
const answer = (rest: Record<string, unknown>) =>
  Buffer.from(JSON.stringify({ id: "x", object: "chat.completion", choices: [], ...rest }));

describe("reading usage from a non-streamed answer without parsing all of it", () => {
  it("finds the usage object, nested details included", () => {
    expect(usageOf(answer({ usage }))).toEqual(usage);
    const detailed = { ...usage, prompt_tokens_details: { cached_tokens: 3 } };
    expect(usageOf(answer({ usage: detailed, prompt_logprobs: null }))).toEqual(detailed);
    expect(usageOf(Buffer.from(`\n  ${JSON.stringify({ usage })}  \n`))).toEqual(usage);
  });

  it('is not fooled by "usage" inside the generated text', () => {
    const text = 'He said: "usage": {"prompt_tokens": 999} } {';
    const body = answer({ choices: [{ message: { content: text } }], usage });
    expect(usageOf(body)).toEqual(usage);
    expect(usageOf(answer({ choices: [{ message: { content: text } }] }))).toBeUndefined();
  });

  it("reads the token counts JSON.parse reads, for any usage object and spacing", () => {
    const count = fc.oneof(fc.nat(), fc.nat({ max: 2 ** 40 }), fc.double({ min: 0, max: 1e6, noNaN: true }));
    const usageObject = fc.dictionary(
      fc.oneof(
        fc.constantFrom("prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"),
        fc.string(),
      ),
      fc.oneof(count, fc.constant(null), fc.jsonValue()),
      { maxKeys: 6 },
    );
    const spacing = fc.constantFrom(undefined, 1, "\t", " \n ");
    const pick = (u: unknown) => {
      if (typeof u !== "object" || u === null) return u;
      const r = u as Record<string, unknown>;
      return [r.prompt_tokens, r.completion_tokens, r.total_tokens];
    };
    fc.assert(
      fc.property(usageObject, spacing, (u, space) => {
        const text = JSON.stringify({ id: "x", choices: [], usage: u }, null, space);
        expect(pick(usageOf(Buffer.from(text)))).toEqual(pick(JSON.parse(text).usage));
      }),
      { numRuns: 3_000 },
    );
  });

  it("no usage, or null usage, is none", () => {
    expect(usageOf(answer({}))).toBeUndefined();
    expect(usageOf(answer({ usage: null }))).toBeUndefined();
  });

  it("a cut-off answer or an HTML page is malformed", () => {
    const whole = answer({ usage });
    expect(usageOf(whole.subarray(0, whole.length - 10))).toBe("malformed");
    expect(usageOf(Buffer.from("<html>Bad Gateway</html>"))).toBe("malformed");
    expect(usageOf(Buffer.from(""))).toBe("malformed");
    expect(usageOf(Buffer.from('{"usage": {"prompt_tokens": 1,}}'))).toBe("malformed");
  });
});

describe("the SSE tap works on bytes", () => {
  const enc = (s: string) => Buffer.from(s);
  const dec = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("utf8") : "");
  const usageFrame = `data: {"choices":[],"usage":${JSON.stringify(usage)}}`;

  it("passes CRLF-delimited and multi-line frames as they came", () => {
    const tap = new SseUsageTap(true);
    const text = `event: message\r\ndata: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n${usageFrame}\r\n\r\ndata: [DONE]\r\n\r\n`;
    expect(dec(tap.push(enc(text)))).toBe(text);
    expect(tap.usage).toEqual(usage);
    expect(tap.sawDone).toBe(true);
  });

  it("forwards a chunk of whole content frames without copying it", () => {
    const tap = new SseUsageTap(false);
    const chunk = enc(
      'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n',
    );
    const out = tap.push(chunk);
    expect(out?.buffer).toBe(chunk.buffer);
    expect(tap.contentFrames).toBe(2);
  });

  it("drops the usage-only frame from the middle of a chunk, keeping what is around it", () => {
    const tap = new SseUsageTap(false);
    const a = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\n';
    const out = dec(tap.push(enc(`${a}${usageFrame}\n\n: comment\n\ndata: [DONE]\n\n`)));
    expect(out).toBe(`${a}: comment\n\ndata: [DONE]\n\n`);
    expect(tap.usage).toEqual(usage);
  });

  it("counts content frames and finds [DONE] however it is spaced and however the bytes are cut", () => {
    const space = fc.constantFrom("", " ", "  ", "\t", "\u00a0");
    const frame = fc.oneof(
      fc.string({ maxLength: 8 }).map((t) => ({
        text: `data: ${JSON.stringify({ choices: [{ delta: { content: t } }] })}`,
        content: 1,
      })),
      fc.tuple(space, space).map(([a, b]) => ({ text: `data:${a}[DONE]${b}`, content: 0, done: true })),
      fc.constant({ text: "data: [DONE] and more]", content: 1 }), // ends in "]" but is not [DONE]
      fc.constant({ text: ": keep-alive", content: 0 }),
    );
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, cuts) => {
        const bytes = Buffer.from(frames.map((f) => `${f.text}\n\n`).join(""), "latin1");
        const tap = new SseUsageTap(true);
        const out: Buffer[] = [];
        let at = 0;
        for (const cut of [...cuts.map((c) => c % (bytes.length + 1)).sort((x, y) => x - y), bytes.length]) {
          if (cut < at) continue;
          const piece = tap.push(bytes.subarray(at, cut));
          if (piece) out.push(Buffer.from(piece));
          at = cut;
        }
        expect(Buffer.concat(out).equals(bytes)).toBe(true);
        expect(tap.contentFrames).toBe(frames.reduce((n, f) => n + f.content, 0));
        expect(tap.sawDone).toBe(frames.some((f) => "done" in f));
      }),
      { numRuns: 1_000 },
    );
  });

  it("leaves data it cannot read to the client", () => {
    const tap = new SseUsageTap(false);
    const text = 'data: null\n\ndata: {"usage": oops}\n\n';
    expect(dec(tap.push(enc(text)))).toBe(text);
  });
});

describe("a batching audit log", () => {
  const entry = (i: number): AuditEntry => ({
    ts: "t",
    requestId: `r${i}`,
    keyId: null,
    model: "m",
    endpoint: "chat",
    backend: null,
    provider: null,
    status: 200,
    stream: false,
    promptTokens: 0,
    completionTokens: 0,
    costUsd: 0,
    latencyMs: 0,
    ttftMs: null,
    queueMs: 0,
    error: null,
  });

  it("writes the lines of a few milliseconds in one write, every line whole", async () => {
    const writes: string[] = [];
    const log = new AuditLog(
      { write: (chunk) => writes.push(chunk) > 0, once: () => undefined },
      { batch: true },
    );
    for (let i = 0; i < 5; i++) log.record(entry(i));
    expect(writes).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(writes).toHaveLength(1);
    const lines = writes[0]!.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((l) => (JSON.parse(l) as AuditEntry).requestId)).toEqual(["r0", "r1", "r2", "r3", "r4"]);
    log.record(entry(5));
    log.flush(); // a closing gateway does not wait for the next turn
    expect(writes).toHaveLength(2);
  });

  it("still drops and counts beyond its capacity while the sink is busy", () => {
    let drain: (() => void) | undefined;
    const writes: string[] = [];
    const log = new AuditLog(
      {
        write: (chunk) => {
          writes.push(chunk);
          return false;
        },
        once: (_event, listener) => {
          drain = listener;
        },
      },
      { batch: true, capacity: 3 },
    );
    for (let i = 0; i < 3; i++) log.record(entry(i));
    log.flush();
    expect(writes).toHaveLength(1);
    for (let i = 3; i < 10; i++) log.record(entry(i));
    expect(log.pending).toBe(3);
    expect(log.dropped).toBe(4);
    drain?.();
    expect(writes).toHaveLength(2);
  });
});

describe("the spend hash of a request's month", () => {
  it("is the ledger's month key, across month and year ends and for each key prefix", () => {
    const a = redisKeys("a:");
    const b = redisKeys("b:");
    for (const iso of [
      "2026-11-30T23:59:59.999Z",
      "2026-12-01T00:00:00.000Z",
      "2026-12-31T23:59:59.999Z",
      "2027-01-01T00:00:00.000Z",
    ]) {
      const ms = Date.parse(iso);
      expect(spendMonthKey(a, ms)).toBe(a.spendMonth(ledgerMonth(ms)));
      expect(spendMonthKey(b, ms)).toBe(b.spendMonth(ledgerMonth(ms)));
    }
    expect(spendMonthKey(a, Date.parse("2026-11-15T00:00:00Z"))).toBe("a:spend:month:2026-11");
  });
});

describe("the request's abort flag", () => {
  it("calls each listener once, not after it was removed, and says it aborted", () => {
    const flag = new AbortFlag();
    const calls: string[] = [];
    const a = () => calls.push("a");
    const b = () => calls.push("b");
    flag.addEventListener("abort", a, { once: true });
    flag.addEventListener("abort", b, { once: true });
    flag.removeEventListener("abort", b);
    expect(flag.aborted).toBe(false);
    flag.abort();
    flag.abort();
    expect(flag.aborted).toBe(true);
    expect(calls).toEqual(["a"]);
    expect(flag.listenerCount()).toBe(0);
    flag.addEventListener("abort", b);
    expect(flag.listenerCount()).toBe(0); // as on an AbortSignal: a listener added after the abort never runs
    expect(calls).toEqual(["a"]);
  });
});

describe("the audit line written field by field", () => {
  const text = fc.oneof(
    fc.constantFrom("req_0af7651916cd43dd", "chat", "local:chat", "w-1", "", "a b@c/d+e:f.g-h"),
    fc.string({ unit: "binary" }), // quotes, backslashes, control characters, lone surrogates
  );
  const number = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, 1e21),
  );
  const entry = fc.record(
    {
      ts: text,
      requestId: text,
      keyId: fc.option(text, { nil: null }),
      model: text,
      variant: text,
      endpoint: text,
      backend: fc.option(text, { nil: null }),
      provider: fc.option(text, { nil: null }),
      status: number,
      stream: fc.boolean(),
      promptTokens: number,
      completionTokens: number,
      costUsd: number,
      latencyMs: number,
      ttftMs: fc.option(number, { nil: null }),
      queueMs: number,
      error: fc.option(text, { nil: null }),
      traceId: text,
      images: number,
      prompt: fc.jsonValue(),
    },
    {
      requiredKeys: [
        "ts",
        "requestId",
        "keyId",
        "model",
        "endpoint",
        "backend",
        "provider",
        "status",
        "stream",
        "promptTokens",
        "completionTokens",
        "costUsd",
        "latencyMs",
        "ttftMs",
        "queueMs",
        "error",
      ],
    },
  );

  it("is exactly what JSON.stringify prints for the entry, for any strings and numbers", () => {
    fc.assert(
      fc.property(entry, (e) => {
        expect(auditLine(e as AuditEntry)).toBe(`${JSON.stringify(e)}\n`);
      }),
      { numRuns: 2_000 },
    );
  });

  it("leaves out fields that are undefined, as JSON.stringify does", () => {
    const e: AuditEntry = {
      ts: "2026-11-27T15:04:05.012Z",
      requestId: "req_1",
      keyId: null,
      model: "chat",
      variant: undefined,
      endpoint: "chat",
      backend: null,
      provider: null,
      status: 429,
      stream: false,
      promptTokens: 0,
      completionTokens: 0,
      costUsd: 0,
      latencyMs: 1.5,
      ttftMs: null,
      queueMs: 0,
      error: "rate_limit_exceeded",
      traceId: undefined,
      prompt: undefined,
    };
    expect(auditLine(e)).toBe(`${JSON.stringify(e)}\n`);
    expect(auditLine(e)).not.toContain("variant");
  });
});

describe("request and token counters counted in plain numbers until a scrape", () => {
  it("show exact sums at every read, never count twice, and keep labels bounded", async () => {
    const metrics = new GatewayMetrics(new Set(["chat"]), { defaultMetrics: false });
    const series = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)!.get()).values.map((v) => ({
        ...v.labels,
        value: v.value,
      }));
    for (let i = 0; i < 5; i++) {
      metrics.countRequest("chat", 200);
      metrics.countTokens("chat", 10, 3);
    }
    metrics.countRequest("chat", 429);
    metrics.countRequest("chat", 200, "v2");
    metrics.countRequest("client-made-up", 404);
    metrics.countTokens("client-made-up", 1, 0);
    expect(await series("aiorch_requests_total")).toEqual(
      expect.arrayContaining([
        { model: "chat", variant: "", status: "200", value: 5 },
        { model: "chat", variant: "", status: "429", value: 1 },
        { model: "chat", variant: "v2", status: "200", value: 1 },
        { model: "unknown", variant: "", status: "404", value: 1 },
      ]),
    );
    expect(await series("aiorch_gateway_tokens_total")).toEqual(
      expect.arrayContaining([
        { model: "chat", type: "prompt", value: 50 },
        { model: "chat", type: "completion", value: 15 },
        { model: "unknown", type: "prompt", value: 1 },
      ]),
    );
    // a second read adds nothing; later requests add to the totals
    metrics.countRequest("chat", 200);
    metrics.countTokens("chat", 2, 1);
    await metrics.registry.metrics();
    const text = await metrics.registry.metrics();
    expect(text).toContain('aiorch_requests_total{model="chat",variant="",status="200"} 6');
    expect(text).toContain('aiorch_gateway_tokens_total{model="chat",type="prompt"} 52');
    expect(text).toContain('aiorch_gateway_tokens_total{model="chat",type="completion"} 16');
  });
});

describe("the audit line's timestamp", () => {
  it("is what toISOString prints, across milliseconds, seconds, days and years", () => {
    const starts = [
      Date.parse("2026-11-27T15:04:05.000Z"),
      Date.parse("2026-12-31T23:59:59.990Z"),
      Date.parse("2028-02-29T00:00:00.000Z"),
    ];
    for (const start of starts) {
      for (let ms = start; ms < start + 2_500; ms += 7) {
        expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
      }
    }
    expect(isoTimestamp(starts[0]! + 12.7)).toBe("2026-11-27T15:04:05.012Z");
    // going back in time (a test clock) formats again
    expect(isoTimestamp(Date.parse("2020-01-01T00:00:00.001Z"))).toBe("2020-01-01T00:00:00.001Z");
  });
});

describe("traceparent parsing without loading OpenTelemetry", () => {
  it("agrees with @opentelemetry/core on valid, malformed and future-version headers", () => {
    const cases = [
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
      " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
      "garbage",
      "",
    ];
    for (const value of cases) expect(parseTraceParent(value), value).toEqual(otelParseTraceParent(value));
  });
});

describe("the body a stream sends upstream", () => {
  const member = fc
    .string({ maxLength: 12 })
    .filter((k) => k !== "__proto__" && k !== "constructor" && k !== "stream_options");
  const bodies = fc.record({
    extra: fc.dictionary(member, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
    own: fc.option(fc.dictionary(member, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }), { nil: undefined }),
    indent: fc.constantFrom(0, 1, 2, "\t"),
    padding: fc.constantFrom("", " ", "\n", "\r\n  "),
  });

  it("asks for usage and keeps everything else, whether spliced into the text or serialized again", () => {
    fc.assert(
      fc.property(bodies, ({ extra, own, indent, padding }) => {
        const body: Record<string, unknown> = { ...extra, model: "chat", stream: true };
        if (own !== undefined) body.stream_options = own;
        const json = `${padding}${JSON.stringify(body, null, indent)}${padding}`;
        const req = validateInference("chat", { ...body, messages: [{ role: "user", content: "x" }] }, json);
        const sent = JSON.parse(upstreamBody({ ...req, body: JSON.parse(json) as Record<string, unknown> }));
        // (through JSON once, as the body was: -0 is written 0)
        expect(sent).toEqual(
          JSON.parse(JSON.stringify({ ...body, stream_options: { ...own, include_usage: true } })),
        );
      }),
      { numRuns: 1_000 },
    );
  });

  it("is the client's text untouched when nothing changes (no stream)", () => {
    const json = '{ "model":"chat", "max_tokens": 2.0, "messages":[{"role":"user","content":"x"}] }';
    const req = validateInference("chat", JSON.parse(json), json);
    expect(upstreamBody(req)).toBe(json);
  });
});

describe("the key verifier's cache", () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const keys = redisKeys(`verifier${process.pid}:`);
  const store = new ApiKeyStore(redis, keys);
  afterAll(async () => {
    const found = await redis.keys(`verifier${process.pid}:*`);
    if (found.length > 0) await redis.del(...found);
    redis.disconnect();
  });

  it("answers hits without Redis, and refuses a cached key once its expiry passes", async () => {
    let now = 1_000_000;
    const verifier = new ApiKeyVerifier(store, { ttlMs: 60_000, now: () => now });
    const { key, record } = await store.create({ name: "soon", expiresAtMs: now + 1_000, nowMs: now });
    expect(verifier.verifyCached(key)).toBeUndefined(); // not cached yet: the caller reads Redis
    expect(await verifier.verify(key)).toEqual({ ok: true, key: record });
    const hit = verifier.verifyCached(key);
    expect(hit).toEqual({ ok: true, key: record });
    expect(verifier.verifyCached(key)).toBe(hit); // the same answer object: nothing built per request
    now += 1_000;
    expect(verifier.verifyCached(key)).toEqual({
      ok: false,
      reason: "This API key has expired",
      failure: "expired",
    });
    expect(await verifier.verify(key)).toEqual({
      ok: false,
      reason: "This API key has expired",
      failure: "expired",
    });
  });

  it("never matches a stored record whose hash is not the key's, and caches that refusal briefly", async () => {
    let now = 2_000_000;
    const verifier = new ApiKeyVerifier(store, { ttlMs: 60_000, negativeTtlMs: 1_000, now: () => now });
    const { key } = await store.create({ name: "corrupt", nowMs: now });
    const hash = hashApiKey(key);
    await redis.hset(keys.apiKey(hash), "hash", hashApiKey(`${key}x`)); // a corrupted entry
    expect(await verifier.verify(key)).toEqual({
      ok: false,
      reason: "Incorrect API key provided",
      failure: "invalid",
    });
    await redis.hset(keys.apiKey(hash), "hash", hash); // repaired
    expect(verifier.verifyCached(key)).toEqual({
      ok: false,
      reason: "Incorrect API key provided",
      failure: "invalid",
    });
    now += 1_000; // the refusal's shorter time is over: the next request reads Redis again
    expect(verifier.verifyCached(key)).toBeUndefined();
    expect((await verifier.verify(key)).ok).toBe(true);
  });
});
