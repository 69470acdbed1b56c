/**
 * The upstream client's whole-answer call (`postBuffered`, undici's dispatch without a Readable per answer):
 * what it returns, and each way it fails — too large, the client gone, the backend gone mid-answer, too slow,
 * unreachable — as the kind the gateway acts on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AbortFlag } from "../../gateway/abort";
import type { Backend } from "../../gateway/routing";
import { UpstreamClient, UpstreamError } from "../../gateway/upstream";

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let server: Server;
let origin: string;
let handler: Handler = (_req, res) => res.end();
/** Requests whose connection closed before the answer was complete. */
let closedEarly = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    req.on("end", () => handler(req, res, body));
    res.on("close", () => {
      if (!res.writableFinished) closedEarly += 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const backend = (baseUrl = `${origin}/v1`): Backend => ({
  id: "w-1",
  workerId: "w-1",
  provider: "local",
  baseUrl,
  auth: { kind: "bearer", token: "worker-secret" },
  capacity: 4,
  usdPerSecond: 0,
});

const call = (client: UpstreamClient, signal = new AbortFlag(), maxBytes = 1024, target = backend()) =>
  client.postBuffered(target, "/chat/completions", '{"model":"m"}', { requestId: "req_1", signal }, maxBytes);

const failure = async (promise: Promise<unknown>): Promise<UpstreamError> => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
};

describe("UpstreamClient.postBuffered", () => {
  it("returns status, content type and the whole body sent in several chunks, with the worker's token and request id", async () => {
    let seen: { path?: string; auth?: string; requestId?: string; body?: string } = {};
    handler = (req, res, body) => {
      seen = {
        path: req.url,
        auth: req.headers.authorization,
        requestId: req.headers["x-request-id"] as string,
        body,
      };
      res.writeHead(201, { "Content-Type": "application/json; charset=utf-8" });
      res.write('{"a":');
      setTimeout(() => res.end('"b"}'), 20);
    };
    const client = new UpstreamClient();
    try {
      const response = await call(client);
      expect(response.status).toBe(201);
      expect(response.contentType).toBe("application/json; charset=utf-8");
      expect(response.body.toString("utf8")).toBe('{"a":"b"}');
      expect(seen).toEqual({
        path: "/v1/chat/completions",
        auth: "Bearer worker-secret",
        requestId: "req_1",
        body: '{"model":"m"}',
      });
    } finally {
      await client.close();
    }
  });

  it("an error status is an answer, not a failure; a missing content type is empty", async () => {
    handler = (_req, res) => {
      res.writeHead(503);
      res.end("busy");
    };
    const client = new UpstreamClient();
    try {
      const response = await call(client);
      expect(response).toMatchObject({ status: 503, contentType: "" });
      expect(response.body.toString()).toBe("busy");
    } finally {
      await client.close();
    }
  });

  it("an answer past maxBytes fails as too_large and the connection is dropped", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("x".repeat(800));
      setTimeout(() => res.write("x".repeat(800)), 10);
      setTimeout(() => res.end("x".repeat(800)), 200);
    };
    const before = closedEarly;
    const client = new UpstreamClient();
    try {
      const error = await failure(call(client));
      expect(error.kind).toBe("too_large");
      await new Promise((r) => setTimeout(r, 50));
      expect(closedEarly).toBe(before + 1);
    } finally {
      await client.close();
    }
  });

  it("an abort (the client went away) stops the call at once, before or after it was sent", async () => {
    handler = (_req, res) => {
      setTimeout(() => res.end("{}"), 2_000).unref();
    };
    const client = new UpstreamClient();
    try {
      const before = closedEarly;
      const flag = new AbortFlag();
      const started = Date.now();
      const pending = call(client, flag);
      setTimeout(() => flag.abort(), 50);
      expect((await failure(pending)).kind).toBe("aborted");
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(flag.listenerCount()).toBe(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(closedEarly).toBe(before + 1);

      const already = new AbortFlag();
      already.abort();
      expect((await failure(call(client, already))).kind).toBe("aborted");
    } finally {
      await client.close();
    }
  });

  it("keeps a pool per origin and closes the ones unused for pinnedIdleMs when another origin is needed", async () => {
    handler = (_req, res) => res.end("{}");
    let clock = 1_000_000;
    const client = new UpstreamClient({ now: () => clock, pinnedIdleMs: 60_000 });
    const other = createServer((_req, res) => res.end("{}"));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      await call(client);
      await call(client);
      expect(client.openOrigins()).toEqual([origin]);
      clock += 61_000;
      await call(client, new AbortFlag(), 1024, backend(`${otherOrigin}/v1`));
      expect(client.openOrigins()).toEqual([otherOrigin]);
      await call(client); // the old origin gets a fresh pool
      expect(client.openOrigins().sort()).toEqual([origin, otherOrigin].sort());
    } finally {
      await client.close();
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
    expect(client.openOrigins()).toEqual([]);
  });

  it("a backend that dies mid-answer is a connect failure; a silent one a timeout; a closed port unreachable", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      res.write('{"partial":');
      setTimeout(() => res.destroy(), 10);
    };
    const client = new UpstreamClient({ timeoutMs: 300 });
    try {
      expect((await failure(call(client))).kind).toBe("connect");

      handler = (_req, res) => {
        setTimeout(() => res.end("{}"), 2_000).unref();
      };
      expect((await failure(call(client))).kind).toBe("timeout");

      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const error = await failure(
        call(client, new AbortFlag(), 1024, backend(`http://127.0.0.1:${port}/v1`)),
      );
      expect(error.kind).toBe("connect");
      expect(error.message).not.toContain("worker-secret");
    } finally {
      await client.close();
    }
  });
});
