import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RetryEvent } from "../../../controller/providers/http";
import { ProviderError, TLS_ENV, type WorkerSpec } from "../../../controller/providers/types";
import { VastAiAdapter } from "../../../controller/providers/vastai";
import { vastaiSchema } from "../../../core/config/schema";
import { createWorkerCertificate } from "../../../core/x509";
import { ManualClock } from "../../fakes/fake-api-server";
import { VastAiFake, type VastOfferSeed } from "../../fakes/vastai-api";

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
  { id: 107, gpu_name: "A100 SXM4", num_gpus: 1, dph_base: 1.2, reliability: 0.99 },
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

    const [search] = fake.requestsTo("/bundles/", "POST");
    expect(search?.body).toMatchObject({
      verified: { eq: true },
      rentable: { eq: true },
      rented: { eq: false },
      reliability: { gte: 0.98 },
      dph_total: { lte: 0.5 },
      gpu_name: { in: ["RTX 4090", "RTX 3090"] },
      num_gpus: { eq: 1 },
      order: [["dph_total", "asc"]],
    });
    expect(search?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it("honours verifiedOnly=false, a lower reliability floor, no cap and multi-GPU counts", async () => {
    const loose = adapter({ verifiedOnly: false, minReliability: 0.5, maxUsdPerHour: undefined });
    const single = (await loose.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    expect(single.map((o) => o.offerId)).toEqual(["103", "104", "102", "101", "108"]);
    const double = (await loose.offers({ gpu: ["RTX_4090"], gpuCount: 2 })).offers;
    expect(double.map((o) => o.offerId)).toEqual(["106"]);
    expect(fake.requestsTo("/bundles/")[0]?.body).not.toHaveProperty("verified");
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
    expect(await a.describe(providerId)).toBeUndefined();
    await a.terminate(providerId);
    const deletes = fake.requestsTo(`/instances/${providerId}/`, "DELETE");
    expect(deletes).toHaveLength(2);
    expect(fake.live()).toHaveLength(0);
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
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
    const err = await failure(adapter({}, "wrong-key-SECRET-77").offers({ gpu: ["RTX_4090"], gpuCount: 1 }));
    expect(err).toMatchObject({ kind: "auth", status: 401 });
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
    expect(err).toMatchObject({ kind: "capacity", operation: "provision", code: "no_such_ask" });
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
    expect(Buffer.from(body.env[TLS_ENV.key]!, "base64").toString()).toBe(cert.keyPem);
    expect(body.env).toMatchObject({ HF_TOKEN, "-p 8000:8000": "1" });
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
        msg: `bad env ${TLS_ENV.key}=${keyB64} line ${keyLine}`,
      },
    });
    const err = await failure(
      a.provision({ ...spec(), tls: { certPem: cert.certPem, keyPem: cert.keyPem } }, offer!),
    );
    expect(err.message).not.toContain(keyB64.slice(100, 140)); // past the constant "-----BEGIN …" prefix
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
