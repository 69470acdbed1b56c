/**
 * Request bodies the gateway must refuse cheaply and clearly (issue 20): the API key is checked before a body is
 * parsed, nesting is bounded (a 400, never a stack overflow and a 500), and a key appearing twice in one object is
 * refused (the forwarded text is the client's, so the engine must not read another value than the gateway checked).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Gateway } from "../../gateway/app";
import { estimatePromptTokens } from "../../gateway/limits";
import { MAX_JSON_DEPTH, scanJson } from "../../gateway/validate";
import { createHarness, type Harness, testRuntimeConfig } from "./harness";

let h: Harness;
let gateway: Gateway;
let key: string;

beforeAll(async () => {
  h = await createHarness();
  // bodies up to 2 MB: a 300,000-deep array is 600 KB
  ({ gateway } = await h.start(
    testRuntimeConfig(h.fake.url, h.keys.prefix, {
      gateway: "{ host: ai.example.com, limits: { rpm: 100000, tpm: 100000000 }, maxRequestBytes: 2000000 }",
    }),
  ));
  key = await h.createKey({ rpm: 100_000, tpm: 100_000_000 });
  h.fake.configure({ defaultMaxTokens: 2 });
});
afterAll(() => h.close());

/** POST a JSON text, with `apiKey` (the test's key unless given; null: none). */
const post = (path: string, payload: string, apiKey: string | null = key) =>
  gateway.app.inject({
    method: "POST",
    url: path,
    headers: {
      "content-type": "application/json",
      ...(apiKey === null ? {} : { authorization: `Bearer ${apiKey}` }),
    },
    payload,
  });

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}
const errorOf = (body: string) => (JSON.parse(body) as ErrorBody).error;

const deepArray = (depth: number, inner = "") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`;
const chatWith = (content: string) =>
  `{"model":"chat","messages":[{"role":"user","content":${content}}],"max_tokens":2}`;

describe("the API key is checked before the body is parsed", () => {
  it("an unauthenticated request gets 401 whatever its body: deep, malformed or with duplicate keys, unparsed", async () => {
    const parse = vi.spyOn(JSON, "parse");
    try {
      const bodies = [
        deepArray(300_000),
        '{"model": "chat", "messages": [',
        '{"model":"chat","model":"chat"}',
        chatWith(deepArray(100)),
      ];
      for (const [withKey, path] of [
        [null, "/v1/chat/completions"],
        ["sk-aiorch-wrong", "/v1/chat/completions"],
        ["not-even-a-key", "/v1/jobs"],
      ] as const) {
        for (const body of bodies) {
          parse.mockClear();
          const response = await post(path, body, withKey);
          expect(response.statusCode, `${path} ${body.slice(0, 40)}`).toBe(401);
          expect(errorOf(response.body).code).toBe("invalid_api_key");
          expect(parse.mock.calls.some(([text]) => text === body)).toBe(false);
        }
      }
    } finally {
      parse.mockRestore();
    }
  });

  it("a revoked key is refused before its body is parsed too (verified from Redis, then cached)", async () => {
    const revoked = await h.store.create({ name: "revoked" });
    await h.store.revoke(revoked.record.id);
    for (let i = 0; i < 2; i++) {
      const response = await post("/v1/chat/completions", '{"model": "chat", "messages": [', revoked.key);
      expect(response.statusCode).toBe(401);
      expect(errorOf(response.body).message).toMatch(/revoked/);
    }
  });
});

describe("nesting depth is bounded", () => {
  it(`a 300,000-deep array is a 400 too_deeply_nested, not a 500 (anywhere in the body, on every route)`, async () => {
    const cases: [string, string][] = [
      ["/v1/chat/completions", deepArray(300_000)],
      ["/v1/chat/completions", chatWith(deepArray(300_000))],
      ["/v1/completions", `{"model":"chat","prompt":${deepArray(300_000, '"x"')}}`],
      ["/v1/embeddings", `{"model":"embed","input":${deepArray(300_000, '"x"')}}`],
      ["/v1/jobs", `{"endpoint":"/v1/chat/completions","body":${chatWith(deepArray(300_000))}}`],
      ["/v1/chat/completions", chatWith(`${'{"a":'.repeat(300_000)}1${"}".repeat(300_000)}`)],
    ];
    for (const [path, body] of cases) {
      const started = performance.now();
      const response = await post(path, body);
      const ms = performance.now() - started;
      expect(response.statusCode, `${path}: ${response.body}`).toBe(400);
      const error = errorOf(response.body);
      expect(error.type).toBe("invalid_request_error");
      expect(error.code).toBe("too_deeply_nested");
      expect(error.message).toContain(String(MAX_JSON_DEPTH));
      expect(ms).toBeLessThan(1_000); // ~130 ms of parsing and a stack overflow before; a few ms now
    }
  });

  it(`${MAX_JSON_DEPTH} levels pass; ${MAX_JSON_DEPTH + 1} are refused`, async () => {
    // the body object and messages array, its message object: 3 levels, then the content
    const ok = await post("/v1/chat/completions", chatWith(deepArray(MAX_JSON_DEPTH - 3, '"hi"')));
    expect(ok.statusCode, ok.body).toBe(200);
    const deep = await post("/v1/chat/completions", chatWith(deepArray(MAX_JSON_DEPTH - 2, '"hi"')));
    expect(deep.statusCode).toBe(400);
    expect(errorOf(deep.body).code).toBe("too_deeply_nested");
    // brackets inside strings are text, not nesting
    const text = await post("/v1/chat/completions", chatWith(JSON.stringify(deepArray(1_000))));
    expect(text.statusCode, text.body).toBe(200);
  });

  it("the token estimate does not recurse without bound on a deep value built in code", () => {
    let deep: unknown[] = ["abcd"];
    for (let i = 0; i < 300_000; i++) deep = [deep];
    expect(() => estimatePromptTokens({ messages: deep, prompt: deep, input: deep })).not.toThrow();
    expect(estimatePromptTokens({ messages: [{ role: "user", content: [[["abcdefgh"]]] }] })).toBe(10);
  });
});

describe("duplicate keys are refused", () => {
  it("two model keys: 400 naming the key, whichever one the scope allows, and nothing forwarded", async () => {
    const scoped = await h.createKey({ models: ["chat"], rpm: 100_000, tpm: 100_000_000 });
    h.fake.reset();
    for (const body of [
      '{"model":"embed","messages":[{"role":"user","content":"x"}],"model":"chat"}',
      '{"model":"chat","messages":[{"role":"user","content":"x"}],"model":"embed"}',
      // the same key spelled with an escape is the same key
      '{"model":"embed","messages":[{"role":"user","content":"x"}],"\\u006dodel":"chat"}',
    ]) {
      const response = await post("/v1/chat/completions", body, scoped);
      expect(response.statusCode, response.body).toBe(400);
      const error = errorOf(response.body);
      expect(error).toMatchObject({ type: "invalid_request_error", code: "duplicate_key", param: "model" });
      expect(error.message).toContain('"model"');
    }
    expect(h.fake.records.requests).toHaveLength(0);
  });

  it("a duplicate anywhere (a message, a large object, a job's body) is refused; the same key in other objects is not", async () => {
    const many = (dup: boolean) =>
      `{${Array.from({ length: 40 }, (_, i) => `"${i}":1`).join(",")}${dup ? ',"17":2' : ""}}`;
    const refused: [string, string, string][] = [
      [
        "/v1/chat/completions",
        '{"model":"chat","messages":[{"role":"user","role":"system","content":"x"}]}',
        "role",
      ],
      [
        "/v1/chat/completions",
        `{"model":"chat","messages":[{"role":"user","content":"x"}],"logit_bias":${many(true)}}`,
        "17",
      ],
      ["/v1/jobs", '{"endpoint":"/v1/chat/completions","body":{"model":"chat","model":"chat"}}', "model"],
      ["/v1/jobs", '{"endpoint":"/v1/embeddings","endpoint":"/v1/chat/completions","body":{}}', "endpoint"],
    ];
    for (const [path, body, name] of refused) {
      const response = await post(path, body);
      expect(response.statusCode, body).toBe(400);
      const error = errorOf(response.body);
      expect(error.code).toBe("duplicate_key");
      expect(error.message).toContain(`"${name}"`);
    }
    h.fake.reset();
    const fine = `{"model":"chat","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"metadata":{"model":"x","messages":{"model":"y"}},"logit_bias":${many(false)},"max_tokens":2}`;
    const response = await post("/v1/chat/completions", fine);
    expect(response.statusCode, response.body).toBe(200);
    // the client's text goes upstream as it came
    expect(h.fake.records.requests.at(-1)!.rawBody).toBe(fine);
  });
});

// ── the scan against a model of it ──

type Tree =
  | { readonly t: "leaf"; readonly v: string | number | boolean | null }
  | { readonly t: "arr"; readonly items: readonly Tree[] }
  | { readonly t: "obj"; readonly entries: readonly (readonly [string, Tree, boolean])[] };

/** Strings full of what a scanner might mistake for structure. */
const tricky = fc.string({
  unit: fc.constantFrom('"', "\\", "{", "}", "[", "]", ",", ":", "a", "é", "\u2028", "\n", "\u0000"),
  maxLength: 6,
});
const keyName = fc.oneof(fc.constantFrom("a", "b", "model", "é", 'q"', "b\\s", ""), tricky);
const leaf = fc.oneof(
  tricky,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf.map((v): Tree => ({ t: "leaf", v })),
    fc.array(tie("tree"), { maxLength: 4 }).map((items): Tree => ({ t: "arr", items })),
    fc
      .array(fc.tuple(keyName, tie("tree"), fc.boolean()), { maxLength: 24 })
      .map((entries): Tree => ({ t: "obj", entries })),
  ),
}));
/** A tree wrapped in `levels` arrays or single-key objects: bodies around the depth limit. */
const wrapped = fc
  .tuple(tree, fc.nat({ max: MAX_JSON_DEPTH + 6 }), fc.boolean())
  .map(([t, levels, objects]): Tree => {
    let out = t;
    for (let i = 0; i < levels; i++)
      out = objects ? { t: "obj", entries: [["w", out, false]] } : { t: "arr", items: [out] };
    return out;
  });

/** A key with its first character as a \u escape, when `escaped`: the same key to JSON. */
const keyText = (name: string, escaped: boolean): string =>
  escaped && name.length > 0
    ? `"\\u${name.charCodeAt(0).toString(16).padStart(4, "0")}${JSON.stringify(name.slice(1)).slice(1)}`
    : JSON.stringify(name);

function serialize(t: Tree, space: string): string {
  if (t.t === "leaf") return JSON.stringify(t.v);
  if (t.t === "arr") return `[${space}${t.items.map((i) => serialize(i, space)).join(`,${space}`)}]`;
  return `{${space}${t.entries.map(([k, v, e]) => `${keyText(k, e)}${space}:${serialize(v, space)}`).join(`,${space}`)}${space}}`;
}
const depthOf = (t: Tree): number =>
  t.t === "leaf"
    ? 0
    : 1 + Math.max(0, ...(t.t === "arr" ? t.items : t.entries.map((e) => e[1])).map(depthOf));
const hasDuplicate = (t: Tree): boolean =>
  t.t === "arr"
    ? t.items.some(hasDuplicate)
    : t.t === "obj" &&
      (new Set(t.entries.map((e) => e[0])).size < t.entries.length ||
        t.entries.some((e) => hasDuplicate(e[1])));

const PATHS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/images/generations",
  "/v1/jobs",
];

describe("fuzzing: nesting and duplicate keys", () => {
  it("the scan finds exactly the bodies too deep or with a duplicate key", () => {
    fc.assert(
      fc.property(wrapped, fc.constantFrom("", " ", "\n\t"), (t, space) => {
        const text = serialize(t, space);
        expect(() => JSON.parse(text)).not.toThrow();
        const expected = new Set<string>();
        if (depthOf(t) > MAX_JSON_DEPTH) expected.add("too_deeply_nested");
        if (hasDuplicate(t)) expected.add("duplicate_key");
        const found = scanJson(text);
        if (expected.size === 0) expect(found).toBeUndefined();
        else expect([...expected]).toContain(found?.code);
      }),
      { numRuns: 1_500 },
    );
  });

  it("bodies with random content, nesting and duplicate keys, whole or cut off, never produce a 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        wrapped,
        fc.oneof(fc.constant("whole"), fc.constant("content"), fc.nat()),
        fc.boolean(),
        async (path, t, shape, withKey) => {
          const json = serialize(t, "");
          const payload =
            shape === "whole"
              ? json
              : shape === "content"
                ? chatWith(json)
                : chatWith(json).slice(0, shape % (json.length + 40));
          const response = await post(path, payload, withKey ? key : null);
          expect(response.statusCode, `${path} ${payload.slice(0, 200)} → ${response.body}`).toBeLessThan(
            500,
          );
          if (response.statusCode >= 400) {
            const error = errorOf(response.body);
            expect(error.message).toEqual(expect.any(String));
            expect(error.type).toEqual(expect.any(String));
          }
          if (!withKey) expect(response.statusCode).toBe(401);
          else if (shape === "content") {
            // wrapped in the body object, its messages array and a message: 3 levels more
            const expected: string[] = [];
            if (depthOf(t) + 3 > MAX_JSON_DEPTH) expected.push("too_deeply_nested");
            if (hasDuplicate(t)) expected.push("duplicate_key");
            if (expected.length > 0) expect(expected).toContain(errorOf(response.body).code);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("deep runs of random brackets, balanced or not, never produce a 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom("[", "]", "{", "}", '"a":', ",", "1", '"', "\\"), maxLength: 400 }),
        fc.nat({ max: 20_000 }),
        async (noise, depth) => {
          const payload = chatWith(`${"[".repeat(depth)}${noise}${"]".repeat(depth)}`);
          const response = await post("/v1/chat/completions", payload);
          expect(response.statusCode, `${depth} ${noise} → ${response.body}`).toBeLessThan(500);
          if (depth + 3 > MAX_JSON_DEPTH) expect(response.statusCode).toBe(400);
        },
      ),
      { numRuns: 150 },
    );
  });
});
