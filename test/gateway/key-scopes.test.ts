/**
 * Issue 23: API key scopes. A key scoped for MCP (read, admin) is refused by the OpenAI API with an OpenAI-shaped
 * 403 naming its scope; an inference key (the default), and a key stored before scopes existed, are served.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../../core/api-keys";
import type { Gateway } from "../../gateway/app";
import { createHarness, type Harness } from "./harness";

let h: Harness;
let gateway: Gateway;

beforeAll(async () => {
  h = await createHarness();
  ({ gateway } = await h.start());
  await h.addRoute("chat", { baseUrl: h.fake.url, provider: "local" });
});
afterAll(() => h.close());

const chat = (key: string) =>
  gateway.app.inject({
    method: "POST",
    url: "/v1/chat/completions",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    payload: { model: "chat", messages: [{ role: "user", content: "hi" }] },
  });
const models = (key: string) =>
  gateway.app.inject({ method: "GET", url: "/v1/models", headers: { authorization: `Bearer ${key}` } });

describe("API key scopes on the OpenAI API", () => {
  it("serves an inference key (the default scope)", async () => {
    const key = await h.createKey();
    const record = (await h.store.list()).find((r) => r.hash === hashApiKey(key));
    expect(record?.scope).toBe("inference");
    expect((await chat(key)).statusCode).toBe(200);
    expect((await models(key)).statusCode).toBe(200);
  });

  for (const scope of ["read", "admin"] as const) {
    it(`refuses a ${scope} key with a 403 naming the scope`, async () => {
      const key = await h.createKey({ scope });
      for (const response of [await chat(key), await models(key)]) {
        expect(response.statusCode).toBe(403);
        const body = response.json() as { error: { type: string; code: string; message: string } };
        expect(body.error.type).toBe("permission_error");
        expect(body.error.code).toBe("key_scope_not_allowed");
        expect(body.error.message).toContain(`scope "${scope}"`);
        expect(body.error.message).toContain("--scope inference");
      }
    });
  }

  it("treats a key stored without a scope as an inference key", async () => {
    const key = await h.createKey();
    await h.redis.hdel(h.keys.apiKey(hashApiKey(key)), "scope");
    expect(await h.redis.hexists(h.keys.apiKey(hashApiKey(key)), "scope")).toBe(0);
    expect((await chat(key)).statusCode).toBe(200);
  });

  it("keeps the scope when a key is rotated", async () => {
    await h.createKey({ scope: "read", name: "ops" });
    const old = (await h.store.list()).find((r) => r.name === "ops")!;
    const rotated = await h.store.rotate(old.id, 60_000);
    expect(rotated?.record.scope).toBe("read");
    expect((await models(rotated!.key)).statusCode).toBe(403);
  });
});
