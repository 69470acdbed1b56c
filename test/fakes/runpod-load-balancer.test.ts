/**
 * The RunPod serverless fake's load-balancing endpoints against runpod/docs @a900806: `api-reference-v2/openapi.json`
 * (CreateEndpointRequest's LOAD_BALANCER → RequestCountScaling, EndpointWorkers.idleTimeout, LoadBalancingRequestUrls,
 * ListEndpointWorkersResponse) and `serverless/load-balancing/*.mdx` (health codes, 2 min no-worker timeout with
 * `{"error":"no workers available"}`, 30 MB limit, X-Runpod-Worker-Id).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Endpoint, ListEndpointWorkersResponse } from "../../core/contracts/runpod";
import { schemaViolations } from "./fake-api-server";
import { RunpodServerlessFake } from "./runpod-serverless";
import { type FakeVllm, startFakeVllm } from "./vllm-upstream";

const KEY = "rpa_LB_TEST_KEY";

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const lbBody = {
  name: "aiorch-dev-flux",
  type: "LOAD_BALANCER",
  image: "vllm/vllm-omni:v0.11.0",
  env: { PORT: "8000", HEALTH_CHECK_PATH: "/health" },
  ports: ["8000/http"],
  gpu: { pools: ["ADA_24"] },
  workers: { min: 0, max: 1, idleTimeout: 1 },
  scaling: { type: "REQUEST_COUNT", requestCount: 1 },
};

/** A worker's HTTP server the test drives: its health answer, and what it received. */
interface TestWorker {
  url: string;
  health: number;
  received: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[];
  /** Answers a request; default: 200 JSON echo of the path. */
  onRequest?: (req: IncomingMessage, res: ServerResponse, body: string) => void;
  server: Server;
}

async function startWorker(health = 200): Promise<TestWorker> {
  const w = { health, received: [] } as unknown as TestWorker;
  w.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (req.url === "/health") {
        res.writeHead(w.health);
        res.end();
        return;
      }
      w.received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (w.onRequest) return w.onRequest(req, res, body);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ path: req.url }));
    });
  });
  await new Promise<void>((r) => w.server.listen(0, "127.0.0.1", r));
  w.url = `http://127.0.0.1:${(w.server.address() as AddressInfo).port}`;
  return w;
}

describe("RunPod serverless fake: load-balancing endpoints", () => {
  const fake = new RunpodServerlessFake({
    apiKey: KEY,
    loadBalancer: { healthCheckIntervalMs: 10, idleSecondMs: 50, noWorkerTimeoutMs: 2000 },
  });
  let base: string;
  const workers: TestWorker[] = [];
  let vllm: FakeVllm | undefined;

  beforeAll(async () => {
    base = await fake.start();
  });
  afterEach(async () => {
    fake.reset();
    fake.configureLoadBalancer({
      bootMs: 0,
      noWorkerTimeoutMs: 2000,
      idleSecondMs: 50,
      maxPayloadBytes: 30_000_000,
    });
    for (const w of workers.splice(0)) {
      w.server.closeAllConnections();
      await new Promise((r) => w.server.close(r));
    }
    await vllm?.close();
    vllm = undefined;
  });
  afterAll(() => fake.close());

  async function createLb(overrides: Record<string, unknown> = {}): Promise<string> {
    const created = await call(base, "POST", "/v2/serverless", { ...lbBody, ...overrides });
    expect(created.status).toBe(201);
    return created.json!.id as string;
  }

  it("creates LOAD_BALANCER endpoints on REQUEST_COUNT only, keeps idleTimeout, and shows base/health URLs", async () => {
    const queueDelay = await call(base, "POST", "/v2/serverless", {
      ...lbBody,
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
    });
    expect(queueDelay.status).toBe(422);
    expect(queueDelay.json!.errors).toEqual([expect.stringContaining("$.scaling.type")]);

    const created = await call(base, "POST", "/v2/serverless", lbBody);
    expect(created.status).toBe(201);
    expect(schemaViolations(Endpoint, created.json)).toEqual([]);
    const id = created.json!.id as string;
    expect(created.json).toMatchObject({
      type: "LOAD_BALANCER",
      ports: ["8000/http"],
      workers: { min: 0, max: 1, idleTimeout: 1 },
      requestUrls: { base: `${base}/lb/${id}`, health: `${base}/lb/${id}/health` },
    });
    expect(fake.loadBalancerUrl(id)).toBe(`${base}/lb/${id}`);

    // idleTimeout default 10 (CreateEndpointRequest) for LB; health path default /ping
    const plain = await call(base, "POST", "/v2/serverless", {
      ...lbBody,
      env: {},
      workers: { max: 2 },
    });
    expect(plain.json).toMatchObject({
      workers: { min: 0, max: 2, idleTimeout: 10 },
      requestUrls: { health: `${base}/lb/${plain.json!.id as string}/ping` },
    });

    // still refused for a QUEUE endpoint on REQUEST_COUNT
    const queueRc = await call(base, "POST", "/v2/serverless", { ...lbBody, type: "QUEUE" });
    expect(queueRc.status).toBe(400);

    // type is immutable; QUEUE_DELAY cannot be patched onto a load balancer
    expect((await call(base, "PATCH", `/v2/serverless/${id}`, { type: "QUEUE" })).status).toBe(422);
    const patched = await call(base, "PATCH", `/v2/serverless/${id}`, {
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
    });
    expect(patched.status).toBe(400);
    const ok = await call(base, "PATCH", `/v2/serverless/${id}`, { workers: { idleTimeout: 30 } });
    expect(ok.json).toMatchObject({ type: "LOAD_BALANCER", workers: { idleTimeout: 30 } });

    // no job API on a load balancer
    expect((await call(base, "GET", `/v2/${id}/health`)).status).toBe(404);
    expect(fake.contractViolations).toEqual([]);
  });

  it("lists workers with a summary rolled up from them, for both endpoint types", async () => {
    const id = await createLb();
    const empty = await call(base, "GET", `/v2/serverless/${id}/workers`);
    expect(empty.status).toBe(200);
    expect(schemaViolations(ListEndpointWorkersResponse, empty.json)).toEqual([]);
    expect(empty.json).toMatchObject({
      workers: [],
      summary: { running: 0, idle: 0, initializing: 0, throttled: 0, unhealthy: 0, total: 0 },
    });

    const queue = await call(base, "POST", "/v2/serverless", {
      ...lbBody,
      type: "QUEUE",
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
    });
    const q = fake.endpoints.get(queue.json!.id as string)!;
    q.workersNow = { running: 2, idle: 1, initializing: 0, ready: 0, throttled: 1 };
    const listed = await call(base, "GET", `/v2/serverless/${q.id}/workers`);
    expect(schemaViolations(ListEndpointWorkersResponse, listed.json)).toEqual([]);
    expect(listed.json!.summary).toEqual({
      running: 2,
      idle: 1,
      initializing: 0,
      throttled: 1,
      unhealthy: 0,
      total: 4,
    });
    expect((listed.json!.workers as unknown[]).length).toBe(4);
    expect((await call(base, "GET", "/v2/serverless/nope/workers")).status).toBe(404);
    expect(fake.contractViolations).toEqual([]);
  });

  it("a request at zero workers starts one; it waits while the server initializes and completes once healthy", async () => {
    const worker = await startWorker(204);
    workers.push(worker);
    const id = await createLb();
    fake.attachWorkerServer(id, worker.url, { port: 8000 });
    expect(fake.workersOf(id)).toEqual([]);

    const pending = fetch(`${fake.loadBalancerUrl(id)}/v1/images/generations?x=1`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "x-trace": "t1" },
      body: JSON.stringify({ prompt: "a cat" }),
    });
    // the scaler starts one worker for the waiting request; 204 keeps it INITIALIZING
    await fake.waitForWorkers(id, (ws) => ws.length === 1);
    await fake.scaleNow();
    const listed = await call(base, "GET", `/v2/serverless/${id}/workers`);
    expect(listed.json).toMatchObject({ summary: { initializing: 1, total: 1 } });
    expect(worker.received).toEqual([]);

    worker.health = 200;
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: "/v1/images/generations?x=1" });
    const [w] = fake.workersOf(id);
    expect(res.headers.get("x-runpod-worker-id")).toBe(w!.id);
    expect(worker.received).toHaveLength(1);
    expect(worker.received[0]).toMatchObject({ method: "POST", body: JSON.stringify({ prompt: "a cat" }) });
    expect(worker.received[0]!.headers).toMatchObject({
      "x-trace": "t1",
      "content-type": "application/json",
    });
    // the RunPod key is not handed to the worker (not documented either way)
    expect(worker.received[0]!.headers.authorization).toBeUndefined();

    const after = await call(base, "GET", `/v2/serverless/${id}/workers`);
    expect(after.json).toMatchObject({
      summary: { idle: 1, total: 1 },
      workers: [{ status: "IDLE", isStale: false }],
    });
    expect(fake.contractViolations).toEqual([]);
  });

  it("scales on request count: four waiting requests at requestCount 2 start two workers, all complete", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    const id = await createLb({
      workers: { min: 0, max: 3 },
      scaling: { type: "REQUEST_COUNT", requestCount: 2 },
    });
    fake.configureLoadBalancer({ bootMs: 100 });
    fake.attachWorkerServer(id, worker.url);
    const answers = Promise.all(
      [1, 2, 3, 4].map((n) =>
        fetch(`${fake.loadBalancerUrl(id)}/r/${n}`, { headers: { authorization: `Bearer ${KEY}` } }),
      ),
    );
    await fake.waitForWorkers(id, (ws) => ws.length === 2);
    expect(fake.workersOf(id).map((w) => w.status)).toEqual(["INITIALIZING", "INITIALIZING"]);
    expect((await answers).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(worker.received.map((r) => r.url).sort()).toEqual(["/r/1", "/r/2", "/r/3", "/r/4"]);
    expect(fake.workersOf(id)).toHaveLength(2);
  });

  it("with max 0 no worker starts and the request ends in the documented no-workers error", async () => {
    fake.configureLoadBalancer({ noWorkerTimeoutMs: 150 });
    const id = await createLb({ workers: { min: 0, max: 0 } });
    const started = Date.now();
    const res = await fetch(`${fake.loadBalancerUrl(id)}/ping`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "no workers available" });
    expect(fake.workersOf(id)).toEqual([]);
  });

  it("401 without the API key, before anything is routed", async () => {
    const id = await createLb();
    const none = await fetch(`${fake.loadBalancerUrl(id)}/v1/models`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ status: 401, detail: "missing bearer token" });
    const wrong = await fetch(`${fake.loadBalancerUrl(id)}/v1/models`, {
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    expect(fake.workersOf(id)).toEqual([]);
  });

  it("a queue-based endpoint is not reachable through a load balancer; payloads over the limit are refused", async () => {
    const queue = await call(base, "POST", "/v2/serverless", {
      ...lbBody,
      type: "QUEUE",
      workers: {},
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
    });
    const qb = await fetch(`${fake.loadBalancerUrl(queue.json!.id as string)}/x`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(await qb.json()).toEqual({ error: "not allowed for QB API" });

    fake.configureLoadBalancer({ maxPayloadBytes: 1000 });
    const id = await createLb();
    const big = await fetch(`${fake.loadBalancerUrl(id)}/v1/images/edits`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}` },
      body: "x".repeat(1001),
    });
    expect(big.status).toBe(413);
    expect(fake.workersOf(id)).toEqual([]);
  });

  it("streams SSE through as the worker writes it, not buffered", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    let releaseSecond!: () => void;
    const second = new Promise<void>((r) => {
      releaseSecond = r;
    });
    worker.onRequest = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"n":1}\n\n');
      void second.then(() => {
        res.write("data: [DONE]\n\n");
        res.end();
      });
    };
    const id = await createLb({ workers: { min: 1, max: 1 } });
    fake.attachWorkerServer(id, worker.url);
    await fake.waitForWorkers(id, (ws) => ws[0]?.status === "IDLE");

    const res = await fetch(`${fake.loadBalancerUrl(id)}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ stream: true }),
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    const first = await reader.read();
    // the first frame arrived while the worker still holds the second back
    expect(new TextDecoder().decode(first.value)).toBe('data: {"n":1}\n\n');
    expect(fake.workersOf(id)[0]!.status).toBe("RUNNING");
    releaseSecond();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe("data: [DONE]\n\n");
    await fake.waitForWorkers(id, (ws) => ws[0]?.status === "IDLE");
  });

  it("an idle worker above workers.min goes after idleTimeout; workers.min stay", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    // idleTimeout 1 s = 200 ms here
    fake.configureLoadBalancer({ idleSecondMs: 200 });
    const id = await createLb({ workers: { min: 1, max: 2, idleTimeout: 1 } });
    fake.attachWorkerServer(id, worker.url);
    await fake.waitForWorkers(id, (ws) => ws.length === 1 && ws[0]!.status === "IDLE");
    // two requests at once want two workers (requestCount 1)
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    worker.onRequest = (_req, res) => {
      void held.then(() => {
        res.writeHead(200);
        res.end("ok");
      });
    };
    const url = `${fake.loadBalancerUrl(id)}/slow`;
    const a = fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
    const b = fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
    await fake.waitForWorkers(id, (ws) => ws.length === 2);
    release();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    // both idle now; the one above min goes only once idleTimeout has passed
    expect(fake.workersOf(id)).toHaveLength(2);
    await fake.waitForWorkers(id, (ws) => ws.length === 1, 3000);
    // min 1 stays however long it idles
    await new Promise((r) => setTimeout(r, 150));
    expect(fake.workersOf(id)).toHaveLength(1);
  });

  it("an unhealthy worker is not routed; misconfigured ports make workers UNHEALTHY and requests 502", async () => {
    fake.configureLoadBalancer({ noWorkerTimeoutMs: 150 });
    const worker = await startWorker(500);
    workers.push(worker);
    const id = await createLb({ workers: { min: 1, max: 1 } });
    fake.attachWorkerServer(id, worker.url);
    await fake.waitForWorkers(id, (ws) => ws[0]?.status === "UNHEALTHY");
    const res = await fetch(`${fake.loadBalancerUrl(id)}/x`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(503);
    expect(worker.received).toEqual([]);

    // the server listens on 8000, but the endpoint leaves PORT at its default 80
    const wrong = await createLb({ env: {}, ports: [], workers: { min: 1, max: 1 } });
    const healthy = await startWorker(200);
    workers.push(healthy);
    fake.attachWorkerServer(wrong, healthy.url, { port: 8000 });
    await fake.waitForWorkers(wrong, (ws) => ws[0]?.status === "UNHEALTHY");
    const bad = await fetch(`${fake.loadBalancerUrl(wrong)}/x`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(bad.status).toBe(502);
  });

  it("without GPU capacity workers are THROTTLED, unplaced; once capacity is back they boot and serve", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    const id = await createLb();
    fake.attachWorkerServer(id, worker.url);
    fake.throttleWorkers(id, true);
    const pending = fetch(`${fake.loadBalancerUrl(id)}/x`, { headers: { authorization: `Bearer ${KEY}` } });
    await fake.waitForWorkers(id, (ws) => ws[0]?.status === "THROTTLED");
    const listed = await call(base, "GET", `/v2/serverless/${id}/workers`);
    expect(schemaViolations(ListEndpointWorkersResponse, listed.json)).toEqual([]);
    expect(listed.json).toMatchObject({
      summary: { throttled: 1, total: 1 },
      workers: [{ status: "THROTTLED", startedAt: null, gpuTypeId: null, uptimeSeconds: null }],
    });
    fake.throttleWorkers(id, false);
    expect((await pending).status).toBe(200);
    expect(fake.workersOf(id)[0]).toMatchObject({ status: "IDLE", throttled: false });
  });

  it("a caller that goes away cancels the worker's request", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    let workerSawClose!: () => void;
    const closed = new Promise<void>((r) => {
      workerSawClose = r;
    });
    worker.onRequest = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: 1\n\n");
      res.on("close", () => workerSawClose());
    };
    const id = await createLb({ workers: { min: 1, max: 1 } });
    fake.attachWorkerServer(id, worker.url);
    const abort = new AbortController();
    const res = await fetch(`${fake.loadBalancerUrl(id)}/stream`, {
      headers: { authorization: `Bearer ${KEY}` },
      signal: abort.signal,
    });
    await res.body!.getReader().read();
    abort.abort();
    await closed;
    await fake.waitForWorkers(id, (ws) => ws[0]?.status === "IDLE" && ws[0].inFlight === 0);
  });

  it("a worker that goes away cuts the stream it serves; the scaler replaces it up to workers.min", async () => {
    const worker = await startWorker(200);
    workers.push(worker);
    worker.onRequest = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: 1\n\n");
    };
    const id = await createLb({ workers: { min: 1, max: 1 } });
    fake.attachWorkerServer(id, worker.url);
    const res = await fetch(`${fake.loadBalancerUrl(id)}/stream`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    const reader = res.body!.getReader();
    await reader.read();
    const gone = fake.workersOf(id)[0]!.id;
    expect(fake.removeWorker(gone)).toBe(true);
    await expect(reader.read()).rejects.toThrow();
    const [next] = await fake.waitForWorkers(id, (ws) => ws.length === 1 && ws[0]!.status === "IDLE");
    expect(next!.id).not.toBe(gone);
  });

  it("fronts the vLLM fake: health on HEALTH_CHECK_PATH, an OpenAI stream through the load balancer", async () => {
    vllm = await startFakeVllm({ model: "m", interTokenDelayMs: 1 });
    const id = await createLb();
    fake.attachWorkerServer(id, vllm.origin, { port: 8000 });
    const res = await fetch(`${fake.loadBalancerUrl(id)}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
        stream: true,
      }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain("data: [DONE]");
    expect(vllm.records.requestCounts["/v1/chat/completions"]).toBe(1);
  });
});
