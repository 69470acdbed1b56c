import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DatacrunchAdapter, hostnameOf } from "../../../controller/providers/datacrunch";
import type { RetryEvent } from "../../../controller/providers/http";
import { ProviderError, TLS_ENV, type WorkerSpec } from "../../../controller/providers/types";
import { datacrunchSchema } from "../../../core/config/schema";
import { HOSTNAME } from "../../../core/contracts/verda";
import { createWorkerCertificate } from "../../../core/x509";
import { VerdaFake, type VerdaTypeSeed } from "../../fakes/datacrunch-api";
import { ManualClock } from "../../fakes/fake-api-server";

const CLIENT_ID = "dc-client-SECRET-id-123";
const CLIENT_SECRET = "dc-secret-SECRET-9f8e7d6c";
const WORKER_TOKEN = "wtok-SECRET-verda-4242";
const HF_TOKEN = "hf_SECRET_verda_1234";
const SECRETS = [CLIENT_ID, CLIENT_SECRET, WORKER_TOKEN, HF_TOKEN];

/**
 * Real-looking instance types (ids as Verda names them; see test/fakes/datacrunch-api.ts): a 40 GB A100 type that
 * is cheaper than the 80 GB one, a 2-GPU type priced for the whole instance.
 */
const TYPES: VerdaTypeSeed[] = [
  {
    instance_type: "1A100.40S.22V",
    price_per_hour: 0.99,
    gpus: 1,
    gpuMemoryGb: 40,
    gpuName: "A100 SXM4 40GB",
  },
  { instance_type: "1A100.22V", price_per_hour: 1.29, gpus: 1, gpuMemoryGb: 80, gpuName: "A100 SXM4 80GB" },
  { instance_type: "2A100.44V", price_per_hour: 2.58, gpus: 2, gpuMemoryGb: 80, gpuName: "A100 SXM4 80GB" },
  { instance_type: "1H100.80S.22V", price_per_hour: 2.19, gpus: 1, gpuMemoryGb: 80 },
  { instance_type: "1L40S.20V", price_per_hour: 0.91, gpus: 1, gpuMemoryGb: 48 },
  { instance_type: "1A6000.10V", price_per_hour: 0.49, gpus: 1, gpuMemoryGb: 48 },
];
const AVAILABILITY = {
  "FIN-03": ["1A100.40S.22V", "1A100.22V", "2A100.44V", "1H100.80S.22V", "1L40S.20V"],
  "FIN-01": ["1A6000.10V", "1A100.40S.22V"],
};

const spec = (workerId = "w-1", ownerLabel = "aiorch-dev"): WorkerSpec => ({
  workerId,
  ownerLabel,
  model: "llama-3.1-70b",
  source: "meta-llama/Llama-3.1-70B-Instruct",
  engine: "vllm",
  image: "vllm/vllm-openai:v0.10.1.1",
  gpuCount: 1,
  engineArgs: [],
  port: 8000,
  workerToken: WORKER_TOKEN,
  env: { HF_TOKEN },
});

let clock: ManualClock;
let fake: VerdaFake;
let sleeps: number[];
let retries: RetryEvent[];

function adapter(settings: Record<string, unknown> = {}, secret = CLIENT_SECRET): DatacrunchAdapter {
  return new DatacrunchAdapter({
    settings: datacrunchSchema.parse({ apiBase: fake.apiBase, ...settings }),
    clientId: CLIENT_ID,
    clientSecret: secret,
    now: clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.advance(ms);
    },
    random: () => 0.5,
    timeoutMs: 300,
    tokenSkewMs: 30_000,
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

const api = (path: string) => fake.requests.filter((r) => r.path === `/v1${path}`);

beforeEach(async () => {
  clock = new ManualClock();
  fake = new VerdaFake({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    types: TYPES,
    availability: AVAILABILITY,
    now: clock.now,
    tokenTtlSeconds: 120,
  });
  await fake.start();
  sleeps = [];
  retries = [];
});

afterEach(async () => {
  await fake.close();
  // Every reply the fake made matched Verda's published shapes (core/contracts/verda.ts).
  expect(fake.contractViolations).toEqual([]);
});

describe("DataCrunch auth", () => {
  it("obtains one token with client credentials and reuses it", async () => {
    const a = adapter();
    (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    await a.listOwned("aiorch-dev");
    expect(fake.grants).toEqual(["client_credentials"]);
    expect(api("/oauth2/token")[0]?.body).toEqual({
      grant_type: "client_credentials",
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
    });
    expect(api("/instances")[0]?.headers.authorization).toMatch(/^Bearer at-/);
  });

  it("refreshes a token before it expires", async () => {
    const a = adapter();
    await a.listOwned("aiorch-dev");
    clock.advance(95_000); // 120 s lifetime, 30 s skew
    await a.listOwned("aiorch-dev");
    expect(fake.grants).toEqual(["client_credentials", "refresh_token"]);
  });

  it("authenticates again when the refresh is refused", async () => {
    const a = adapter();
    await a.listOwned("aiorch-dev");
    fake.refuseRefresh = true;
    clock.advance(200_000);
    await a.listOwned("aiorch-dev");
    expect(fake.grants).toEqual(["client_credentials", "refresh_token", "client_credentials"]);
  });

  it("re-authenticates once on a 401 from the API", async () => {
    const a = adapter();
    await a.listOwned("aiorch-dev");
    fake.revokeTokens();
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
    expect(fake.grants).toEqual(["client_credentials", "refresh_token"]);
    expect(retries).toEqual([]);
  });

  it("wrong client credentials: auth error, not retried, no secret in the message", async () => {
    const err = await failure(adapter({}, "wrong-SECRET-value-0000").listOwned("aiorch-dev"));
    expect(err).toMatchObject({ kind: "auth", status: 401, operation: "auth" });
    expect(err.message).not.toContain("wrong-SECRET-value-0000");
    expect(fake.grants).toEqual(["client_credentials"]);
  });
});

describe("DataCrunch offers", () => {
  it("offers instance types available at the configured location, cheapest first", async () => {
    const a = adapter();
    const offers = (await a.offers({ gpu: ["A100_80GB", "L40S", "RTX_A6000"], gpuCount: 1 })).offers;
    expect(offers).toEqual([
      {
        provider: "datacrunch",
        gpu: "L40S",
        gpuMemoryGb: 48,
        usdPerHour: 0.91,
        offerId: "1L40S.20V",
        region: "FIN-03",
      },
      {
        provider: "datacrunch",
        gpu: "A100_80GB",
        gpuMemoryGb: 80,
        usdPerHour: 1.29,
        offerId: "1A100.22V",
        region: "FIN-03",
      },
    ]);
    // On demand: no spot flag at all (py sends `isSpot`, go `is_spot`; both omit it for on-demand).
    expect(api("/instance-availability")[0]?.query).toEqual({ location_code: "FIN-03" });
    expect(api("/instance-types")[0]?.query).toEqual({ currency: "usd" });
  });

  it("an A100_80GB model is never placed on a 40 GB A100 type, though it is cheaper", async () => {
    const a = adapter();
    const search = await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 });
    expect(search.offers.map((o) => [o.offerId, o.gpuMemoryGb])).toEqual([["1A100.22V", 80]]);
    expect(search.skipped).toContainEqual({
      provider: "datacrunch",
      offerId: "1A100.40S.22V",
      gpuName: "1x A100 SXM4 40GB",
      gpuMemoryGb: 40,
      usdPerHour: 0.99,
      reason: "40 GB per GPU, A100_80GB needs 80 GB",
    });
    await a.provision(spec(), search.offers[0]!);
    const create = api("/instances").find((r) => r.method === "POST");
    expect(create?.body).toMatchObject({ instance_type: "1A100.22V" });
    // Where only the 40 GB type is available, there is no A100_80GB offer at all.
    const fin1 = await adapter({ location: "FIN-01" }).offers({ gpu: ["A100_80GB"], gpuCount: 1 });
    expect(fin1.offers).toEqual([]);
  });

  it("a multi-GPU type is offered at its whole-instance price, and booked at it", async () => {
    const a = adapter();
    const [offer, ...rest] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 2 })).offers;
    expect(rest).toEqual([]);
    expect(offer).toMatchObject({ offerId: "2A100.44V", gpuMemoryGb: 80, usdPerHour: 2.58 });
    // The instance's own price_per_hour is per GPU (1.29); the worker is booked at the instance total.
    const info = await a.provision({ ...spec(), gpuCount: 2 }, offer!);
    expect(fake.instanceJson(info.providerId)?.price_per_hour).toBe(1.29);
    expect(info.usdPerHour).toBe(2.58);
    clock.advance(40_000);
    expect((await a.describe(info.providerId))?.usdPerHour).toBe(2.58);
    expect((await a.listOwned("aiorch-dev")).map((i) => i.usdPerHour)).toEqual([2.58]);
    // What Verda bills for an hour is what the controller books for it.
    const before = fake.costOf(info.providerId).usd;
    clock.advance(3_600_000);
    expect(fake.costOf(info.providerId).usd - before).toBeCloseTo(info.usdPerHour!, 9);
  });

  it("says why each instance type of a requested GPU model was left out, and ignores other models", async () => {
    const search = await adapter().offers({ gpu: ["A100_80GB", "RTX_A6000"], gpuCount: 1 });
    expect(search.offers.map((o) => o.offerId)).toEqual(["1A100.22V"]);
    expect(search.skipped.map((s) => [s.offerId, s.reason])).toEqual([
      ["1A100.40S.22V", "40 GB per GPU, A100_80GB needs 80 GB"],
      ["2A100.44V", "2 GPUs, the model asks for 1"],
      ["1A6000.10V", "not available at FIN-03"],
    ]);
    // 1H100.80S.22V and 1L40S.20V are neither offered nor listed: not a GPU the model asked for.
    const fin1 = await adapter({ location: "FIN-01" }).offers({ gpu: ["A100_80GB"], gpuCount: 2 });
    expect(fin1.skipped.map((s) => [s.offerId, s.reason])).toEqual([
      ["1A100.40S.22V", "40 GB per GPU, A100_80GB needs 80 GB"],
      ["1A100.22V", "1 GPU, the model asks for 2"],
      ["2A100.44V", "not available at FIN-01"],
    ]);
  });

  it("reads GPU memory as the total over the instance's GPUs (per GPU = total / count)", async () => {
    // 2 × 40 GB reports 80 GB in total: not an 80 GB card.
    fake.types.set("2A100.40S.44V", {
      instance_type: "2A100.40S.44V",
      price_per_hour: 1.98,
      gpus: 2,
      gpuMemoryGb: 40,
    });
    fake.availability["FIN-03"]!.push("2A100.40S.44V");
    const search = await adapter().offers({ gpu: ["A100_80GB"], gpuCount: 2 });
    expect(search.offers.map((o) => o.offerId)).toEqual(["2A100.44V"]);
    expect(search.skipped).toContainEqual(
      expect.objectContaining({ offerId: "2A100.40S.44V", gpuMemoryGb: 40, usdPerHour: 1.98 }),
    );
  });

  it("matches multi-GPU types by GPU model and count, and honours another location", async () => {
    expect(
      (await adapter().offers({ gpu: ["A100_80GB"], gpuCount: 2 })).offers.map((o) => o.offerId),
    ).toEqual(["2A100.44V"]);
    const fin1 = (
      await adapter({ location: "FIN-01" }).offers({
        gpu: ["RTX_A6000", "A100_80GB"],
        gpuCount: 1,
      })
    ).offers;
    expect(fin1.map((o) => [o.offerId, o.region])).toEqual([["1A6000.10V", "FIN-01"]]);
  });
});

describe("DataCrunch lifecycle", () => {
  it("creates a startup script that runs the engine with the token, then the tagged instance (text id)", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const info = await a.provision(spec(), offer!);
    expect(info).toMatchObject({
      workerId: "w-1",
      ownerLabel: "aiorch-dev",
      status: "provisioning",
      usdPerHour: 1.29,
    });
    expect(info.providerId).toMatch(/^[0-9a-f]{8}-/);

    const [scriptReq] = api("/scripts");
    const script = (scriptReq?.body as { script: string } | undefined)?.script ?? "";
    expect(script).toContain("docker run -d");
    expect(script).toContain("--gpus all");
    expect(script).toContain("-p 8000:8000");
    expect(script).toContain(`--api-key ${WORKER_TOKEN}`);
    expect(script).toContain(`HF_TOKEN=${HF_TOKEN}`);
    expect(script).toContain("vllm/vllm-openai:v0.10.1.1 --model meta-llama/Llama-3.1-70B-Instruct");

    const create = api("/instances").find((r) => r.method === "POST");
    expect(create?.body).toEqual({
      instance_type: "1A100.22V",
      image: "ubuntu-24.04-cuda-12.8-open-docker",
      hostname: "aiorch-dev-w-1",
      description: "aiorch-dev.w-1",
      ssh_key_ids: [],
      location_code: "FIN-03",
      os_volume: { name: "aiorch-dev-w-1-os", size: 100 },
      startup_script_id: [...fake.scripts.keys()][0],
      is_spot: false,
      contract: "PAY_AS_YOU_GO",
    });
  });

  it("with TLS: the script overrides the entrypoint with the start-up shell and passes the key in the env", async () => {
    const cert = createWorkerCertificate("w-1");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    await a.provision({ ...spec(), tls: { certPem: cert.certPem, keyPem: cert.keyPem } }, offer!);
    const [scriptReq] = api("/scripts");
    const script = (scriptReq?.body as { script: string } | undefined)?.script ?? "";
    expect(script).toContain("--entrypoint /bin/sh vllm/vllm-openai:v0.10.1.1 -c ");
    expect(script).toContain(`-e ${TLS_ENV.key}=${Buffer.from(cert.keyPem).toString("base64")}`);
    expect(script).toContain("--ssl-certfile /tmp/aiorch-tls/cert.pem --ssl-keyfile /tmp/aiorch-tls/key.pem");
    expect(script).toContain(`--api-key ${WORKER_TOKEN}`);
  });

  it("walks ordered → provisioning → running and reports the engine URL once running", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(3_000);
    expect(await a.describe(providerId)).toMatchObject({
      status: "provisioning",
      detail: "status=provisioning",
    });
    clock.advance(30_000);
    const running = await a.describe(providerId);
    expect(running?.status).toBe("running");
    expect(running?.baseUrl).toMatch(/^http:\/\/192\.0\.2\.\d+:8000$/);
  });

  it("an immediate no_capacity fails the provision as capacity and deletes the instance", async () => {
    fake.walk.orderedMs = 0;
    fake.fates.push("no_capacity");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const err = await failure(a.provision(spec(), offer!));
    expect(err).toMatchObject({ kind: "capacity", code: "no_capacity" });
    expect(fake.requestsTo("/v1/instances", "PUT")[0]?.body).toMatchObject({ action: "delete" });
  });

  it("a later no_capacity or error shows as failed; a stuck one stays provisioning", async () => {
    fake.fates.push("no_capacity", "error", "stuck_provisioning");
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const ids = [];
    for (const w of ["w-a", "w-b", "w-c"]) ids.push((await a.provision(spec(w), offer!)).providerId);
    clock.advance(3_600_000);
    const infos = await Promise.all(ids.map((id) => a.describe(id)));
    expect(infos.map((i) => [i?.status, i?.detail])).toEqual([
      ["failed", "status=no_capacity"],
      ["failed", "status=error"],
      ["provisioning", "status=provisioning"],
    ]);
  });

  it("lists only instances whose description carries our owner label", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    await a.provision(spec("w-1"), offer!);
    await a.provision(spec("w-1", "aiorch-dev-2"), offer!);
    expect((await a.listOwned("aiorch-dev")).map((i) => [i.ownerLabel, i.workerId])).toEqual([
      ["aiorch-dev", "w-1"],
    ]);
    expect(await a.describe("00000000-dead-beef-0000-000000000000")).toBeUndefined();
  });

  it("terminate deletes instance and OS volume; deleting/gone count as success; script removed", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(40_000);
    await a.terminate(providerId);
    const inst = fake.instances.get(providerId);
    expect(inst?.deleteRequest).toEqual({
      id: [providerId],
      action: "delete",
      volume_ids: [inst?.osVolumeId],
      delete_permanently: true,
    });
    expect(fake.scripts.size).toBe(0);
    expect((await a.describe(providerId))?.status).toBe("terminating");
    await a.terminate(providerId); // while deleting
    clock.advance(10_000);
    expect(await a.describe(providerId)).toBeUndefined();
    await a.terminate(providerId); // gone
    expect(fake.requestsTo("/v1/instances", "PUT")).toHaveLength(1);
  });

  it("a repeat delete answers forbidden_action, which the adapter treats as success", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    await a.terminate(providerId);
    // A stale read (instance still "running") makes the adapter send the delete again.
    fake.inject(
      {
        type: "status",
        status: 200,
        json: { id: providerId, status: "running", description: "aiorch-dev.w-1" },
      },
      { method: "GET", path: `/v1/instances/${providerId}` },
    );
    await a.terminate(providerId);
    const puts = fake.requestsTo("/v1/instances", "PUT");
    expect(puts).toHaveLength(2);
    const last = fake.requests.filter((r) => r.method === "PUT").at(-1);
    expect(last?.fault).toBeUndefined();
  });

  it("a forbidden_action on an instance that is still there is not swallowed", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    fake.inject(
      { type: "status", status: 403, json: { code: "forbidden_action", message: "instance is locked" } },
      { method: "PUT" },
    );
    const err = await failure(a.terminate(providerId));
    expect(err).toMatchObject({ kind: "fatal", code: "forbidden_action" });
  });

  it("a delete answered with a bare 202 (sdk-python) works like one answered with results (sdk-go)", async () => {
    fake.actionReply = "empty";
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    await a.terminate(providerId);
    expect((await a.describe(providerId))?.status).toBe("terminating");
  });

  it("a delete whose per-instance result is an error is not taken for success", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    const result = {
      action: "delete",
      instanceId: providerId,
      status: "error",
      error: "instance is locked",
      statusCode: 409,
    };
    fake.inject({ type: "status", status: 207, json: [result] }, { method: "PUT", path: "/v1/instances" });
    const err = await failure(a.terminate(providerId));
    expect(err).toMatchObject({ kind: "fatal", status: 409 });
    expect(err.message).toContain("instance is locked");
    expect(fake.live()).toHaveLength(1);
    // … while a 404 result for an instance that is indeed gone counts as done.
    await a.terminate(providerId);
    clock.advance(10_000);
    fake.inject(
      { type: "status", status: 207, json: [{ ...result, error: "instance not found", statusCode: 404 }] },
      { method: "PUT", path: "/v1/instances" },
    );
    fake.inject(
      {
        type: "status",
        status: 200,
        json: { id: providerId, status: "running", description: "aiorch-dev.w-1" },
      },
      { method: "GET", path: `/v1/instances/${providerId}` },
    );
    await a.terminate(providerId);
  });

  it("bills per second from provisioning until the delete", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(), offer!);
    clock.advance(3_000 + 3_600_000);
    await a.terminate(providerId);
    clock.advance(3_600_000);
    const cost = fake.costOf(providerId);
    expect(cost.billedSeconds).toBe(3600);
    expect(cost.usd).toBeCloseTo(1.29, 9);
  });
});

describe("DataCrunch faults", () => {
  it("adopts an instance whose create errored but did create; one instance, one script", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    fake.inject({ type: "process-then-fail", status: 500 }, { method: "POST", path: "/v1/instances" });
    const info = await a.provision(spec(), offer!);
    expect(info.workerId).toBe("w-1");
    expect(fake.live()).toHaveLength(1);
    expect(fake.scripts.size).toBe(1);
    expect(fake.requestsTo("/v1/instances", "POST")).toHaveLength(1);
  });

  it("retries a create that was refused with 503 (not created), reusing one script", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    fake.inject(
      { type: "status", status: 503, json: { code: "service_unavailable", message: "try again" } },
      { method: "POST", path: "/v1/instances" },
    );
    const info = await a.provision(spec(), offer!);
    expect(info.status).toBe("provisioning");
    expect(fake.live()).toHaveLength(1);
    expect(fake.scripts.size).toBe(1);
    expect(fake.requestsTo("/v1/instances", "POST")).toHaveLength(2);
  });

  it("an instance type gone from the location is capacity; insufficient_funds is fatal; scripts cleaned up", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    fake.availability["FIN-03"] = [];
    expect((await failure(a.provision(spec("w-1"), offer!))).kind).toBe("capacity");
    fake.availability["FIN-03"] = ["1A100.22V"];
    fake.outOfFunds = true;
    const err = await failure(a.provision(spec("w-2"), offer!));
    expect(err).toMatchObject({ kind: "fatal", code: "insufficient_funds", status: 402 });
    expect(fake.requestsTo("/v1/instances", "POST")).toHaveLength(2);
    expect(fake.scripts.size).toBe(0);
  });

  it("honours Retry-After on 429 and retries timeouts", async () => {
    fake.inject({
      type: "status",
      status: 429,
      json: { code: "too_many_requests", message: "slow down" },
      headers: { "retry-after": "4" },
    });
    fake.inject({ type: "timeout" }, { path: "/v1/instances" });
    expect(await adapter().listOwned("aiorch-dev")).toEqual([]);
    expect(retries.map((r) => r.kind)).toEqual(["rate_limit", "transient"]);
    expect(sleeps[0]).toBe(4_000);
  });

  it("garbage bodies never crash", async () => {
    const a = adapter();
    fake.inject({ type: "garbage" }, { path: "/v1/instance-types", times: 10 });
    expect((await failure(a.offers({ gpu: ["A100_80GB"], gpuCount: 1 }))).kind).toBe("transient");
    fake.clearFaults();
    fake.inject({ type: "status", status: 200, json: { instances: [] } }, { times: 10 });
    expect((await failure(a.listOwned("aiorch-dev"))).kind).toBe("transient");
    fake.clearFaults();
    fake.inject({ type: "status", status: 200, json: [1, null, { id: 3, description: 7 }] });
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
    fake.inject({ type: "garbage", body: "\u0000\u0001" }, { path: "/oauth2/token", times: 10 });
    fake.revokeTokens();
    expect((await failure(a.listOwned("aiorch-dev"))).kind).toBe("transient");
  });

  it("a bad hostname is impossible: hostnames are DNS-safe whatever the worker id", () => {
    expect(hostnameOf("aiorch-dev", "W_1:abc.def")).toBe("aiorch-dev-w-1-abc-def");
    expect(hostnameOf("a".repeat(60), "worker-123").length).toBeLessThanOrEqual(63);
    // Verda's frontend wants at least one letter (verda-cli `cmd/util/hostname.go`).
    expect(hostnameOf("123", "456")).toBe("w-123-456");
    for (const h of [hostnameOf("123", "456"), hostnameOf("aiorch-dev", "w-1"), hostnameOf("x", "---")])
      expect(h).toMatch(HOSTNAME);
  });
});

describe("DataCrunch OS volume verification (ephemeral workers)", () => {
  /** What the controller does every tick while terminating: terminate, then describe; done when it is gone. */
  async function tick(a: DatacrunchAdapter, providerId: string) {
    await a.terminate(providerId);
    const after = await a.describe(providerId);
    return { terminated: !after || after.status === "terminated", after };
  }

  async function running(a: DatacrunchAdapter, workerId = "w-1") {
    const [offer] = (await a.offers({ gpu: ["A100_80GB"], gpuCount: 1 })).offers;
    const { providerId } = await a.provision(spec(workerId), offer!);
    clock.advance(40_000);
    const volumeId = fake.instances.get(providerId)!.osVolumeId;
    return { providerId, volumeId };
  }

  const volumeDeletes = () =>
    fake.requests.filter((r) => r.method === "DELETE" && r.path.startsWith("/v1/volumes/"));

  it("a normal terminate leaves no volume, active or in the trash, and it was checked", async () => {
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    expect(fake.volumeState(volumeId)).toBe("active");
    expect((await tick(a, providerId)).terminated).toBe(false); // deleting
    clock.advance(10_000);
    expect(await tick(a, providerId)).toEqual({ terminated: true, after: undefined });
    expect(fake.volumeState(volumeId)).toBe("gone");
    expect(fake.leftoverVolumes()).toEqual([]);
    expect(api("/volumes").length).toBeGreaterThan(0);
    expect(api("/volumes/trash").length).toBeGreaterThan(0);
    expect(volumeDeletes()).toEqual([]); // nothing was left to delete
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
  });

  it("the provider leaves the OS volume behind: not terminated until the adapter deleted it permanently", async () => {
    fake.volumeDeleteFaults.push("keep");
    fake.ignoredVolumeDeletes = 1; // and the first permanent delete is answered but not done
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    await tick(a, providerId);
    clock.advance(10_000);
    expect(fake.live()).toEqual([]); // the instance is gone …
    expect(fake.volumeState(volumeId)).toBe("active"); // … its disk is not
    expect(await a.describe(providerId)).toMatchObject({
      providerId,
      workerId: "w-1",
      ownerLabel: "aiorch-dev",
      status: "terminating",
      detail: `os volume ${volumeId} still present (detached)`,
    });

    const first = await tick(a, providerId); // DELETE answered, not done
    expect(first.terminated).toBe(false);
    expect(first.after?.detail).toContain(`os volume ${volumeId} still present`);
    expect(fake.volumeState(volumeId)).toBe("active");

    expect((await tick(a, providerId)).terminated).toBe(true);
    expect(fake.volumeState(volumeId)).toBe("gone");
    expect(volumeDeletes().map((r) => [r.path, r.body])).toEqual([
      [`/v1/volumes/${volumeId}`, { is_permanent: true }],
      [`/v1/volumes/${volumeId}`, { is_permanent: true }],
    ]);
    await a.terminate(providerId); // nothing left: no further delete
    expect(volumeDeletes()).toHaveLength(2);
  });

  it("a volume the delete put in the trash is purged from the trash", async () => {
    fake.volumeDeleteFaults.push("trash");
    fake.listPurged = true; // the trash keeps listing purged volumes, flagged is_permanently_deleted
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    await tick(a, providerId);
    clock.advance(10_000);
    expect(fake.volumeState(volumeId)).toBe("trash");
    expect(await a.describe(providerId)).toMatchObject({
      status: "terminating",
      detail: `os volume ${volumeId} still present (in trash)`,
    });
    expect(await tick(a, providerId)).toEqual({ terminated: true, after: undefined });
    expect(fake.volumeState(volumeId)).toBe("gone");
    expect(volumeDeletes().map((r) => r.body)).toEqual([{ is_permanent: true }]);
  });

  it("a non-permanent delete would only trash it: the fake honours volume_ids and delete_permanently", async () => {
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    await fetch(`${fake.apiBase}/instances`, {
      method: "PUT",
      headers: {
        "content-type": "application/json",
        authorization: api("/instances")[0]!.headers.authorization as string,
      },
      body: JSON.stringify({ id: [providerId], action: "delete", volume_ids: [volumeId] }),
    });
    clock.advance(10_000);
    expect(fake.volumeState(volumeId)).toBe("trash");
    expect((await tick(a, providerId)).terminated).toBe(true);
    expect(fake.volumeState(volumeId)).toBe("gone");
  });

  it("a controller restart in between: the new adapter finds the volume by its name", async () => {
    fake.volumeDeleteFaults.push("keep");
    const before = adapter();
    const { providerId, volumeId } = await running(before);
    await tick(before, providerId); // delete asked; the instance is deleting

    // The restarted controller: a fresh adapter. It reads the instance (still deleting) without any
    // os_volume_id, so only the hostname can lead it to the volume.
    const after = adapter();
    const deleting = {
      id: providerId,
      status: "deleting",
      hostname: "aiorch-dev-w-1",
      description: "aiorch-dev.w-1",
    };
    fake.inject(
      { type: "status", status: 200, json: deleting },
      { method: "GET", path: `/v1/instances/${providerId}`, times: 2 },
    );
    expect((await tick(after, providerId)).after?.status).toBe("terminating");
    clock.advance(10_000);
    const stuck = await after.describe(providerId);
    expect(stuck).toMatchObject({
      status: "terminating",
      detail: `os volume ${volumeId} still present (detached)`,
    });
    expect(await tick(after, providerId)).toEqual({ terminated: true, after: undefined });
    expect(fake.volumeState(volumeId)).toBe("gone");
  });

  it("restarted after the instance was gone: listOwned reports the leftover by name, terminate purges it", async () => {
    fake.volumeDeleteFaults.push("keep");
    const before = adapter();
    const { providerId, volumeId } = await running(before, "w-1");
    const other = await running(before, "w-2"); // a live worker: its volume is not a leftover
    await tick(before, providerId);
    clock.advance(10_000);

    const after = adapter();
    // The limit: nothing ties the instance id to the volume any more, so describe alone cannot tell …
    expect(await after.describe(providerId)).toBeUndefined();
    // … but the reconciler's listing finds the volume by its name and deletes it as an orphan.
    const owned = await after.listOwned("aiorch-dev");
    expect(owned.map((i) => [i.providerId, i.status])).toEqual([
      [other.providerId, "running"],
      [`volume:${volumeId}`, "terminating"],
    ]);
    expect(await after.listOwned("aiorch-prod")).toEqual([]);
    expect(await after.describe(`volume:${volumeId}`)).toMatchObject({ status: "terminating" });
    await after.terminate(`volume:${volumeId}`);
    expect(fake.volumeState(volumeId)).toBe("gone");
    expect(await after.describe(`volume:${volumeId}`)).toBeUndefined();
    expect((await after.listOwned("aiorch-dev")).map((i) => i.providerId)).toEqual([other.providerId]);
    expect(fake.volumeState(other.volumeId)).toBe("active");
  });

  it("an orphan the reconciler deleted stays listed under its instance id until its volume is gone", async () => {
    fake.volumeDeleteFaults.push("keep");
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    await a.terminate(providerId); // the reconciler's call: terminate only
    clock.advance(10_000);
    expect(await a.listOwned("aiorch-dev")).toEqual([
      expect.objectContaining({ providerId, workerId: "w-1", status: "terminating" }),
    ]);
    await a.terminate(providerId);
    expect(fake.volumeState(volumeId)).toBe("gone");
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
  });

  it("an instance that vanished on its own leaving its volume reads failed, then is cleaned up", async () => {
    fake.volumeDeleteFaults.push("keep");
    const a = adapter();
    const { providerId, volumeId } = await running(a);
    // Deleted behind the adapter's back (the provider, an operator): the adapter never asked.
    await fetch(`${fake.apiBase}/instances`, {
      method: "PUT",
      headers: {
        "content-type": "application/json",
        authorization: api("/instances")[0]!.headers.authorization as string,
      },
      body: JSON.stringify({ id: [providerId], action: "delete" }),
    });
    clock.advance(10_000);
    expect(await a.describe(providerId)).toMatchObject({
      status: "failed",
      detail: `os volume ${volumeId} still present (detached)`,
    });
    expect((await tick(a, providerId)).terminated).toBe(true);
    expect(fake.leftoverVolumes()).toEqual([]);
  });

  it("volumes that cannot be listed never count as gone", async () => {
    fake.volumeDeleteFaults.push("keep");
    const a = adapter();
    const { providerId } = await running(a);
    await tick(a, providerId);
    clock.advance(10_000);
    fake.inject(
      { type: "status", status: 503, json: { code: "service_unavailable", message: "later" } },
      { path: "/v1/volumes", times: 20 },
    );
    expect((await failure(a.describe(providerId))).kind).toBe("transient");
    fake.clearFaults();
    expect((await a.describe(providerId))?.status).toBe("terminating");
  });
});
