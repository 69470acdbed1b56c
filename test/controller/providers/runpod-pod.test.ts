import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RetryEvent } from "../../../controller/providers/http";
import { RunpodPodAdapter } from "../../../controller/providers/runpod-pod";
import { ProviderError, TLS_ENV, type WorkerSpec } from "../../../controller/providers/types";
import { runpodPodSchema } from "../../../core/config/schema";
import { createWorkerCertificate } from "../../../core/x509";
import { ManualClock } from "../../fakes/fake-api-server";
import { type RunpodGpuSeed, RunpodRestFake } from "../../fakes/runpod-rest";

const API_KEY = "rpa_SECRET0123456789ABCDEF";
const WORKER_TOKEN = "wtok-SECRET-55aa66bb77";
const HF_TOKEN = "hf_SECRET_runpod_7777";
const SECRETS = [API_KEY, WORKER_TOKEN, HF_TOKEN];

const GPUS: RunpodGpuSeed[] = [
  {
    id: "NVIDIA GeForce RTX 4090",
    pool: "ADA_24",
    memory: 24,
    securePrice: 0.69,
    communityPrice: 0.34,
    stock: 5,
  },
  { id: "NVIDIA L4", pool: "AMPERE_24", memory: 24, securePrice: 0.43, communityPrice: 0.28, stock: 1 },
  { id: "NVIDIA RTX A6000", pool: "AMPERE_48", memory: 48, securePrice: 0.49, stock: 0 },
  {
    id: "NVIDIA A100 80GB PCIe",
    pool: "AMPERE_80",
    memory: 80,
    securePrice: 1.64,
    stock: 4,
    dataCenters: ["US-TX-3"],
  },
];

const spec = (workerId = "w-1", ownerLabel = "aiorch-prod"): WorkerSpec => ({
  workerId,
  ownerLabel,
  model: "qwen-7b",
  source: "Qwen/Qwen2.5-7B-Instruct",
  revision: "a09a35458c702b33eeacc393d103063234e8bc28",
  engine: "vllm",
  image: "vllm/vllm-openai:v0.10.1.1",
  gpuCount: 1,
  engineArgs: [],
  port: 8000,
  workerToken: WORKER_TOKEN,
  env: { HF_TOKEN },
});

let clock: ManualClock;
let fake: RunpodRestFake;
let sleeps: number[];
let retries: RetryEvent[];

function adapter(settings: Record<string, unknown> = {}, apiKey = API_KEY): RunpodPodAdapter {
  return new RunpodPodAdapter({
    settings: runpodPodSchema.parse({ apiBase: fake.apiBase, ...settings }),
    apiKey,
    prices: [{ provider: "runpod-pod", gpu: "RTX_4090", usdPerHour: 0.34, source: "test" }],
    now: clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.advance(ms);
    },
    random: () => 0.5,
    timeoutMs: 300,
    onRetry: (e) => retries.push(e),
  });
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  const text = `${(err as Error).message} ${JSON.stringify(err)}`;
  for (const secret of SECRETS) expect(text).not.toContain(secret);
  return err as ProviderError;
}

beforeEach(async () => {
  clock = new ManualClock();
  fake = new RunpodRestFake({ apiKey: API_KEY, gpus: GPUS, now: clock.now });
  await fake.start();
  sleeps = [];
  retries = [];
});

afterEach(async () => {
  // every answer the fake gave matched RunPod's published schema
  expect(fake.contractViolations).toEqual([]);
  await fake.close();
});

describe("RunPod pod offers", () => {
  it("prices secure-cloud GPUs from the catalog, skips ones without availability, cheapest first", async () => {
    const offers = (
      await adapter().offers({ gpu: ["RTX_4090", "L4", "RTX_A6000", "A100_80GB"], gpuCount: 1 })
    ).offers;
    expect(offers.map((o) => [o.gpu, o.usdPerHour])).toEqual([
      ["L4", 0.43],
      ["RTX_4090", 0.69],
      ["A100_80GB", 1.64],
    ]);
    expect(offers[0]?.offerId).toBe("NVIDIA L4");
    expect(offers[0]?.gpuMemoryGb).toBe(24);
    // stock depends on the cloud and the GPU count, which default to SECURE and 1 when not sent
    const [req] = fake.requestsTo("/v2/catalog/gpus");
    expect(req?.query).toEqual({ include: "AVAILABILITY", product: "POD", cloud: "SECURE", count: "1" });
  });

  it("asks the catalog for the model's GPU count and cloud, and for the image's CUDA floor", async () => {
    await adapter({ cloud: "community" }).offers({
      gpu: ["RTX_4090"],
      gpuCount: 4,
      image: "vllm/vllm-openai:v0.10.1.1",
    });
    expect(fake.requestsTo("/v2/catalog/gpus")[0]?.query).toEqual({
      include: "AVAILABILITY",
      product: "POD",
      cloud: "COMMUNITY",
      count: "4",
      minCudaVersion: "12.8",
    });
  });

  it("skips a GPU type whose memory is not the catalog type's, and one out of stock for the count, saying why", async () => {
    fake.gpus.set("NVIDIA A100 80GB PCIe", { ...GPUS[3]!, memory: 40 });
    const search = await adapter().offers({ gpu: ["A100_80GB", "RTX_4090"], gpuCount: 6 });
    expect(search.offers).toEqual([]);
    expect(search.skipped.map((s) => [s.offerId, s.reason])).toEqual([
      ["NVIDIA GeForce RTX 4090", "no stock for 6 GPU(s) in RunPod's SECURE cloud"],
      ["NVIDIA A100 80GB PCIe", "40 GB per GPU, A100_80GB has 80 GB"],
    ]);
  });

  it("with data centres configured, offers only types in stock there", async () => {
    const search = await adapter({ dataCenters: ["EU-RO-1"] }).offers({
      gpu: ["A100_80GB", "L4"],
      gpuCount: 1,
    });
    expect(search.offers.map((o) => o.gpu)).toEqual(["L4"]);
    expect(search.offers[0]?.region).toBe("EU-RO-1");
    expect(search.skipped[0]).toMatchObject({
      offerId: "NVIDIA A100 80GB PCIe",
      reason: "no stock for 1 GPU(s) in EU-RO-1",
    });
  });

  it("uses community prices with cloud: community and multiplies by the GPU count", async () => {
    const offers = (
      await adapter({ cloud: "community" }).offers({
        gpu: ["RTX_4090", "RTX_A6000"],
        gpuCount: 2,
      })
    ).offers;
    expect(offers).toEqual([
      {
        provider: "runpod-pod",
        gpu: "RTX_4090",
        usdPerHour: 0.68,
        offerId: "NVIDIA GeForce RTX 4090",
        gpuMemoryGb: 24,
      },
    ]);
  });

  it("falls back to the configured price when the catalog has none", async () => {
    fake.inject({
      type: "status",
      status: 200,
      json: {
        gpus: [
          {
            id: "NVIDIA GeForce RTX 4090",
            name: "RTX 4090",
            pool: "ADA_24",
            manufacturer: "NVIDIA",
            memory: 24,
            secure: true,
            community: true,
            price: { secure: 0, community: 0 },
            maxCount: { secure: 8, community: 8 },
            availability: "HIGH",
          },
        ],
      },
    });
    const offers = (await adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(offers[0]?.usdPerHour).toBe(0.34);
  });
});

describe("RunPod pod lifecycle", () => {
  it("creates a pod named by owner label and worker id with only documented v2 fields", async () => {
    const a = adapter({ dataCenters: ["EU-RO-1"] });
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const info = await a.provision(spec(), offer!);
    expect(info).toMatchObject({
      workerId: "w-1",
      ownerLabel: "aiorch-prod",
      status: "provisioning",
      usdPerHour: 0.69,
    });

    const [create] = fake.requestsTo("/v2/pods", "POST");
    const body = create?.body as Record<string, unknown>;
    expect(body).toMatchObject({
      name: "aiorch-prod.w-1",
      image: "vllm/vllm-openai:v0.10.1.1",
      cloud: "SECURE",
      gpu: { id: "NVIDIA GeForce RTX 4090", count: 1 },
      ports: ["8000/tcp"],
      env: { HF_TOKEN },
      dataCenterIds: ["EU-RO-1"],
    });
    expect(body.args).toContain(`--api-key ${WORKER_TOKEN}`);
    expect(body.args).toContain("--revision a09a35458c702b33eeacc393d103063234e8bc28");
    expect(create?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it("with TLS: the start command is JSON that runs the start-up shell as entrypoint, key in the env", async () => {
    const cert = createWorkerCertificate("w-1");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision({ ...spec(), tls: { certPem: cert.certPem, keyPem: cert.keyPem } }, offer!);
    const [create] = fake.requestsTo("/v2/pods", "POST");
    const body = create?.body as { args: string; env: Record<string, string> };
    const start = JSON.parse(body.args) as { entrypoint: string[]; cmd: string[] };
    expect(start.entrypoint).toEqual(["/bin/sh"]);
    expect(start.cmd[0]).toBe("-c");
    expect(start.cmd[start.cmd.indexOf("--api-key") + 1]).toBe(WORKER_TOKEN);
    expect(start.cmd).toEqual(expect.arrayContaining(["--ssl-certfile", "--ssl-keyfile"]));
    expect(body.env).toMatchObject({ HF_TOKEN });
    expect(Buffer.from(body.env[TLS_ENV.key]!, "base64").toString()).toBe(cert.keyPem);
    expect(fake.live()).toHaveLength(1);
  });

  it("sends cloud COMMUNITY when configured", async () => {
    const a = adapter({ cloud: "community" });
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision(spec(), offer!);
    expect(fake.requestsTo("/v2/pods", "POST")[0]?.body).toMatchObject({ cloud: "COMMUNITY" });
    expect(fake.live()[0]?.costPerHr).toBe(0.34);
  });

  it("walks PROVISIONING → STARTING → RUNNING with the public port only once running", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(5_000);
    expect(await a.describe(providerId)).toMatchObject({ status: "booting" });
    expect((await a.describe(providerId))?.baseUrl).toBeUndefined();
    clock.advance(60_000);
    const running = await a.describe(providerId);
    expect(running?.status).toBe("running");
    // from runtime.ports: the public ip and port of 8000/tcp
    expect(running?.baseUrl).toMatch(/^http:\/\/198\.51\.100\.\d+:\d+$/);
    const pod = fake.requestsTo(`/v2/pods/${providerId}`, "GET");
    expect(pod.length).toBeGreaterThan(0);
    expect(running?.createdAtMs).toBe(clock.now() - 65_000);
    expect(running?.usdPerHour).toBe(0.69);
  });

  it("a RUNNING pod without a public port has no address, and says so", async () => {
    fake.fates.push("no_port");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(65_000);
    const info = await a.describe(providerId);
    expect(info).toMatchObject({
      status: "running",
      detail: "status=RUNNING; 8000/tcp has no public ip:port",
    });
    expect(info?.baseUrl).toBeUndefined();
  });

  it("prefers a public mapping of the engine port over one on a private network", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(65_000);
    const pod = (await (
      await fetch(`${fake.url}/v2/pods/${providerId}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      })
    ).json()) as Record<string, unknown>;
    const runtime = pod.runtime as { ports: Record<string, unknown>[] };
    const publicPort = runtime.ports[0]!;
    fake.inject(
      {
        type: "status",
        status: 200,
        json: {
          ...pod,
          runtime: {
            ...runtime,
            ports: [{ private: 8000, public: 8000, type: "tcp", ip: "10.0.3.7" }, publicPort],
          },
        },
      },
      { path: `/v2/pods/${providerId}` },
    );
    expect((await a.describe(providerId))?.baseUrl).toBe(`http://${publicPort.ip}:${publicPort.public}`);
    fake.inject(
      {
        type: "status",
        status: 200,
        json: {
          ...pod,
          runtime: { ...runtime, ports: [{ private: 8000, public: 8000, type: "tcp", ip: "10.0.3.7" }] },
        },
      },
      { path: `/v2/pods/${providerId}` },
    );
    expect(await a.describe(providerId)).toMatchObject({
      detail: "status=RUNNING; 8000/tcp has no public ip:port",
    });
  });

  it("never finds an address in a v1-shaped pod (publicIp/portMappings are not v2 fields)", async () => {
    fake.inject(
      {
        type: "status",
        status: 200,
        json: {
          id: "pod1",
          name: "aiorch-prod.w-1",
          status: "RUNNING",
          publicIp: "198.51.100.7",
          portMappings: { "8000": 40123 },
          costPerHr: "0.69",
        },
      },
      { path: "/v2/pods/pod1" },
    );
    const info = await adapter().describe("pod1");
    expect(info?.baseUrl).toBeUndefined();
    expect(info?.usdPerHour).toBeUndefined();
  });

  it("maps stuck, exited and error pods", async () => {
    fake.fates.push("stuck_starting", "exited", "error");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const ids = [];
    for (const w of ["w-a", "w-b", "w-c"]) ids.push((await a.provision(spec(w), offer!)).providerId);
    clock.advance(3_600_000);
    const statuses = await Promise.all(ids.map(async (id) => (await a.describe(id))?.status));
    expect(statuses).toEqual(["booting", "stopped", "failed"]);
  });

  it("lists our pods only, describes a gone pod as undefined, and terminates idempotently (404)", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const one = await a.provision(spec("w-1"), offer!);
    await a.provision(spec("w-2"), offer!);
    fake.seedPod("aiorch-prod-eu.w-1", "NVIDIA GeForce RTX 4090");
    fake.seedPod("my notebook", "NVIDIA GeForce RTX 4090");
    expect((await a.listOwned("aiorch-prod")).map((i) => i.workerId).sort()).toEqual(["w-1", "w-2"]);

    await a.terminate(one.providerId);
    expect(await a.describe(one.providerId)).toBeUndefined();
    await a.terminate(one.providerId);
    const deletes = fake.requestsTo(`/v2/pods/${one.providerId}`, "DELETE");
    expect(deletes).toHaveLength(2);
    expect((await a.listOwned("aiorch-prod")).map((i) => i.workerId)).toEqual(["w-2"]);
  });

  it("accrues per-second cost from STARTING until terminate", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(5_000 + 1_800_000);
    await a.terminate(providerId);
    clock.advance(3_600_000);
    const cost = fake.costOf(providerId);
    expect(cost.billedSeconds).toBe(1800);
    expect(cost.usd).toBeCloseTo(0.345, 9);
  });
});

describe("RunPod pod faults", () => {
  it("surfaces 'no longer any instances available' as capacity, without retrying", async () => {
    const a = adapter();
    const offers = (await a.offers({ gpu: ["L4"], gpuCount: 1 })).offers;
    await a.provision(spec("w-1"), offers[0]!);
    const err = await failure(a.provision(spec("w-2"), offers[0]!));
    expect(err).toMatchObject({ kind: "capacity", status: 400, operation: "provision" });
    expect(err.message).toContain("no longer any instances available");
    expect(fake.requestsTo("/v2/pods", "POST")).toHaveLength(2);
  });

  it("reads createPod's failures as documented: 400 and 403 fail over, 402 stops, 422 is invalid", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject(
      { type: "status", status: 403, json: { title: "Forbidden", status: 403, detail: "access denied" } },
      { method: "POST", path: "/v2/pods" },
    );
    expect(await failure(a.provision(spec("w-1"), offer!))).toMatchObject({ kind: "capacity", status: 403 });
    fake.inject(
      {
        type: "status",
        status: 422,
        json: {
          title: "Unprocessable Entity",
          status: 422,
          detail: "Request validation failed.",
          errors: ["$.gpu.count: must be >= 1"],
        },
      },
      { method: "POST", path: "/v2/pods" },
    );
    const invalid = await failure(a.provision(spec("w-2"), offer!));
    expect(invalid).toMatchObject({ kind: "invalid", status: 422 });
    expect(invalid.message).toContain("$.gpu.count: must be >= 1");
    fake.exhaustBalance();
    expect(await failure(a.provision(spec("w-3"), offer!))).toMatchObject({ kind: "fatal", status: 402 });
    expect(fake.requestsTo("/v2/pods", "POST")).toHaveLength(3);
  });

  it("sends the image's CUDA floor with the GPU, or the configured one", async () => {
    const a = adapter({ minCudaVersion: "13.0" });
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision(spec(), offer!);
    expect(fake.requestsTo("/v2/pods", "POST")[0]?.body).toMatchObject({
      gpu: { id: "NVIDIA GeForce RTX 4090", count: 1, minCudaVersion: "13.0" },
    });
    await adapter().provision(spec("w-2"), offer!);
    expect(fake.requestsTo("/v2/pods", "POST")[1]?.body).toMatchObject({ gpu: { minCudaVersion: "12.8" } });
  });

  it("treats a data-centre pin with no such GPU as capacity", async () => {
    const a = adapter({ dataCenters: ["EU-RO-1"] });
    // the catalog leaves it out; an offer read before stock moved is placed and refused with 400
    expect((await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers).toEqual([]);
    const stale = {
      provider: "runpod-pod",
      gpu: "A100_80GB",
      usdPerHour: 1.64,
      offerId: "NVIDIA A100 80GB PCIe",
    } as const;
    expect((await failure(a.provision(spec(), stale))).kind).toBe("capacity");
  });

  it("honours Retry-After on a problem+json 429", async () => {
    fake.rateLimitNext(2, 3);
    const offers = (await adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(offers).toHaveLength(1);
    expect(sleeps).toEqual([3_000, 3_000]);
    expect(retries[0]?.message).toContain("rate limit exceeded");
  });

  it("without Retry-After, waits for the exhausted RateLimit window to reset", async () => {
    fake.rateLimitNext(1, 7, {}, { withRetryAfter: false });
    expect((await adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers).toHaveLength(1);
    expect(sleeps).toEqual([7_000]);
  });

  it("retries 5xx and timeouts on reads; never retries auth or fatal", async () => {
    fake.inject({ type: "status", status: 500, json: { title: "Internal Server Error", status: 500 } });
    fake.inject({ type: "timeout" });
    expect(await adapter().listOwned("aiorch-prod")).toEqual([]);
    expect(retries.map((r) => r.kind)).toEqual(["transient", "transient"]);

    const before = fake.requests.length;
    const auth = await failure(adapter({}, "rpa_WRONG_SECRET_KEY_99").listOwned("aiorch-prod"));
    expect(auth).toMatchObject({ kind: "auth", status: 401 });
    expect(auth.message).not.toContain("rpa_WRONG_SECRET_KEY_99");
    fake.inject({
      type: "status",
      status: 403,
      json: { title: "Forbidden", status: 403, detail: "read-only key" },
    });
    expect((await failure(adapter().listOwned("aiorch-prod"))).kind).toBe("auth");
    fake.inject({
      type: "status",
      status: 422,
      json: { title: "Unprocessable", status: 422, detail: "bad" },
    });
    expect((await failure(adapter().listOwned("aiorch-prod"))).kind).toBe("invalid");
    expect(fake.requests.length - before).toBe(3);
  });

  it("adopts a pod whose create errored after taking effect", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({ type: "process-then-fail", status: 502 }, { method: "POST", path: "/v2/pods" });
    const info = await a.provision(spec(), offer!);
    expect(info.workerId).toBe("w-1");
    expect(fake.live()).toHaveLength(1);
    expect(fake.requestsTo("/v2/pods", "POST")).toHaveLength(1);
  });

  it("adopts a pod whose create answered garbage or timed out", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({ type: "process-then-fail", status: 201, body: '{"id": ' }, { method: "POST" });
    expect((await a.provision(spec("w-1"), offer!)).workerId).toBe("w-1");
    fake.inject({ type: "timeout", process: true }, { method: "POST" });
    expect((await a.provision(spec("w-2"), offer!)).workerId).toBe("w-2");
    fake.inject({ type: "process-then-fail", status: 201, body: '{"nope": true}' }, { method: "POST" });
    expect((await a.provision(spec("w-3"), offer!)).workerId).toBe("w-3");
    expect(
      fake
        .live()
        .map((p) => p.body.name)
        .sort(),
    ).toEqual(["aiorch-prod.w-1", "aiorch-prod.w-2", "aiorch-prod.w-3"]);
    expect(fake.requestsTo("/v2/pods", "POST")).toHaveLength(3);
  });

  it("garbage bodies surface as transient errors that never echo pod env", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    fake.inject({ type: "garbage" }, { times: 100 });
    expect((await failure(a.describe(providerId))).kind).toBe("transient");
    fake.clearFaults();
    // a list of the wrong shape that carries a pod's env: the message describes the shape, not the values
    fake.inject(
      { type: "status", status: 200, json: { pods: { id: "x", env: { HF_TOKEN: "hf_OTHER_SECRET_abc" } } } },
      { times: 100 },
    );
    const err = await failure(a.listOwned("aiorch-prod"));
    expect(err.kind).toBe("transient");
    expect(err.message).not.toContain("hf_OTHER_SECRET_abc");
    fake.clearFaults();
    // v1 answered a bare array; v2 wraps lists in {pods}
    fake.inject({ type: "status", status: 200, json: [null, { id: 5 }, "x"] }, { times: 100 });
    expect((await failure(a.listOwned("aiorch-prod"))).kind).toBe("transient");
    fake.clearFaults();
    fake.inject({ type: "status", status: 200, json: { pods: [null, { id: 5 }, "x"] } });
    expect(await a.listOwned("aiorch-prod")).toEqual([]);
  });
});
