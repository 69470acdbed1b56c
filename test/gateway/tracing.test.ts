/**
 * Tracing through the real gateway: W3C traceparent in, a child traceparent to the worker, the trace id in the
 * audit line; spans for auth, limits, queue and cold-start waits, the upstream call and streaming when spans are
 * recorded; and OTLP/HTTP export to a collector.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tracingFromEnv } from "../../gateway/tracing";
import { createHarness, type Harness } from "./harness";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const PARENT = "b7ad6b7169203331";
const TRACEPARENT = `00-${TRACE}-${PARENT}-01`;

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h.close();
});

const chat = (
  url: string,
  key: string,
  headers: Record<string, string>,
  body: Record<string, unknown> = {},
) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
      ...body,
    }),
  });

const lastUpstreamTraceparent = () => {
  const request = h.fake.records.requests.at(-1)!;
  return String(request.headers.traceparent ?? "");
};

describe("trace context without a collector (propagation only)", () => {
  let url: string;
  let key: string;
  let audit: Awaited<ReturnType<Harness["start"]>>["audit"];
  beforeAll(async () => {
    ({ url, audit } = await h.start());
    key = await h.createKey();
  });

  it("keeps the caller's trace, gives the worker a new parent id, and logs the trace id", async () => {
    const response = await chat(url, key, { traceparent: TRACEPARENT });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const sent = lastUpstreamTraceparent();
    expect(sent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(sent).not.toContain(PARENT);
    expect(audit.entries.at(-1)?.traceId).toBe(TRACE);
  });

  it("starts a new trace when there is none or it is malformed", async () => {
    for (const headers of <Record<string, string>[]>[
      {},
      { traceparent: "00-nothex-zz-01" },
      { traceparent: `00-${"0".repeat(32)}-${PARENT}-01` },
    ]) {
      const response = await chat(url, key, headers);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      const traceId = audit.entries.at(-1)!.traceId!;
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(traceId).not.toBe("0".repeat(32));
      expect(lastUpstreamTraceparent()).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
    }
  });
});

describe("recorded spans", () => {
  const exporter = new InMemorySpanExporter();
  let url: string;
  let key: string;
  beforeAll(async () => {
    ({ url } = await h.start(undefined, { tracing: { exporter } }));
    key = await h.createKey();
  });
  const spansOf = (traceId: string) =>
    exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const byName = (spans: ReadableSpan[], name: string) => spans.find((s) => s.name === name)!;

  it("a streamed request: the root under the caller's span, its steps under the root, the worker under upstream", async () => {
    exporter.reset();
    const response = await chat(url, key, { traceparent: TRACEPARENT }, { stream: true });
    expect(response.status).toBe(200);
    await response.text();
    await new Promise((r) => setTimeout(r, 20)); // the root ends right after the last byte
    const spans = spansOf(TRACE);
    expect(spans.map((s) => s.name).sort()).toEqual(
      ["POST /v1/chat/completions", "auth", "limits", "stream", "upstream"].sort(),
    );
    const root = byName(spans, "POST /v1/chat/completions");
    expect(root.parentSpanContext?.spanId).toBe(PARENT);
    expect(root.attributes["http.response.status_code"]).toBe(200);
    expect(root.attributes["aiorch.model"]).toBe("chat");
    for (const step of ["auth", "limits", "upstream", "stream"])
      expect(byName(spans, step).parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    const upstream = byName(spans, "upstream");
    expect(lastUpstreamTraceparent()).toBe(`00-${TRACE}-${upstream.spanContext().spanId}-01`);
    expect(upstream.attributes["aiorch.provider"]).toBe("local");
    expect(byName(spans, "stream").attributes["aiorch.completion_tokens"]).toBe(3);
  });

  it("a request that waits at zero records the queue and cold-start waits", async () => {
    exporter.reset();
    const pending = chat(url, key, { traceparent: TRACEPARENT }, { model: "cold" });
    await new Promise((r) => setTimeout(r, 300));
    await h.addRoute("cold", { baseUrl: h.fake.url });
    const response = await pending;
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    await new Promise((r) => setTimeout(r, 20));
    const spans = spansOf(TRACE);
    const queue = byName(spans, "queue.wait");
    const cold = byName(spans, "coldstart.wait");
    expect(queue).toBeDefined();
    expect(cold).toBeDefined();
    const ms = (s: ReadableSpan) => s.duration[0] * 1e3 + s.duration[1] / 1e6;
    expect(ms(cold)).toBeGreaterThanOrEqual(250);
    expect(ms(queue)).toBeGreaterThanOrEqual(ms(cold));
    await h.removeRoutes("cold");
  });

  it("a refused request still ends its span, with the refusal status", async () => {
    exporter.reset();
    const response = await chat(url, "sk-aiorch-wrong", { traceparent: TRACEPARENT });
    expect(response.status).toBe(401);
    await response.arrayBuffer();
    const spans = spansOf(TRACE);
    expect(byName(spans, "POST /v1/chat/completions").attributes["http.response.status_code"]).toBe(401);
    expect(byName(spans, "auth").status.code).toBe(2); // ERROR
  });
});

describe("OTLP export", () => {
  let collector: Server;
  const received: { path: string; type: string; body: string }[] = [];
  beforeAll(async () => {
    collector = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        received.push({ path: req.url ?? "", type: String(req.headers["content-type"]), body });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
  });
  afterAll(() => new Promise<void>((r) => collector.close(() => r())));

  it("sends the spans to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces when the gateway closes (batched)", async () => {
    const port = (collector.address() as AddressInfo).port;
    const tracing = tracingFromEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/`,
      OTEL_SERVICE_NAME: "gw-test",
    });
    expect(tracing).toEqual({ otlpEndpoint: `http://127.0.0.1:${port}/v1/traces`, serviceName: "gw-test" });
    const { gateway, url } = await h.start(undefined, { tracing });
    const key = await h.createKey();
    const response = await chat(url, key, { traceparent: TRACEPARENT });
    await response.arrayBuffer();
    await gateway.app.close(); // shutdown flushes the batch
    const traces = received.filter((r) => r.path === "/v1/traces");
    expect(traces.length).toBeGreaterThan(0);
    const body = traces.map((t) => t.body).join("\n");
    expect(body).toContain("gw-test");
    expect(body).toContain("POST /v1/chat/completions");
    expect(body).toContain('"upstream"');
    // never a secret in a span
    expect(body).not.toContain(key);
  });

  it("refuses a malformed sampling ratio by name", () => {
    expect(() => tracingFromEnv({ OTEL_TRACES_SAMPLER_ARG: "lots" })).toThrow(
      /OTEL_TRACES_SAMPLER_ARG must be a ratio/,
    );
    expect(tracingFromEnv({})).toEqual({});
  });
});
