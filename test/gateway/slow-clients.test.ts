/**
 * Issue 20: slow clients cannot hold connections forever. A request must arrive (headers within
 * `headersTimeoutSeconds`, all of it within `requestReadTimeoutSeconds`), an idle connection is closed after
 * `idleConnectionTimeoutSeconds`, and one replica holds at most `maxConnections` — while an answer may take as long
 * as it takes (a stream, a wait for a cold start). Raw sockets against a gateway on a real port, real Redis; the
 * timeouts are shortened through the config.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, type MemorySink, readSse, testRuntimeConfig } from "./harness";

let h: Harness;
let url: string;
let port: number;
let key: string;
let audit: MemorySink;

beforeAll(async () => {
  h = await createHarness({
    config: (localUrl, prefix) =>
      testRuntimeConfig(localUrl, prefix, {
        gateway: `{ host: ai.example.com, limits: { rpm: 1000, tpm: 1000000 }, maxRequestBytes: 65536,
          keepAliveSeconds: 1, headersTimeoutSeconds: 1, requestReadTimeoutSeconds: 2,
          idleConnectionTimeoutSeconds: 1 }`,
      }),
  });
  ({ url, audit } = await h.start());
  port = Number(new URL(url).port);
  key = await h.createKey();
});
afterAll(async () => {
  await h.close();
});

interface Ended {
  /** Everything the gateway sent. */
  readonly received: string;
  /** Milliseconds from `since` until the connection closed; undefined when it was still open at `withinMs`. */
  readonly closedAfterMs: number | undefined;
}

function open(to = port): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(to, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Wait until the gateway closes the connection, at most `withinMs` (then the socket is destroyed here). */
function ended(socket: Socket, withinMs: number, since = Date.now()): Promise<Ended> {
  return new Promise((resolve) => {
    let received = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
    });
    socket.on("error", () => undefined); // a reset is a close, too
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received, closedAfterMs: undefined });
    }, withinMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve({ received, closedAfterMs: Date.now() - since });
    });
  });
}

/** Send `head` at once, then one more byte every `everyMs` until the connection closes. */
function trickle(socket: Socket, head: string, bytes: string, everyMs: number): void {
  socket.write(head);
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= bytes.length) {
      clearInterval(timer);
      return;
    }
    socket.write(bytes[i]!);
    i += 1;
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

const chatHead = (contentLength: number) =>
  "POST /v1/chat/completions HTTP/1.1\r\nHost: ai.example.com\r\n" +
  `Authorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;

describe("a request must arrive in time", () => {
  it("100 connections trickling a body slower than requestReadTimeoutSeconds (2 s) all get 408 and are closed in about that time", async () => {
    const body = JSON.stringify({ model: "chat", messages: [{ role: "user", content: "x".repeat(500) }] });
    const started = Date.now();
    const sockets = await Promise.all(Array.from({ length: 100 }, () => open()));
    const results = sockets.map((socket) => ended(socket, 8_000, started));
    for (const socket of sockets) trickle(socket, chatHead(body.length), body, 250);
    for (const result of await Promise.all(results)) {
      expect(result.closedAfterMs, "still open after 8 s").toBeDefined();
      expect(result.closedAfterMs!).toBeGreaterThanOrEqual(1_500);
      expect(result.closedAfterMs!).toBeLessThan(4_500); // 2 s, checked every second, and slack
      expect(result.received).toMatch(/^HTTP\/1\.1 408 /);
    }
  }, 15_000);

  it("headers trickled slower than headersTimeoutSeconds (1 s), or nothing sent at all: 408 and closed after about that long", async () => {
    const started = Date.now();
    const [slow, silent] = await Promise.all([open(), open()]);
    const results = [ended(slow, 8_000, started), ended(silent, 8_000, started)];
    trickle(slow, "GET /v1/models HTTP/1.1\r\n", `Authorization: Bearer ${key}\r\n`.repeat(10), 100);
    for (const result of await Promise.all(results)) {
      expect(result.closedAfterMs, "still open after 8 s").toBeDefined();
      expect(result.closedAfterMs!).toBeGreaterThanOrEqual(700);
      expect(result.closedAfterMs!).toBeLessThan(3_000);
      expect(result.received).toMatch(/^HTTP\/1\.1 408 /);
      // an OpenAI-shaped error with the gateway's request id, as every other refusal gets
      const body = JSON.parse(result.received.slice(result.received.indexOf("\r\n\r\n") + 4)) as {
        error: { code: string; type: string };
      };
      expect(body.error).toMatchObject({ code: "request_timeout", type: "invalid_request_error" });
      const requestId = /\r\nx-request-id: (req_[0-9a-f]{32})\r\n/.exec(result.received)?.[1];
      expect(requestId).toBeDefined();
      expect(audit.entries.find((e) => e.requestId === requestId)).toMatchObject({
        status: 408,
        error: "request_timeout",
      });
    }
  }, 15_000);

  it("a connection idle after its answer is closed after idleConnectionTimeoutSeconds (1 s)", async () => {
    const socket = await open();
    let received = "";
    const answered = new Promise<number>((resolve) => {
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        if (received.includes("\r\n\r\n") && received.trimEnd().endsWith("}")) resolve(Date.now());
      });
    });
    const result = ended(socket, 8_000);
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: ai.example.com\r\nAuthorization: Bearer ${key}\r\n\r\n`);
    const at = await answered;
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.toLowerCase()).toContain("connection: keep-alive");
    const { closedAfterMs } = await result;
    expect(closedAfterMs, "still open after 8 s").toBeDefined();
    const idleMs = Date.now() - at;
    expect(idleMs).toBeGreaterThanOrEqual(800);
    expect(idleMs).toBeLessThan(3_000);
  }, 15_000);
});

describe("an answer is not timed by the request timeouts", () => {
  it("a stream, a slow whole answer and a wait for a cold start, each longer than requestReadTimeoutSeconds (2 s), complete", async () => {
    h.fake.configure({ interTokenDelayMs: 100 }); // 35 tokens: 3.5 s
    await h.removeRoutes("cold");
    const post = (model: string, body: Record<string, unknown>) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], ...body }),
      });
    try {
      const started = Date.now();
      const streamed = post("chat", { stream: true, max_tokens: 35 }).then(async (response) => ({
        status: response.status,
        frames: await readSse(response),
        ms: Date.now() - started,
      }));
      const whole = post("chat", { max_tokens: 35 }).then(async (response) => ({
        status: response.status,
        body: (await response.json()) as { choices: Array<{ message: { content: string } }> },
        ms: Date.now() - started,
      }));
      // a model at zero: nothing is sent to this client until a worker registers, 3 s from now
      const waited = post("cold", { max_tokens: 3 }).then(async (response) => ({
        status: response.status,
        body: await response.text(),
        ms: Date.now() - started,
      }));
      setTimeout(() => void h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-late" }), 3_000);

      const stream = await streamed;
      expect(stream.status).toBe(200);
      expect(stream.ms).toBeGreaterThan(3_000);
      expect(stream.frames.at(-1)).toBe("[DONE]");
      const text = stream.frames
        .filter((f) => f.startsWith("{"))
        .map(
          (f) =>
            (JSON.parse(f) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta
              ?.content ?? "",
        )
        .join("");
      expect(text.trim().split(/\s+/)).toHaveLength(35);

      const answer = await whole;
      expect(answer.status).toBe(200);
      expect(answer.ms).toBeGreaterThan(3_000);
      expect(answer.body.choices[0]?.message.content.split(" ")).toHaveLength(35);

      const cold = await waited;
      expect(cold.status, cold.body).toBe(200);
      expect(cold.ms).toBeGreaterThan(2_900);
    } finally {
      h.fake.configure({ interTokenDelayMs: 0 });
      await h.removeRoutes("cold");
    }
  }, 20_000);
});

describe("maxConnections", () => {
  it("past the cap a new connection is closed at once, without an answer; a freed slot serves again", async () => {
    const capped = await h.start({ ...h.config, gateway: { ...h.config.gateway, maxConnections: 4 } });
    const cappedPort = Number(new URL(capped.url).port);
    const held = await Promise.all(Array.from({ length: 4 }, () => open(cappedPort)));
    try {
      for (const socket of held) socket.write("GET /v1/models HTTP/1.1\r\n"); // a request begun, not finished
      await new Promise((r) => setTimeout(r, 100));
      const refused = await ended(await open(cappedPort), 3_000);
      expect(refused.closedAfterMs, "the fifth connection stayed open").toBeDefined();
      expect(refused.closedAfterMs!).toBeLessThan(500);
      expect(refused.received).toBe("");

      held.pop()!.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const response = await fetch(`${capped.url}/v1/models`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(response.status).toBe(200);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
