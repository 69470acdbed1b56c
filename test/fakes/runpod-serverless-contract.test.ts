import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Endpoint, EndpointHealth, ListEndpointsResponse } from "../../core/contracts/runpod";
import { schemaViolations } from "./fake-api-server";
import { RunpodServerlessFake } from "./runpod-serverless";

const KEY = "rpa_CONTRACT_TEST_KEY";

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const createBody = {
  name: "aiorch-dev-llama",
  type: "QUEUE",
  image: "runpod/worker-v1-vllm:v2.25.2",
  env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
  gpu: { pools: ["ADA_24"], count: 2, minCudaVersion: "13.0" },
  workers: { min: 0, max: 2, idleTimeout: 30 },
  scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
  timeout: 480_000,
  flashboot: "FLASHBOOT",
};

describe("RunPod serverless fake against the published v2 contract", () => {
  const fake = new RunpodServerlessFake({ apiKey: KEY });
  let base: string;
  beforeAll(async () => {
    base = await fake.start();
  });
  afterAll(() => fake.close());

  it("creates, reads, patches partially and deletes with published shapes only", async () => {
    const created = await call(base, "POST", "/v2/serverless", createBody);
    expect(created.status).toBe(201);
    expect(schemaViolations(Endpoint, created.json)).toEqual([]);
    const id = created.json!.id as string;
    const patched = await call(base, "PATCH", `/v2/serverless/${id}`, { workers: { max: 0 } });
    expect(patched.status).toBe(200);
    // PATCH is partial: what it leaves out stays (GraphQL's saveEndpoint reset it)
    expect(patched.json).toMatchObject({
      workers: { min: 0, max: 0, idleTimeout: 30 },
      gpu: { pools: ["ADA_24"], count: 2, minCudaVersion: "13.0" },
      timeout: 480_000,
      flashboot: "FLASHBOOT",
    });
    const list = await call(base, "GET", "/v2/serverless");
    expect(schemaViolations(ListEndpointsResponse, list.json)).toEqual([]);
    const health = await call(base, "GET", `/v2/${id}/health`);
    expect(schemaViolations(EndpointHealth, health.json)).toEqual([]);
    expect((await call(base, "DELETE", `/v2/serverless/${id}`)).status).toBe(204);
    expect((await call(base, "GET", `/v2/serverless/${id}`)).status).toBe(404);
    expect(fake.contractViolations).toEqual([]);
  });

  it("refuses unknown fields with 422 listing each, as the real API does", async () => {
    const res = await call(base, "POST", "/v2/serverless", {
      ...createBody,
      gpuIds: "ADA_24",
      workersMax: 2,
      executionTimeoutMs: 600_000,
    });
    expect(res.status).toBe(422);
    expect(res.json!.errors).toEqual(
      expect.arrayContaining([
        "$: additional properties 'gpuIds' not allowed",
        "$: additional properties 'workersMax' not allowed",
        "$: additional properties 'executionTimeoutMs' not allowed",
      ]),
    );
  });

  it("refuses a CUDA set beside a floor (400), as the spec says", async () => {
    const res = await call(base, "POST", "/v2/serverless", {
      ...createBody,
      gpu: { pools: ["ADA_24"], allowedCudaVersions: ["12.8"], minCudaVersion: "12.8" },
    });
    expect(res.status).toBe(400);
  });

  it("the schemas refuse GraphQL- and v1-shaped answers", () => {
    const graphqlEndpoint = {
      id: "abc",
      name: "x",
      templateId: "t",
      gpuIds: "ADA_24",
      workersMin: 0,
      workersMax: 1,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
    };
    expect(schemaViolations(Endpoint, graphqlEndpoint).join("\n")).toMatch(/workers|unrecognized/i);
    // v1 answered lists as bare arrays; v2 wraps them
    expect(schemaViolations(ListEndpointsResponse, [graphqlEndpoint])).not.toEqual([]);
  });
});
