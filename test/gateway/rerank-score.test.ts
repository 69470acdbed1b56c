/**
 * `/v1/rerank` and `/v1/score` through a real gateway on a real Redis, against the vLLM-like fake, in the
 * Jina/Cohere rerank shape and vLLM's score shape; the kinds and engines that do not serve them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, type MemorySink, testRuntimeConfig } from "./harness";

let h: Harness;
let url: string;
let audit: MemorySink;
let key: string;

beforeAll(async () => {
  h = await createHarness({
    config: (localUrl, prefix) =>
      testRuntimeConfig(localUrl, prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
          { name: embed, kind: embedding, source: o/embed, gpu: [RTX_3090], providers: [local] },
          { name: cold, kind: embedding, source: o/cold, gpu: [RTX_3090], providers: [vastai], queueTimeoutSeconds: 5 },
          { name: ollama-embed, kind: embedding, engine: ollama, source: o/oe, gpu: [RTX_3090], providers: [local] }
        ]`,
      }),
  });
  ({ url, audit } = await h.start());
  key = await h.createKey();
});
afterAll(async () => {
  await h.close();
});

const post = (path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

interface RerankAnswer {
  model: string;
  results: { index: number; document: { text: string }; relevance_score: number }[];
  usage: { total_tokens: number };
}

describe("rerank (Jina / Cohere v1 shape, as vLLM serves it)", () => {
  const documents = ["the cat sat", "stock prices fell today", "a cat and a dog", "rain in spain"];

  it("answers results sorted by relevance, top_n of them, and books the tokens read", async () => {
    const response = await post("/v1/rerank", { model: "embed", query: "cats", documents, top_n: 2 });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as RerankAnswer;
    expect(answer.model).toBe("embed");
    expect(answer.results).toHaveLength(2);
    const [a, b] = answer.results;
    expect(a!.relevance_score).toBeGreaterThanOrEqual(b!.relevance_score);
    for (const r of answer.results) expect(r.document.text).toBe(documents[r.index]);
    // words of the query once per document plus the documents' words
    expect(answer.usage.total_tokens).toBe(4 + 3 + 4 + 5 + 3);
    const entry = audit.entries.at(-1)!;
    expect(entry).toMatchObject({ endpoint: "rerank", status: 200, promptTokens: 19, completionTokens: 0 });
  });

  it("refuses a body without a query or documents, naming the field", async () => {
    for (const [body, param] of [
      [{ model: "embed", documents }, "query"],
      [{ model: "embed", query: "q", documents: [] }, "documents"],
      [{ model: "embed", query: "q", documents, top_n: -1 }, "top_n"],
    ] as const) {
      const response = await post("/v1/rerank", body);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { param: string } }).error.param).toBe(param);
    }
  });

  it("a model at zero: the request waits and is answered once a worker registers", async () => {
    const pending = post("/v1/rerank", { model: "cold", query: "q", documents: ["a", "b"] });
    setTimeout(() => void h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-cold" }), 500);
    try {
      const response = await pending;
      expect(response.status).toBe(200);
      expect(((await response.json()) as RerankAnswer).results).toHaveLength(2);
      expect(audit.entries.at(-1)).toMatchObject({ endpoint: "rerank", backend: "w-cold", status: 200 });
    } finally {
      await h.removeRoutes("cold");
    }
  });
});

describe("score (vLLM's text_1 / text_2)", () => {
  it("scores one text against a list", async () => {
    const response = await post("/v1/score", {
      model: "embed",
      text_1: "a cat",
      text_2: ["a cat", "the tax law"],
    });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as {
      object: string;
      data: { index: number; object: string; score: number }[];
      usage: { prompt_tokens: number };
    };
    expect(answer.object).toBe("list");
    expect(answer.data.map((d) => [d.index, d.object])).toEqual([
      [0, "score"],
      [1, "score"],
    ]);
    expect(answer.data[0]!.score).toBeCloseTo(1, 5); // a text against itself
    expect(answer.usage.prompt_tokens).toBe(9);
    expect(audit.entries.at(-1)).toMatchObject({ endpoint: "score", promptTokens: 9, completionTokens: 0 });
  });

  it("refuses a missing text_2", async () => {
    const response = await post("/v1/score", { model: "embed", text_1: "a" });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { param: string } }).error.param).toBe("text_2");
  });
});

describe("routes a model does not serve", () => {
  it("a chat model on /v1/rerank: 404 naming the kinds the route serves", async () => {
    const response = await post("/v1/rerank", { model: "chat", query: "q", documents: ["a"] });
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("wrong_endpoint");
    expect(error.message).toMatch(/\/v1\/rerank serves embedding models only/);
  });

  it("an embedding model on Ollama asked to score: 400 naming the engine", async () => {
    const response = await post("/v1/score", { model: "ollama-embed", text_1: "a", text_2: "b" });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("route_not_served_by_engine");
    expect(error.message).toMatch(
      /runs on ollama 0\.11\.4, which does not serve \/v1\/score; call \/v1\/embeddings/,
    );
  });
});
