/**
 * Request ids (issue 20): everything the gateway stores or counts — waiting-set members, demand messages, traces,
 * the id sent upstream — is a server-generated id; the client's `x-request-id` is only a label (bounded, echoed as
 * `x-client-request-id`, written to the audit line as `clientRequestId`).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, REDIS_URL, testRuntimeConfig } from "./harness";

let h: Harness;
let key: string;

beforeAll(async () => {
  h = await createHarness();
  key = await h.createKey();
});
afterAll(() => h.close());

const SERVER_ID = /^req_[0-9a-f]{32}$/;

describe("client request ids are labels, not Redis members", () => {
  it("N concurrent waiting requests with the same x-request-id are N waiting entries, each counted by the cap", async () => {
    const n = 12;
    const capped = await h.start(
      testRuntimeConfig(h.fake.url, h.keys.prefix, {
        gateway: `{ host: ai.example.com, maxWaitingPerModel: ${n}, limits: { rpm: 1000, tpm: 1000000 } }`,
      }),
    );
    const demand = new Redis(REDIS_URL);
    const signals: { requestId: string }[] = [];
    demand.on("message", (_channel: string, message: string) => signals.push(JSON.parse(message)));
    await demand.subscribe(h.keys.demandChannel);
    const call = (signal?: AbortSignal) =>
      fetch(`${capped.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "x-request-id": "same-id",
        },
        // "cold" has no worker: every request waits for one
        body: JSON.stringify({ model: "cold", messages: [{ role: "user", content: "x" }] }),
        signal,
      });
    const abort = new AbortController();
    try {
      const waiting = Array.from({ length: n }, () => call(abort.signal).catch(() => undefined));
      const deadline = Date.now() + 3_000;
      while (signals.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const members = await h.redis.zrange(h.keys.waiting("cold"), 0, -1);
      expect(members).toHaveLength(n);
      for (const member of members) expect(member).toMatch(SERVER_ID);
      // the controller hears n distinct requests
      expect(new Set(signals.map((s) => s.requestId)).size).toBe(n);
      expect(signals.map((s) => s.requestId)).not.toContain("same-id");

      // the cap counts each of them: one more is refused
      const full = await call();
      expect(full.status).toBe(429);
      expect(((await full.json()) as { error: { code: string } }).error.code).toBe("queue_full");
      expect(full.headers.get("x-request-id")).toMatch(SERVER_ID);
      expect(full.headers.get("x-client-request-id")).toBe("same-id");

      abort.abort();
      await Promise.all(waiting);
      const until = Date.now() + 2_000;
      while ((await h.redis.zcard(h.keys.waiting("cold"))) > 0 && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      expect(await h.redis.zcard(h.keys.waiting("cold"))).toBe(0);

      // the audit lines: n + 1 distinct server ids, the client's id as a label on each
      await new Promise((r) => setTimeout(r, 50));
      const entries = capped.audit.entries.filter((e) => e.model === "cold");
      expect(entries).toHaveLength(n + 1);
      expect(new Set(entries.map((e) => e.requestId)).size).toBe(n + 1);
      for (const e of entries) {
        expect(e.requestId).toMatch(SERVER_ID);
        expect(e.clientRequestId).toBe("same-id");
      }
    } finally {
      abort.abort();
      demand.disconnect();
    }
  });

  it("the response's x-request-id is the server's id; the client's comes back as x-client-request-id", async () => {
    const { url } = await h.start();
    const given = await fetch(`${url}/v1/models`, {
      headers: { authorization: `Bearer ${key}`, "x-request-id": "abc-123" },
    });
    expect(given.status).toBe(200);
    expect(given.headers.get("x-request-id")).toMatch(SERVER_ID);
    expect(given.headers.get("x-client-request-id")).toBe("abc-123");
    // an id outside the label's bounds (characters, length) is dropped, not forwarded or logged
    for (const bad of ["bad id with spaces", "x".repeat(129), "a/b", 'a"b', "a;b=c"]) {
      const response = await fetch(`${url}/v1/models`, {
        headers: { authorization: `Bearer ${key}`, "x-request-id": bad },
      });
      expect(response.headers.get("x-request-id")).toMatch(SERVER_ID);
      expect(response.headers.get("x-client-request-id")).toBeNull();
    }
  });

  it("upstream gets the server's id; the audit line and stream headers carry the client's as a label", async () => {
    // "chat" is served by the local provider (the fake)
    const { url, audit } = await h.start();
    h.fake.reset();
    for (const stream of [false, true]) {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "x-request-id": "client-7",
        },
        body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }], stream }),
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      const serverId = response.headers.get("x-request-id");
      expect(serverId).toMatch(SERVER_ID);
      expect(response.headers.get("x-client-request-id")).toBe("client-7");
      const upstream = h.fake.records.requests.at(-1)!;
      expect(upstream.headers["x-request-id"]).toBe(serverId);
      await new Promise((r) => setTimeout(r, 20));
      const entry = audit.entries.at(-1)!;
      expect(entry.requestId).toBe(serverId);
      expect(entry.clientRequestId).toBe("client-7");
    }
  });
});
