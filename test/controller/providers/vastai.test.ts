import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RetryEvent } from "../../../controller/providers/http";
import { ProviderError, TLS_ENV, type WorkerSpec } from "../../../controller/providers/types";
import { VastAiAdapter } from "../../../controller/providers/vastai";
import { vastaiSchema } from "../../../core/config/schema";
import {
  CreateInstanceRequest,
  SearchOffersRequest,
  SearchOffersResponse,
  VAST_ENV_MAX_LENGTH,
  type VastOffer,
} from "../../../core/contracts/vastai";
import { createWorkerCertificate } from "../../../core/x509";
import { ManualClock, schemaViolations } from "../../fakes/fake-api-server";
import { joinedEnvValue, VastAiFake, type VastOfferSeed } from "../../fakes/vastai-api";

const API_KEY = "vastkey-SECRET-4f1c9a77d2";
const WORKER_TOKEN = "wtok-SECRET-8b3e11aa90";
const HF_TOKEN = "hf_SECRET_x91kk2m3n4";
const SECRETS = [API_KEY, WORKER_TOKEN, HF_TOKEN];

const OFFERS: VastOfferSeed[] = [
  { id: 101, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.4, reliability: 0.995 },
  { id: 102, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.3, reliability: 0.99 },
  { id: 103, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.2, reliability: 0.9 },
  { id: 104, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.25, reliability: 0.99, verified: false },
  { id: 105, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.35, reliability: 0.99 },
  { id: 106, gpu_name: "RTX 4090", num_gpus: 2, dph_base: 0.6, reliability: 0.99 },
  { id: 107, gpu_name: "A100 SXM4", num_gpus: 1, dph_base: 1.2, reliability: 0.99, gpu_ram: 81_920 },
  { id: 108, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.9, reliability: 0.999 },
];

const spec = (workerId = "w-1", ownerLabel = "aiorch-dev"): WorkerSpec => ({
  workerId,
  ownerLabel,
  model: "llama-3.1-8b",
  source: "meta-llama/Llama-3.1-8B-Instruct",
  engine: "vllm",
  image: "vllm/vllm-openai:v0.10.1.1",
  gpuCount: 1,
  maxModelLen: 8192,
  engineArgs: ["--enable-prefix-caching"],
  port: 8000,
  workerToken: WORKER_TOKEN,
  env: { HF_TOKEN },
});

let clock: ManualClock;
let fake: VastAiFake;
let sleeps: number[];
let retries: RetryEvent[];

function adapter(settings: Record<string, unknown> = {}, apiKey = API_KEY): VastAiAdapter {
  return new VastAiAdapter({
    settings: vastaiSchema.parse({ apiBase: fake.apiBase, maxUsdPerHour: 0.5, ...settings }),
    apiKey,
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

/** The error a promise rejects with; asserts it is a ProviderError that names no credential. */
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
  fake = new VastAiFake({ apiKey: API_KEY, offers: OFFERS, now: clock.now });
  await fake.start();
  sleeps = [];
  retries = [];
});

afterEach(async () => {
  await fake.close();
  // every reply the fake made matched Vast.ai's published response schemas
  expect(fake.contractViolations).toEqual([]);
});

/** A search answer (as Vast would send it, checked against the published schema) for an injected fault. */
function searchAnswer(offers: VastOffer[]): { offers: VastOffer[] } {
  const answer = { offers };
  expect(schemaViolations(SearchOffersResponse, answer)).toEqual([]);
  return answer;
}

const offer = (o: Partial<VastOffer> & { id: number }): VastOffer => ({
  gpu_name: "A100 SXM4",
  num_gpus: 1,
  gpu_ram: 81_920,
  dph_total: 1.1,
  reliability: 0.995,
  direct_port_count: 40,
  verification: "verified",
  rentable: true,
  rented: false,
  disk_space: 500,
  ...o,
});

describe("Vast.ai offers", () => {
  it("filters by GPU, count, verified, reliability and price cap, cheapest first", async () => {
    const offers = (await adapter().offers({ gpu: ["RTX_4090", "RTX_3090"], gpuCount: 1 })).offers;
    expect(offers.map((o) => o.offerId)).toEqual(["102", "105", "101"]);
    expect(offers[0]).toMatchObject({
      provider: "vastai",
      gpu: "RTX_4090",
      usdPerHour: 0.36,
      reliability: 0.99,
    });
    expect(offers[1]?.gpu).toBe("RTX_3090");
    expect(offers[0]?.gpuMemoryGb).toBe(24); // gpu_ram 24564 MB

    const [search] = fake.requestsTo("/bundles/", "POST");
    expect(search?.body).toMatchObject({
      verified: { eq: true },
      rentable: { eq: true },
      rented: { eq: false },
      reliability: { gte: 0.98 },
      dph_total: { lte: 0.5 },
      gpu_name: { in: ["RTX 4090", "RTX 3090"] },
      num_gpus: { eq: 1 },
      // 24 GB × 0.9 tolerance in Vast's (binary) MB per GPU
      gpu_ram: { gte: 22_118 },
      direct_port_count: { gte: 1 },
      order: [["dph_total", "asc"]],
      type: "ondemand",
      allocated_storage: 60,
    });
    expect(schemaViolations(SearchOffersRequest, search?.body)).toEqual([]);
    expect(search?.path).toBe("/api/v0/bundles/");
    expect(search?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it("honours verifiedOnly=false, a lower reliability floor, no cap and multi-GPU counts", async () => {
    const loose = adapter({ verifiedOnly: false, minReliability: 0.5, maxUsdPerHour: undefined });
    const single = (await loose.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(single.map((o) => o.offerId)).toEqual(["103", "104", "102", "101", "108"]);
    const double = (await loose.offers({ gpu: ["RTX_4090"], gpuCount: 2 })).offers;
    expect(double.map((o) => o.offerId)).toEqual(["106"]);
    // the search defaults to verified hosts (search_offers.yaml): both must be asked for explicitly
    expect(fake.requestsTo("/bundles/")[0]?.body).toMatchObject({ verified: { in: [true, false] } });
  });

  it("scales the per-GPU price cap with the GPU count", async () => {
    const offers = (await adapter({ maxUsdPerHour: 0.3 }).offers({ gpu: ["RTX_4090"], gpuCount: 2 })).offers;
    expect(offers.map((o) => o.offerId)).toEqual([]);
    const ok = (await adapter({ maxUsdPerHour: 0.35 }).offers({ gpu: ["RTX_4090"], gpuCount: 2 })).offers;
    expect(ok.map((o) => o.offerId)).toEqual(["106"]);
  });

  it("returns nothing for GPUs Vast.ai does not list, without calling the API", async () => {
    expect((await adapter().offers({ gpu: ["H200"], gpuCount: 1 })).offers).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("an offer disappears once rented", async () => {
    const a = adapter();
    const [cheapest] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision(spec(), cheapest!);
    const after = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(after.map((o) => o.offerId)).not.toContain(cheapest!.offerId);
  });
});

describe("Vast.ai instance lifecycle", () => {
  it("provision tags the instance and starts the engine with the worker token", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const info = await a.provision(spec(), offer!);
    expect(info).toMatchObject({ workerId: "w-1", ownerLabel: "aiorch-dev", status: "provisioning" });
    expect(info.baseUrl).toBeUndefined();

    const [create] = fake.requestsTo(/\/asks\/102\/$/, "PUT");
    const body = create?.body as Record<string, unknown>;
    expect(body.label).toBe("aiorch-dev.w-1");
    expect(body.image).toBe("vllm/vllm-openai:v0.10.1.1");
    expect(body.disk).toBe(60);
    expect(body.runtype).toBe("args");
    expect(body).not.toHaveProperty("price"); // on-demand, not an interruptible bid
    expect(body).not.toHaveProperty("onstart"); // the image's entrypoint runs the engine
    // no weight cache configured: downloads from the Hub into the engine's download dir on the instance's disk
    expect(body.env).toEqual({ HF_TOKEN, HF_HOME: "/aiorch/weights/hf", "-p 8000:8000": "1" });
    const args = body.args as string[];
    expect(args[args.indexOf("--download-dir") + 1]).toBe("/aiorch/weights");
    expect(args[args.indexOf("--api-key") + 1]).toBe(WORKER_TOKEN);
    expect(args).toEqual(
      expect.arrayContaining(["--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"]),
    );
    expect(args).toContain("--enable-prefix-caching");
  });

  it("walks provisioning → booting → running and exposes the mapped port only once running", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    expect((await a.describe(providerId))?.status).toBe("provisioning");
    clock.advance(2_000);
    expect(await a.describe(providerId)).toMatchObject({ status: "booting" });
    clock.advance(30_000);
    const running = await a.describe(providerId);
    expect(running?.status).toBe("running");
    expect(running?.baseUrl).toMatch(/^http:\/\/203\.0\.113\.\d+:4\d{4}$/);
    expect(running?.usdPerHour).toBeCloseTo(0.36);
  });

  it("finds the engine port of an instance another process created", async () => {
    const first = adapter();
    const [offer] = (await first.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await first.provision(spec(), offer!);
    clock.advance(40_000);
    const restarted = adapter();
    expect((await restarted.describe(providerId))?.baseUrl).toMatch(/^http:\/\//);
  });

  it("reports a stuck-loading instance as booting and an exited one as failed", async () => {
    fake.fates.push("stuck_loading", "exited");
    const a = adapter();
    const offers = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const stuck = await a.provision(spec("w-stuck"), offers[0]!);
    const exited = await a.provision(spec("w-exit"), offers[1]!);
    clock.advance(3_600_000);
    expect((await a.describe(stuck.providerId))?.status).toBe("booting");
    const dead = await a.describe(exited.providerId);
    expect(dead?.status).toBe("failed");
    expect(dead?.detail).toContain("exited");
  });

  it("lists only instances with our owner label; describe of an unknown id is undefined", async () => {
    const a = adapter();
    const offers = (await a.offers({ gpu: ["RTX_4090", "RTX_3090"], gpuCount: 1 })).offers;
    await a.provision(spec("w-1"), offers[0]!);
    await a.provision(spec("w-2"), offers[1]!);
    fake.seedInstance(101, "aiorch-dev-2.w-1"); // another stack whose label starts like ours
    fake.seedInstance(107, "someone-else");
    const owned = await a.listOwned("aiorch-dev");
    expect(owned.map((i) => i.workerId).sort()).toEqual(["w-1", "w-2"]);
    expect(await a.describe("999999")).toBeUndefined();
  });

  it("terminate destroys, and a second terminate (Vast error JSON) still succeeds", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    await a.terminate(providerId);
    expect((await a.describe(providerId))?.status).toBe("terminated");
    await a.terminate(providerId); // 404 not_found: already gone
    const deletes = fake.requestsTo(`/api/v0/instances/${providerId}/`, "DELETE");
    expect(deletes).toHaveLength(2);
    expect(fake.live()).toHaveLength(0);
    expect((await a.listOwned("aiorch-dev")).map((i) => i.status)).toEqual(["terminated"]);
  });

  it("treats success:false on HTTP 200 for a gone instance as success after reading back", async () => {
    const a = adapter();
    fake.inject(
      {
        type: "status",
        status: 200,
        json: { success: false, error: "invalid_args", msg: "no such instance" },
      },
      { method: "DELETE" },
    );
    await a.terminate("4242");
  });

  it("bills GPU while running and storage from creation, also while stopped", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    const id = Number(providerId);
    clock.advance(32_000); // 2 s provisioning + 30 s loading → running
    clock.advance(3_600_000);
    const running = fake.costOf(id);
    expect(running.gpuSeconds).toBe(3600);
    expect(running.storageSeconds).toBe(3632);
    expect(running.usd).toBeCloseTo(0.3 + (0.06 * 3632) / 3600, 6);
    // stopping keeps storage billing; only destroy ends it
    await fetch(`${fake.apiBase}/instances/${id}/`, {
      method: "PUT",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "stopped" }),
    });
    clock.advance(3_600_000);
    const stopped = fake.costOf(id);
    expect(stopped.gpuSeconds).toBe(3600);
    expect(stopped.storageSeconds).toBe(7232);
    await a.terminate(providerId);
    clock.advance(3_600_000);
    expect(fake.costOf(id).usd).toBeCloseTo(stopped.usd, 9);
  });
});

describe("Vast.ai faults", () => {
  it("retries a plain-text 429 without Retry-After using exponential backoff with jitter", async () => {
    fake.rateLimitNext(3);
    const offers = (await adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(offers).toHaveLength(2);
    expect(fake.requestsTo("/bundles/")).toHaveLength(4);
    expect(sleeps).toEqual([250, 500, 1000]); // random 0.5 × 500·2^n
    expect(retries.map((r) => r.kind)).toEqual(["rate_limit", "rate_limit", "rate_limit"]);
    expect(retries[0]?.message).toContain("API requests too frequent");
  });

  it("waits at least Retry-After (seconds or HTTP date)", async () => {
    fake.inject({ type: "status", status: 429, body: "slow down", headers: { "retry-after": "7" } });
    fake.inject({
      type: "status",
      status: 429,
      json: { success: false, msg: "slow" },
      headers: { "retry-after": new Date(clock.now() + 7_000 + 12_000).toUTCString() },
    });
    (await adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(sleeps[0]).toBe(7_000);
    expect(sleeps[1]).toBe(12_000);
  });

  it("gives up on a Retry-After beyond the total budget, reporting it", async () => {
    fake.inject({ type: "status", status: 429, body: "later", headers: { "retry-after": "3600" } });
    const err = await failure(adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 }));
    expect(err.kind).toBe("rate_limit");
    expect(err.retryAfterMs).toBe(3_600_000);
    expect(sleeps).toEqual([]);
  });

  it("retries 5xx and resets, and stops after the attempt budget", async () => {
    fake.inject({ type: "status", status: 502, body: "bad gateway" });
    fake.inject({ type: "reset" });
    expect(await adapter().listOwned("aiorch-dev")).toEqual([]);
    expect(retries.map((r) => r.kind)).toEqual(["transient", "transient"]);

    fake.inject({ type: "status", status: 503, json: { msg: "maintenance" } }, { times: 100 });
    sleeps = [];
    const err = await failure(adapter().listOwned("aiorch-dev"));
    expect(err).toMatchObject({ kind: "transient", status: 503, attempts: 5, operation: "list" });
    expect(err.message).toMatch(/^vastai list failed/);
    expect(sleeps).toHaveLength(4);
  });

  it("retries a request the provider never answers (timeout)", async () => {
    fake.inject({ type: "timeout" }, { path: "/instances/" });
    expect(await adapter().listOwned("aiorch-dev")).toEqual([]);
    expect(retries[0]?.message).toContain("no answer within 300 ms");
  });

  it("does not retry a wrong key (auth) and never shows the key", async () => {
    // search_offers.yaml documents a refused key on the search as 404 "Invalid user key"
    const err = await failure(adapter({}, "wrong-key-SECRET-77").offers({ gpu: ["RTX_4090"], gpuCount: 1 }));
    expect(err).toMatchObject({ kind: "auth", status: 404 });
    expect(err.message).not.toContain("wrong-key-SECRET-77");
    expect(fake.requests).toHaveLength(1);
  });

  it("does not retry a fatal 4xx", async () => {
    fake.inject({
      type: "status",
      status: 400,
      json: { success: false, error: "invalid_args", msg: "bad disk" },
    });
    const err = await failure(adapter().offers({ gpu: ["RTX_4090"], gpuCount: 1 }));
    expect(err).toMatchObject({ kind: "fatal", code: "invalid_args" });
    expect(fake.requests).toHaveLength(1);
  });

  it("surfaces a rented-away offer as capacity, without retrying the create", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision(spec("w-1"), offer!);
    const err = await failure(a.provision(spec("w-2"), offer!));
    // create_instance.yaml 404: error "invalid_args", msg "…no_such_ask Instance type by id N is not available."
    expect(err).toMatchObject({ kind: "capacity", operation: "provision", status: 404 });
    expect(err.message).toContain("no_such_ask");
    expect(fake.requestsTo("/asks/", "PUT")).toHaveLength(2);
  });

  it("adopts an instance whose create errored but did create (no second instance)", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({ type: "process-then-fail", status: 500 }, { method: "PUT", path: "/asks/" });
    const info = await a.provision(spec(), offer!);
    expect(info.workerId).toBe("w-1");
    expect(fake.live()).toHaveLength(1);
    expect(fake.requestsTo("/asks/", "PUT")).toHaveLength(1);
    expect(String(fake.live()[0]?.id)).toBe(info.providerId);
  });

  it("adopts an instance whose create timed out after taking effect", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({ type: "timeout", process: true }, { method: "PUT", path: "/asks/" });
    const info = await a.provision(spec(), offer!);
    expect(info.workerId).toBe("w-1");
    expect(fake.live()).toHaveLength(1);
  });

  it("a provision retried by the caller with the same worker id adopts instead of renting twice", async () => {
    const a = adapter();
    const offers = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const first = await a.provision(spec(), offers[0]!);
    const second = await a.provision(spec(), offers[1]!);
    expect(second.providerId).toBe(first.providerId);
    expect(fake.live()).toHaveLength(1);
  });

  it("garbage bodies never crash: they surface as transient ProviderErrors", async () => {
    fake.inject({ type: "garbage" }, { times: 100 });
    const a = adapter();
    expect((await failure(a.offers({ gpu: ["RTX_4090"], gpuCount: 1 }))).kind).toBe("transient");
    expect((await failure(a.describe("7000001"))).kind).toBe("transient");
    expect((await failure(a.listOwned("aiorch-dev"))).kind).toBe("transient");
    fake.clearFaults();
    fake.inject({ type: "status", status: 200, json: { offers: "nope" } });
    fake.inject({ type: "status", status: 200, json: { instances: [null, 3, { id: 5, label: 9 }] } });
    expect((await failure(a.offers({ gpu: ["RTX_4090"], gpuCount: 1 }))).kind).toBe("transient");
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
  });

  it("garbage on a create is treated as maybe-created: adopted if it exists", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({ type: "process-then-fail", status: 200, body: "<html>oops" }, { method: "PUT" });
    fake.inject({ type: "garbage" }, { method: "GET", path: "/instances/", times: 2 });
    const info = await a.provision(spec(), offer!);
    expect(info.workerId).toBe("w-1");
    expect(fake.live()).toHaveLength(1);
  });

  it("with TLS: onstart replaces the entrypoint with the start-up shell, certificate and key in the env", async () => {
    const cert = createWorkerCertificate("w-1");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    await a.provision({ ...spec(), tls: { certPem: cert.certPem, keyPem: cert.keyPem } }, offer!);
    const [create] = fake.requestsTo(/\/asks\/102\/$/, "PUT");
    const body = create?.body as {
      env: Record<string, string>;
      onstart?: string;
      args: string[];
      runtype: string;
    };
    expect(body.runtype).toBe("args");
    expect(body.onstart).toBe("/bin/sh");
    expect(body.args.slice(0, 1)).toEqual(["-c"]);
    expect(body.args[body.args.indexOf("--api-key") + 1]).toBe(WORKER_TOKEN);
    expect(body.args).toEqual(expect.arrayContaining(["--ssl-certfile", "--ssl-keyfile"]));
    // Vast.ai takes at most 256 characters per env entry: certificate and key travel in numbered parts
    expect(body.env[TLS_ENV.key]).toBeUndefined();
    expect(body.env[`${TLS_ENV.key}_0`]).toBeDefined();
    for (const [k, v] of Object.entries(body.env)) {
      expect(k.length).toBeLessThanOrEqual(VAST_ENV_MAX_LENGTH);
      expect(v.length).toBeLessThanOrEqual(VAST_ENV_MAX_LENGTH);
    }
    expect(Buffer.from(joinedEnvValue(body.env, TLS_ENV.key)!, "base64").toString()).toBe(cert.keyPem);
    expect(Buffer.from(joinedEnvValue(body.env, TLS_ENV.cert)!, "base64").toString()).toBe(cert.certPem);
    expect(body.args[1]).toContain(`"$${TLS_ENV.key}_0"`);
    expect(body.env).toMatchObject({ HF_TOKEN, "-p 8000:8000": "1" });
    expect(schemaViolations(CreateInstanceRequest, body)).toEqual([]);
    expect(fake.live()).toHaveLength(1); // the API took it
  });

  it("no error message carries the TLS key, whichever form the provider echoes", async () => {
    const cert = createWorkerCertificate("w-1");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const keyB64 = Buffer.from(cert.keyPem).toString("base64");
    const keyLine = cert.keyPem.split("\n")[1]!;
    fake.inject({
      type: "status",
      status: 400,
      json: {
        success: false,
        error: "invalid_args",
        msg: `bad env ${TLS_ENV.key}=${keyB64} line ${keyLine} part ${TLS_ENV.key}_1=${keyB64.slice(224, 448)}`,
      },
    });
    const err = await failure(
      a.provision({ ...spec(), tls: { certPem: cert.certPem, keyPem: cert.keyPem } }, offer!),
    );
    expect(err.message).not.toContain(keyB64.slice(100, 140)); // past the constant "-----BEGIN …" prefix
    expect(err.message).not.toContain(keyB64.slice(230, 290)); // nor a part it travels in (echoed alone)
    expect(err.message).not.toContain(keyLine);
    expect(err.message).toContain("[redacted]");
  });

  it("no error message carries the key, worker token or HF token, even when the provider echoes them", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    fake.inject({
      type: "status",
      status: 400,
      json: {
        success: false,
        error: "invalid_args",
        msg: `bad env HF_TOKEN=${HF_TOKEN} args --api-key ${WORKER_TOKEN} key ${API_KEY}`,
      },
    });
    const err = await failure(a.provision(spec(), offer!));
    expect(err.kind).toBe("fatal");
    expect(err.message).toContain("[redacted]");
  });
});

describe("Vast.ai published contract: what the adapter must not get wrong", () => {
  const A100_40 = {
    id: 201,
    gpu_name: "A100 SXM4",
    num_gpus: 1,
    dph_base: 0.7,
    reliability: 0.995,
    gpu_ram: 40_960,
  };
  const A100_80 = {
    id: 202,
    gpu_name: "A100 SXM4",
    num_gpus: 1,
    dph_base: 1.3,
    reliability: 0.995,
    gpu_ram: 81_920,
  };
  const seed = (...offers: VastOfferSeed[]) => {
    for (const o of offers) fake.offers.set(o.id, { ...o, rented: false });
  };

  it("never places an A100_80GB model on a 40 GB A100 SXM4 (same name): gpu_ram in the query, re-checked per offer", async () => {
    seed(A100_40, A100_80);
    const a = adapter({ maxUsdPerHour: 2 });
    const search = await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 });
    expect(search.offers.map((o) => o.offerId)).toEqual(["107", "202"]);
    for (const o of search.offers) expect(o).toMatchObject({ gpu: "A100_80GB", gpuMemoryGb: 80 });
    // 80 GB × 0.9 in binary MB: the 40 GB card is filtered by Vast itself
    expect(fake.requestsTo("/api/v0/bundles/")[0]?.body).toMatchObject({ gpu_ram: { gte: 73_728 } });

    // a search answer that ignores the memory filter still never yields the 40 GB card
    fake.inject(
      {
        type: "status",
        status: 200,
        json: searchAnswer([offer({ id: 201, gpu_ram: 40_960, dph_total: 0.71 }), offer({ id: 202 })]),
      },
      { path: "/bundles/" },
    );
    const sloppy = await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 });
    expect(sloppy.offers.map((o) => o.offerId)).toEqual(["202"]);
    expect(sloppy.skipped).toEqual([
      {
        provider: "vastai",
        offerId: "201",
        gpuName: "A100 SXM4",
        gpuMemoryGb: 40,
        usdPerHour: 0.71,
        reason: "40 GB per GPU, A100_80GB needs 80 GB",
      },
    ]);
  });

  it("never rents a host without direct ports (its engine port would never be mapped)", async () => {
    // the cheapest RTX 4090 has no direct ports
    seed({
      id: 301,
      gpu_name: "RTX 4090",
      num_gpus: 1,
      dph_base: 0.1,
      reliability: 0.999,
      direct_port_count: 0,
    });
    const a = adapter();
    const search = await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 });
    expect(search.offers.map((o) => o.offerId)).not.toContain("301");
    expect(search.offers[0]?.offerId).toBe("102");
    expect(fake.requestsTo("/api/v0/bundles/")[0]?.body).toMatchObject({ direct_port_count: { gte: 1 } });

    fake.inject(
      {
        type: "status",
        status: 200,
        json: searchAnswer([
          offer({ id: 301, gpu_name: "RTX 4090", gpu_ram: 24_564, dph_total: 0.11, direct_port_count: 0 }),
        ]),
      },
      { path: "/bundles/" },
    );
    const sloppy = await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 });
    expect(sloppy.offers).toEqual([]);
    expect(sloppy.skipped).toMatchObject([
      { offerId: "301", reason: expect.stringMatching(/^no direct ports/) },
    ]);

    // why it matters: on such a host the port request is never mapped, the instance never gets an address
    const info = await a.provision(spec("w-np"), {
      provider: "vastai",
      gpu: "RTX_4090",
      usdPerHour: 0.11,
      offerId: "301",
    });
    clock.advance(60_000);
    const running = await a.describe(info.providerId);
    expect(running?.status).toBe("running");
    expect(running?.baseUrl).toBeUndefined();
  });

  it("every offer Vast listed but the adapter left out is reported with a reason a user can act on", async () => {
    fake.inject(
      {
        type: "status",
        status: 200,
        json: searchAnswer([
          offer({ id: 1, dph_total: 1.2 }),
          offer({ id: 2, gpu_ram: 40_960 }),
          offer({ id: 3, direct_port_count: 0 }),
          offer({ id: 4, dph_total: 2.5 }),
          offer({ id: 5, reliability: 0.91 }),
          offer({ id: 6, num_gpus: 2 }),
          offer({ id: 7, verification: "unverified" }),
          offer({ id: 8, gpu_name: "RTX 4090" }),
          offer({ id: 9, disk_space: 20 }),
          offer({ id: 10, rented: true }),
        ]),
      },
      { path: "/bundles/" },
    );
    const search = await adapter({ maxUsdPerHour: 2 }).offers({ gpu: ["A100_80GB"], gpuCount: 1 });
    expect(search.offers.map((o) => o.offerId)).toEqual(["1"]);
    expect(Object.fromEntries(search.skipped.map((s) => [s.offerId, s.reason]))).toEqual({
      "2": "40 GB per GPU, A100_80GB needs 80 GB",
      "3": "no direct ports: the engine's port would never be reachable",
      "4": "$2.5/h over maxUsdPerHour ($2/h for 1 GPU)",
      "5": "reliability 0.91 < 0.98 (minReliability)",
      "6": "2 GPUs per instance, the model needs 1",
      "7": "host unverified, verifiedOnly is set",
      "8": 'GPU "RTX 4090" is none of the model\'s GPU types',
      "9": "20 GB of disk, 60 GB needed",
      "10": "no longer rentable",
    });
  });

  it("lists instances from the v1 endpoint, following every page of 25 by next_token", async () => {
    for (let i = 0; i < 31; i++) {
      seed({ id: 500 + i, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.2, reliability: 0.99 });
      fake.seedInstance(500 + i, i % 10 === 9 ? `other-stack.w-${i}` : `aiorch-dev.w-${i}`);
    }
    const owned = await adapter().listOwned("aiorch-dev");
    expect(owned).toHaveLength(28);
    expect(new Set(owned.map((i) => i.workerId)).size).toBe(28);
    const pages = fake.requestsTo("/api/v1/instances/", "GET");
    expect(pages).toHaveLength(2);
    expect(pages[0]?.query).toMatchObject({ limit: "25" });
    expect(pages[0]?.query.after_token).toBeUndefined();
    expect(pages[1]?.query.after_token).toEqual(expect.any(String));
    // the deprecated v0 list is not used (and not in the published spec)
    expect(fake.requestsTo(/^\/api\/v0\/instances\/$/)).toHaveLength(0);
  });

  it("an invalid page token is a fatal 400, not a loop", async () => {
    fake.inject(
      { type: "status", status: 200, json: { instances: [], next_token: "bm90LWEtdG9rZW4=" } },
      { path: "/api/v1/instances/" },
    );
    const err = await failure(adapter().listOwned("aiorch-dev"));
    expect(err).toMatchObject({ kind: "fatal", status: 400, code: "invalid_token" });
  });

  it("a destroyed instance (cur_state unloaded) reads terminated, then disappears", async () => {
    const a = adapter();
    const providerId = String(fake.seedInstance(102, "aiorch-dev.w-1"));
    clock.advance(40_000);
    expect((await a.describe(providerId))?.status).toBe("running");
    await a.terminate(providerId);
    const gone = await a.describe(providerId);
    expect(gone).toMatchObject({ status: "terminated", workerId: "w-1" });
    expect(gone?.detail).toContain("cur_state=unloaded");
    expect(gone?.baseUrl).toBeUndefined();
    expect((await a.listOwned("aiorch-dev")).map((i) => i.status)).toEqual(["terminated"]);
    clock.advance(3_600_000);
    expect(await a.describe(providerId)).toBeUndefined();
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
  });

  it("a request beyond Vast's published input limits is refused before it is sent, naming the field only", async () => {
    const a = adapter();
    const [first] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const long = `hf_SECRET_${"x".repeat(300)}`;
    const err = await failure(a.provision({ ...spec(), env: { HF_TOKEN: long } }, first!));
    expect(err.kind).toBe("invalid"); // a configuration error: held back, not repeated every tick
    expect(err.message).toContain("env.HF_TOKEN");
    expect(err.message).not.toContain(long.slice(0, 40));
    expect(fake.requestsTo("/asks/", "PUT")).toHaveLength(0);
  });

  it("accepts the server root as apiBase as well as the catalog's …/api/v0 form", async () => {
    const a = adapter({ apiBase: fake.url });
    expect((await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers).toHaveLength(2);
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
    expect(fake.requests.map((r) => r.path)).toEqual(["/api/v0/bundles/", "/api/v1/instances/"]);
  });
});
