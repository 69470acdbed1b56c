/**
 * Issue 20: every API request gets one audit line and one count, refusals included (401, 400, 403, 404, 429), and
 * auth failures have a metric of their own. A gateway on a real port and real Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, type MemorySink } from "./harness";

let h: Harness;
let url: string;
let opsUrl: string;
let audit: MemorySink;

beforeAll(async () => {
  h = await createHarness();
  ({ url, opsUrl, audit } = await h.start());
});
afterAll(() => h.close());

const post = (path: string, key: string | undefined, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      "content-type": "application/json",
      ...headers,
    },
    body,
  });
const chatBody = (model: string) => JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });
const metricsText = async () => (await fetch(`${opsUrl}/metrics`)).text();
const counter = (text: string, name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, "m").exec(text)?.[1] ?? 0);

describe("refused requests", () => {
  it("each refusal writes one audit line with its status and error, and counts", async () => {
    const narrow = await h.createKey({ models: ["embed"] });
    const slow = await h.createKey({ rpm: 1 });
    const cases: [string, () => Promise<Response>, number, string][] = [
      ["no key", () => post("/v1/chat/completions", undefined, chatBody("chat")), 401, "invalid_api_key"],
      [
        "a wrong key",
        () => post("/v1/chat/completions", "sk-aiorch-nope", chatBody("chat")),
        401,
        "invalid_api_key",
      ],
      ["a bad body", () => post("/v1/chat/completions", slow, '{"model":"chat"}'), 400, ""],
      ["a model the key may not use", () => post("/v1/chat/completions", narrow, chatBody("chat")), 403, ""],
      ["an unknown model", () => post("/v1/chat/completions", narrow, chatBody("no-such-model")), 404, ""],
      ["an unknown URL", () => post("/v1/nothing-here", narrow, "{}"), 404, "unknown_url"],
    ];
    for (const [label, send, status, code] of cases) {
      const before = audit.entries.length;
      const response = await send();
      expect(response.status, label).toBe(status);
      const requestId = response.headers.get("x-request-id");
      await response.text();
      const lines = audit.entries.slice(before).filter((e) => e.requestId === requestId);
      expect(lines, label).toHaveLength(1);
      expect(lines[0]!.status, label).toBe(status);
      if (code) expect(lines[0]!.error, label).toBe(code);
      expect(lines[0]!.error, label).not.toBeNull();
    }
    // rpm: the first passes (served or waiting), the second is refused with 429 and its own line
    await h.addRoute("chat", { baseUrl: h.fake.url });
    const first = await post("/v1/chat/completions", slow, chatBody("chat"));
    await first.text();
    const before = audit.entries.length;
    const limited = await post("/v1/chat/completions", slow, chatBody("chat"), { "x-request-id": "mine-1" });
    expect(limited.status).toBe(429);
    await limited.text();
    const line = audit.entries
      .slice(before)
      .find((e) => e.requestId === limited.headers.get("x-request-id"))!;
    expect(line).toMatchObject({ status: 429, model: "chat", endpoint: "chat", clientRequestId: "mine-1" });
    expect(line.keyId).not.toBeNull();
    await h.removeRoutes("chat");
  });

  it("auth failures have a metric by reason; refusals count in aiorch_requests_total", async () => {
    const before = await metricsText();
    const revoked = await h.store.create({ name: "gone" });
    await h.store.revoke(revoked.record.id);
    for (const key of [undefined, "sk-aiorch-wrong", revoked.key])
      await (await post("/v1/chat/completions", key, chatBody("chat"))).text();
    const after = await metricsText();
    for (const reason of ["missing", "invalid", "revoked"]) {
      const name = "aiorch_gateway_auth_failures_total";
      expect(
        counter(after, name, `reason="${reason}"`) - counter(before, name, `reason="${reason}"`),
        reason,
      ).toBe(1);
    }
    // a refused key's body is never parsed: its model is not known
    const refused = (text: string) =>
      counter(text, "aiorch_requests_total", 'model="unknown",variant="",status="401"');
    expect(refused(after) - refused(before)).toBe(3);
  });
});
