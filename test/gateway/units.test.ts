import { describe, expect, it } from "vitest";
import { AuditLog, type AuditSink } from "../../gateway/audit";
import { rateLimitHeaders } from "../../gateway/limits";
import { SseUsageTap } from "../../gateway/sse";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : "");

const content = (i: number) => `data: {"id":"c","choices":[{"index":0,"delta":{"content":"t${i}"}}]}\n\n`;
const usageChunk =
  'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n';

describe("SSE usage tap", () => {
  it("passes frames through and keeps the usage chunk when the client asked for it", () => {
    const tap = new SseUsageTap(true);
    const out = dec(tap.push(enc(content(1) + content(2) + usageChunk + "data: [DONE]\n\n")));
    expect(out).toBe(content(1) + content(2) + usageChunk + "data: [DONE]\n\n");
    expect(tap.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(tap.sawDone).toBe(true);
    expect(tap.contentFrames).toBe(2);
  });

  it("drops the usage-only chunk and strips usage fields when the client did not ask", () => {
    const tap = new SseUsageTap(false);
    const withUsage =
      'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n';
    const out = dec(tap.push(enc(withUsage + usageChunk + "data: [DONE]\n\n")));
    expect(out).not.toContain("usage");
    expect(out).toContain('"content":"x"');
    expect(out.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(tap.usage?.completion_tokens).toBe(2); // still counted for billing
  });

  it("reassembles frames split across chunks, byte by byte, including multi-byte characters", () => {
    const text = `data: {"choices":[{"delta":{"content":"héllo ✓"}}]}\n\n${usageChunk}data: [DONE]\n\n`;
    const bytes = enc(text);
    const tap = new SseUsageTap(true);
    let out = "";
    for (const b of bytes) out += dec(tap.push(Uint8Array.of(b)));
    expect(out).toBe(text);
  });

  it("passes comments and error events, and remembers an upstream error", () => {
    const tap = new SseUsageTap(false);
    const out = dec(tap.push(enc(': keep-alive\n\ndata: {"error":{"message":"boom"}}\n\n')));
    expect(out).toContain(": keep-alive");
    expect(out).toContain('"error"');
    expect(tap.sawError).toBe(true);
  });

  it("flushes a last frame without its blank line", () => {
    const tap = new SseUsageTap(true);
    expect(tap.push(enc("data: [DONE]"))).toBeUndefined();
    expect(dec(tap.flush())).toBe("data: [DONE]\n\n");
  });
});

describe("audit log", () => {
  it("drops and counts when the sink cannot keep up, instead of growing", () => {
    const written: string[] = [];
    let drain: (() => void) | undefined;
    const slow: AuditSink = {
      write: (line) => {
        written.push(line);
        return false; // always asks us to wait
      },
      once: (_event, listener) => {
        drain = listener;
      },
    };
    let dropped = 0;
    const log = new AuditLog(slow, { capacity: 10, onDrop: () => dropped++ });
    const entry = (i: number) => ({
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
    for (let i = 0; i < 100; i++) log.record(entry(i));
    expect(written).toHaveLength(1);
    expect(log.pending).toBe(10);
    expect(dropped).toBe(89);
    expect(log.dropped).toBe(89);
    drain?.();
    expect(written).toHaveLength(2);
  });
});

describe("x-ratelimit headers", () => {
  it("use OpenAI's duration format", () => {
    const h = rateLimitHeaders({
      allowed: true,
      rpmLimit: 60,
      rpmRemaining: 0,
      tpmLimit: 1000,
      tpmRemaining: 500,
      retryAfterMs: 0,
    });
    expect(h["x-ratelimit-reset-requests"]).toBe("1m0s");
    expect(h["x-ratelimit-reset-tokens"]).toBe("30s");
  });
});
