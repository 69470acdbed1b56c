/**
 * Routes to workers outside the cluster pin the worker's certificate: the gateway talks to the backend only when
 * it presents exactly that certificate, and otherwise fails as for an unreachable backend — before sending a
 * byte of the request or the worker's token.
 */
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeRoute, encodeRoute, type Route } from "../../core/protocol";
import { createWorkerCertificate, type WorkerCertificate } from "../../core/x509";
import type { Gateway } from "../../gateway/app";
import { BackendRegistry } from "../../gateway/routing";
import { UpstreamClient } from "../../gateway/upstream";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { createHarness, type Harness } from "./harness";

const WORKER_TOKEN = "worker-token-tls-1";

let h: Harness;
let url: string;
let opsUrl: string;
let gateway: Gateway;
let key: string;
let served: WorkerCertificate;
let other: WorkerCertificate;
/** A vLLM-like worker serving https with `served`, demanding its token. */
let worker: FakeVllm;

const pin = (c: WorkerCertificate) => ({ certPem: c.certPem, fingerprint256: c.fingerprint256 });

beforeAll(async () => {
  h = await createHarness();
  ({ url, opsUrl, gateway } = await h.start());
  key = await h.createKey();
  served = createWorkerCertificate("wtls");
  other = createWorkerCertificate("wtls");
  worker = await startFakeVllm({
    model: "cold",
    apiKey: WORKER_TOKEN,
    tls: { cert: served.certPem, key: served.keyPem },
  });
});
afterAll(async () => {
  await worker.close();
  await h.close();
});
afterEach(async () => {
  await h.removeRoutes("cold");
  worker.reset();
});

const chat = (body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "cold", messages: [{ role: "user", content: "hi there" }], ...body }),
  });

describe("a route with a pinned certificate", () => {
  it("reaches a backend that presents the pinned certificate, with the worker's token", async () => {
    expect(worker.url).toMatch(/^https:\/\//);
    await h.addRoute("cold", {
      workerId: "wtls",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: pin(served),
    });
    const response = await chat({ max_tokens: 3 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]?.message.content.split(" ")).toHaveLength(3);
    expect(worker.records.requests).toHaveLength(1);
    expect(worker.records.requests[0]?.headers.authorization).toBe(`Bearer ${WORKER_TOKEN}`);
  });

  it("streams through the pinned connection", async () => {
    await h.addRoute("cold", {
      workerId: "wtls",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: pin(served),
    });
    const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "cold",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 4,
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text.trim().split(/\s+/)).toHaveLength(4);
  });

  it("a backend presenting another certificate is a 502, and the backend never sees the request", async () => {
    await h.addRoute("cold", {
      workerId: "wtls",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: pin(other),
    });
    const response = await chat();
    expect(response.status).toBe(502);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/unreachable/);
    expect(worker.records.requests).toHaveLength(0);
    expect(worker.records.requestCounts).toEqual({});
  });

  it("a pin whose certificate does not match its fingerprint is refused without connecting", async () => {
    await h.addRoute("cold", {
      workerId: "wtls",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: { certPem: served.certPem, fingerprint256: other.fingerprint256 },
    });
    const response = await chat();
    expect(response.status).toBe(502);
    expect(worker.records.requests).toHaveLength(0);
  });

  it("fails over from a backend with the wrong certificate to one with the right one", async () => {
    await h.addRoute("cold", {
      workerId: "wgood",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: pin(served),
    });
    await h.addRoute("cold", {
      workerId: "wbad",
      baseUrl: worker.url,
      auth: { kind: "bearer", token: WORKER_TOKEN },
      tls: pin(other),
    });
    const connectErrors = async () => {
      const text = await (await fetch(`${opsUrl}/metrics`)).text();
      const line = text
        .split("\n")
        .find((l) => /upstream_errors_total\{.*model="cold".*kind="connect"/.test(l));
      return Number(line?.split(" ").pop() ?? 0);
    };
    const before = await connectErrors();
    // one request already on wgood makes wbad the least loaded, so it is tried first
    const good = (await gateway.registry.backends("cold")).find((b) => b.id === "wgood")!;
    gateway.registry.acquire(good);
    try {
      const response = await chat({ max_tokens: 1 });
      expect(response.status).toBe(200);
    } finally {
      gateway.registry.release(good);
    }
    expect(await connectErrors()).toBe(before + 1);
    expect(worker.records.requests).toHaveLength(1);
  });
});

describe("route decoding", () => {
  const base: Route = {
    workerId: "w1",
    provider: "vastai",
    baseUrl: "https://203.0.113.7:41234/v1",
    auth: { kind: "bearer", token: "t" },
    capacity: 4,
    usdPerSecond: 0.0001,
  };

  it("keeps a valid pin and routes without one as before", () => {
    const tls = pin(createWorkerCertificate("w1"));
    expect(decodeRoute(encodeRoute({ ...base, tls }))?.tls).toEqual(tls);
    expect(decodeRoute(encodeRoute(base))).not.toHaveProperty("tls");
  });

  it("drops a route whose pin is malformed or that pins a certificate over plain http", () => {
    const tls = pin(createWorkerCertificate("w1"));
    expect(
      decodeRoute(encodeRoute({ ...base, baseUrl: "http://203.0.113.7:41234/v1", tls })),
    ).toBeUndefined();
    for (const bad of [
      { ...tls, fingerprint256: "abc" },
      { ...tls, certPem: "not a certificate" },
      { certPem: tls.certPem },
      "pinned",
      null,
    ])
      expect(decodeRoute(JSON.stringify({ ...base, tls: bad }))).toBeUndefined();
  });
});

describe("the upstream client's pinned connections", () => {
  it("plain backends share one Agent; a pinned backend gets its own, closed when its route disappears", async () => {
    const registry = new BackendRegistry(h.redis, h.keys, h.config);
    const upstream = new UpstreamClient({ timeoutMs: 5_000 });
    registry.on("backend-removed", (id: string) => upstream.forget(id));
    try {
      await h.addRoute("cold", {
        workerId: "wtls",
        baseUrl: worker.url,
        auth: { kind: "bearer", token: WORKER_TOKEN },
        tls: pin(served),
      });
      await h.addRoute("cold", { workerId: "wplain", baseUrl: h.fake.url });
      const backends = await registry.backends("cold");
      const body = JSON.stringify({
        model: "cold",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 1,
      });
      for (const backend of backends.filter((b) => b.provider === "vastai")) {
        const response = await upstream.post(backend, "/chat/completions", body, {
          requestId: `r-${backend.id}`,
          signal: new AbortController().signal,
        });
        expect(response.status).toBe(200);
        await response.body.dump();
      }
      expect(upstream.pinnedBackends()).toEqual(["wtls"]);

      // the controller removes the route and announces it
      await h.redis.hdel(h.keys.routes("cold"), "wtls");
      registry.routesChanged("cold");
      await expect.poll(() => upstream.pinnedBackends()).toEqual([]);
    } finally {
      await upstream.close();
    }
  });

  it("never falls back to an unpinned connection: a pinned backend without https is refused", async () => {
    const upstream = new UpstreamClient({ timeoutMs: 5_000 });
    try {
      const backend = {
        id: "wx",
        workerId: "wx",
        provider: "vastai" as const,
        baseUrl: h.fake.url, // plain http
        auth: { kind: "none" as const },
        capacity: 1,
        usdPerSecond: 0,
        tls: pin(served),
      };
      await expect(
        upstream.post(backend, "/chat/completions", "{}", {
          requestId: "r",
          signal: new AbortController().signal,
        }),
      ).rejects.toMatchObject({ kind: "connect" });
      expect(upstream.pinnedBackends()).toEqual([]);
    } finally {
      await upstream.close();
    }
  });
});
