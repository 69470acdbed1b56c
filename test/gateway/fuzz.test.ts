/** Property-based fuzzing of request bodies and headers: whatever comes in, the answer is never a 500. */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../../gateway/app";
import { createHarness, type Harness } from "./harness";

let h: Harness;
let gateway: Gateway;
let key: string;

beforeAll(async () => {
  h = await createHarness();
  ({ gateway } = await h.start());
  key = await h.createKey({ rpm: 100_000, tpm: 100_000_000 });
});
afterAll(() => h.close());

const paths = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/images/generations",
  "/v1/jobs",
  "/v1/models",
];
// Not "cold" (a model at zero): a valid request for it rightly waits for capacity until its deadline and then
// answers 503 — tested on its own ("waiting at zero"); here it would only make runs wait 5 s each, at random.
const models = fc.oneof(fc.constantFrom("chat", "embed", ""), fc.string(), fc.integer(), fc.constant(null));
const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom("user", "system", "assistant"), fc.string(), fc.integer()),
    content: fc.oneof(fc.string(), fc.jsonValue()),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.record(
    {
      model: models,
      messages: fc.oneof(fc.array(message, { maxLength: 3 }), fc.jsonValue()),
      prompt: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 2 }), fc.jsonValue()),
      input: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 2 }), fc.jsonValue()),
      max_tokens: fc.oneof(fc.integer({ min: -5, max: 50 }), fc.double(), fc.string(), fc.constant(null)),
      stream: fc.oneof(fc.boolean(), fc.string(), fc.constant(null)),
      stream_options: fc.oneof(fc.record({ include_usage: fc.jsonValue() }), fc.jsonValue()),
      endpoint: fc.oneof(fc.constantFrom(...paths), fc.string()),
      body: fc.jsonValue(),
      idempotencyKey: fc.oneof(fc.string(), fc.integer()),
      encoding_format: fc.oneof(fc.constantFrom("float", "base64"), fc.string()),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue(),
);
const headerValue = fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, ""));

describe("fuzzing the gateway", () => {
  it("random JSON bodies never produce a 500", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), body, fc.boolean(), async (path, payload, withKey) => {
        h.fake.configure({ defaultMaxTokens: 2 });
        const response = await gateway.app.inject({
          method: path === "/v1/models" ? "GET" : "POST",
          url: path,
          headers: {
            "content-type": "application/json",
            ...(withKey ? { authorization: `Bearer ${key}` } : {}),
          },
          payload: JSON.stringify(payload),
        });
        expect(response.statusCode, `${path} ${JSON.stringify(payload)} → ${response.body}`).toBeLessThan(
          500,
        );
        if (response.statusCode >= 400)
          expect(JSON.parse(response.body).error.message).toEqual(expect.any(String));
        expect(response.headers["x-request-id"]).toBeDefined();
      }),
      { numRuns: 250 },
    );
  });

  it("random bytes, content types and headers never produce a 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.uint8Array({ maxLength: 300 }),
        fc.oneof(
          fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", ""),
          headerValue,
        ),
        headerValue,
        headerValue,
        async (path, bytes, contentType, authorization, requestId) => {
          const response = await gateway.app.inject({
            method: "POST",
            url: path,
            headers: { "content-type": contentType, authorization, "x-request-id": requestId },
            payload: Buffer.from(bytes),
          });
          expect(response.statusCode, `${path} ${contentType} → ${response.body}`).toBeLessThan(500);
        },
      ),
      { numRuns: 250 },
    );
  });
});
