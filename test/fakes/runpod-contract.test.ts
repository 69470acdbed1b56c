import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Endpoint,
  EndpointHealth,
  ListEndpointsResponse,
  ListGpuTypesResponse,
  ListPodsResponse,
  Pod,
} from "../../core/contracts/runpod";
import { schemaViolations } from "./fake-api-server";
import { RunpodRestFake } from "./runpod-rest";
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

describe("RunPod pods fake against the published v2 contract", () => {
  const fake = new RunpodRestFake({
    apiKey: KEY,
    gpus: [{ id: "NVIDIA GeForce RTX 4090", pool: "ADA_24", memory: 24, securePrice: 0.69, stock: 3 }],
  });
  let base: string;
  beforeAll(async () => {
    base = await fake.start();
  });
  afterAll(() => fake.close());

  it("answers catalog, create, get and list with published shapes only", async () => {
    const catalog = await call(
      base,
      "GET",
      "/v2/catalog/gpus?include=AVAILABILITY&product=POD&cloud=SECURE&count=1",
    );
    expect(schemaViolations(ListGpuTypesResponse, catalog.json)).toEqual([]);
    const created = await call(base, "POST", "/v2/pods", {
      name: "aiorch-dev.w1",
      image: "vllm/vllm-openai:v0.10.1.1",
      gpu: { id: "NVIDIA GeForce RTX 4090", count: 1, minCudaVersion: "12.8" },
      ports: ["8000/tcp"],
      env: { A: "b" },
      args: "--model x",
    });
    expect(created.status).toBe(201);
    expect(schemaViolations(Pod, created.json)).toEqual([]);
    expect(created.json).toMatchObject({ status: "PROVISIONING", runtime: null, cost: 0.69 });
    const list = await call(base, "GET", "/v2/pods");
    expect(schemaViolations(ListPodsResponse, list.json)).toEqual([]);
    expect(fake.contractViolations).toEqual([]);
  });

  it("refuses v1's create fields with 422", async () => {
    const res = await call(base, "POST", "/v2/pods", {
      name: "x",
      imageName: "vllm/vllm-openai:v0.10.1.1",
      gpuTypeIds: ["NVIDIA GeForce RTX 4090"],
      gpuCount: 1,
    });
    expect(res.status).toBe(422);
    expect(res.json!.errors).toEqual(
      expect.arrayContaining(["$: additional properties 'imageName' not allowed"]),
    );
  });

  it("the schemas refuse v1-shaped pods and lists", () => {
    const v1Pod = {
      id: "pod1",
      name: "x",
      desiredStatus: "RUNNING",
      publicIp: "198.51.100.7",
      portMappings: { "8000": 40123 },
      costPerHr: 0.69,
    };
    const problems = schemaViolations(Pod, v1Pod).join("\n");
    expect(problems).toMatch(/publicIp/);
    expect(problems).toMatch(/runtime/);
    expect(problems).toMatch(/cost/);
    expect(schemaViolations(ListPodsResponse, [v1Pod])).not.toEqual([]);
  });
});
