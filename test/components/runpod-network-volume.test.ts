import * as pulumi from "@pulumi/pulumi";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as api from "../../components/runpod-api";
import {
  createRunPodEndpointProvider,
  RUNPOD_VOLUME_CACHE_ENV,
  type RunPodEndpointInputs,
  type RunPodEndpointOutputs,
} from "../../components/runpod-endpoint";
import {
  createRunPodNetworkVolumeProvider,
  RUNPOD_NETWORK_VOLUME_TYPE,
  type RunPodNetworkVolumeInputs,
  type RunPodNetworkVolumeOutputs,
} from "../../components/runpod-network-volume";
import { runpodServerlessSchema, weightCacheDataCenters } from "../../core/config";
import { RunpodServerlessFake } from "../fakes/runpod-serverless";
import { RunpodVolumesFake } from "../fakes/runpod-volumes";

// Short retries so faults resolve in milliseconds; the production defaults are seconds.
const TUNING: Partial<api.RetryTuning> = {
  maxAttempts: 4,
  baseDelayMs: 1,
  maxDelayMs: 5,
  maxTotalMs: 5_000,
  requestTimeoutMs: 150,
  templateDeleteAttempts: 4,
  templateDeleteDelayMs: 1,
};
const KEY = "rpa_VOLUMEKEY0123456789abcdefgh";
const provider = createRunPodNetworkVolumeProvider(TUNING);
const check = provider.check!;
const diff = provider.diff!;
const read = provider.read!;
const update = provider.update!;
const destroy = provider.delete!;

let volumes: RunpodVolumesFake;
let serverless: RunpodServerlessFake;
beforeAll(async () => {
  volumes = new RunpodVolumesFake({ apiKey: KEY });
  await volumes.start();
  // endpoints that mount volumes: the serverless fake refuses a volume the volumes fake does not have
  serverless = new RunpodServerlessFake({ apiKey: KEY, volumeExists: volumes.exists });
  await serverless.start();
});
afterAll(async () => {
  await volumes.close();
  await serverless.close();
});
beforeEach(() => {
  volumes.reset();
  serverless.reset();
});
afterEach(() => {
  // never GraphQL, and every answer as published
  for (const r of [...volumes.requests, ...serverless.requests]) expect(r.path).not.toMatch(/graphql/i);
  expect([...volumes.contractViolations, ...serverless.contractViolations]).toEqual([]);
});

const raw = (over: Partial<RunPodNetworkVolumeInputs> = {}): RunPodNetworkVolumeInputs => ({
  name: "aiorch-prod-weights",
  sizeGb: 100,
  dataCenterId: "EU-SE-1",
  apiKey: KEY,
  apiBase: volumes.apiBase,
  ...over,
});

/** Inputs as `check` returns them, asserting they pass. */
async function checked(
  over: Partial<RunPodNetworkVolumeInputs> = {},
  olds?: RunPodNetworkVolumeInputs,
): Promise<RunPodNetworkVolumeInputs> {
  const result = await check(olds ?? ({} as RunPodNetworkVolumeInputs), raw(over));
  expect(result.failures).toEqual([]);
  return result.inputs!;
}

async function created(over: Partial<RunPodNetworkVolumeInputs> = {}): Promise<RunPodNetworkVolumeOutputs> {
  const result = await provider.create(await checked(over));
  expect(result.id).toBe(result.outs!.volumeId);
  return result.outs!;
}

/** The error a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

const posts = () => volumes.requestsTo(/^\/v2\/network-volumes$/, "POST");
/** A client straight to the fake, for calls below the provider. */
const clientOf = (over: Partial<api.RunPodClientOptions> = {}) =>
  api.runpodClient({ apiKey: KEY, apiBase: volumes.apiBase, tuning: TUNING, ...over });
const problemHeaders = { "content-type": "application/problem+json" };

describe("RunPod network volume provider: check", () => {
  it.each([
    [{ sizeGb: 0 }, "sizeGb", /whole number of GB from 10 to 4096.*got 0/],
    [{ sizeGb: 9 }, "sizeGb", /whole number of GB from 10 to 4096 \(RunPod's limits\); got 9$/],
    [{ sizeGb: 4097 }, "sizeGb", /from 10 to 4096.*got 4097: use 4096 or less/],
    [{ sizeGb: 10.5 }, "sizeGb", /whole number of GB/],
    [{ dataCenterId: "eu-se-1" }, "dataCenterId", /RunPod data centre id such as "EU-RO-1"/],
    [{ name: " " }, "name", /non-empty/],
    [
      { apiBase: "api.runpod.io" },
      "apiBase",
      /apiBase must be an http\(s\) URL such as "https:\/\/api\.runpod\.io"/,
    ],
    [
      { storageType: "FAST" as never },
      "storageType",
      /"STANDARD", "HIGH_PERFORMANCE" \(or left out.*got "FAST"/,
    ],
    [{ apiKey: "" }, "apiKey", /apiKey is required.*--secret/],
  ])("fails %j on %s", async (over, property, reason) => {
    const result = await check({} as RunPodNetworkVolumeInputs, raw(over));
    const found = result.failures?.find((f) => f.property === property);
    expect(found?.reason).toMatch(reason);
  });

  it("refuses a smaller size of the same volume, naming the field and the fix", async () => {
    const result = await check(raw({ sizeGb: 200 }), raw({ sizeGb: 100 }));
    expect(result.failures).toEqual([
      {
        property: "sizeGb",
        reason: expect.stringMatching(
          /^sizeGb cannot go from 200 to 100 GB: RunPod network volumes only grow.*Keep sizeGb at 200 or more/,
        ),
      },
    ]);
    // A new name is a new volume: any size is fine.
    expect((await check(raw({ sizeGb: 200 }), raw({ sizeGb: 100, name: "fresh" }))).failures).toEqual([]);
  });

  it("skips values not known yet (preview)", async () => {
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    const result = await check(
      {} as RunPodNetworkVolumeInputs,
      raw({ sizeGb: unknown as never, dataCenterId: unknown, apiKey: unknown }),
    );
    expect(result.failures).toEqual([]);
  });
});

describe("RunPod network volume provider: create", () => {
  it("creates the volume with REST v2's body (201) and reports id, data centre, size and tier", async () => {
    const outs = await created();
    expect(posts()).toHaveLength(1);
    // v2 names the data centre `dataCenter` (v1's `dataCenterId` would be a 422); no `type`: the default tier.
    expect(posts()[0]!.body).toEqual({ name: "aiorch-prod-weights", size: 100, dataCenter: "EU-SE-1" });
    expect(outs).toMatchObject({
      sizeGb: 100,
      dataCenterId: "EU-SE-1",
      name: "aiorch-prod-weights",
      storageType: "STANDARD",
    });
    expect(volumes.volume(outs.volumeId)).toEqual({
      id: outs.volumeId,
      name: "aiorch-prod-weights",
      size: 100,
      dataCenter: "EU-SE-1",
      type: "STANDARD",
    });
    // It looked for a namesake first; the key travels as a Bearer header only, never in the URL.
    expect(volumes.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "GET /v2/network-volumes",
      "POST /v2/network-volumes",
    ]);
    for (const r of volumes.requests) {
      expect(r.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(r.headers.accept).toContain("application/problem+json");
      expect(r.query).toEqual({});
    }
  });

  it("asks for a storage tier as v2's `type`, and an API base written with /v2 works too", async () => {
    const outs = await created({ storageType: "HIGH_PERFORMANCE", apiBase: `${volumes.apiBase}/v2/` });
    expect(posts()[0]!.body).toEqual({
      name: "aiorch-prod-weights",
      size: 100,
      dataCenter: "EU-SE-1",
      type: "HIGH_PERFORMANCE",
    });
    expect(outs.storageType).toBe("HIGH_PERFORMANCE");
    expect(volumes.volume(outs.volumeId)?.type).toBe("HIGH_PERFORMANCE");
  });

  it.each([
    ["a 500 after creating it", { type: "process-then-fail" } as const],
    ["a dropped connection after creating it", { type: "reset", process: true } as const],
    ["no answer after creating it", { type: "timeout", process: true } as const],
  ])("adopts a volume whose create got %s, instead of creating a second", async (_what, fault) => {
    volumes.inject(fault, { method: "POST", path: /^\/v2\/network-volumes$/ });
    const outs = await created();
    expect(volumes.volumes.size).toBe(1);
    expect(posts()).toHaveLength(1);
    expect(outs.volumeId).toBe([...volumes.volumes.keys()][0]);
  });

  it("repeats a create that failed without acting (a 503 before anything happened)", async () => {
    volumes.inject(
      {
        type: "status",
        status: 503,
        json: { title: "Service Unavailable", status: 503, detail: "upstream unavailable" },
        headers: problemHeaders,
      },
      { method: "POST" },
    );
    const outs = await created();
    expect(posts().map((r) => r.fault)).toEqual(["status", undefined]);
    expect([...volumes.volumes.keys()]).toEqual([outs.volumeId]);
  });

  it("retries a 429, honouring Retry-After", async () => {
    const sleeps: number[] = [];
    const client = clientOf({
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    volumes.rateLimitNext(1, 2, { method: "POST" });
    const volume = await api.createNetworkVolume(client, { name: "v", size: 10, dataCenter: "EU-RO-1" });
    expect(sleeps).toEqual([2000]);
    expect(posts().map((r) => r.fault)).toEqual(["status", undefined]);
    expect(volumes.volume(volume.id)?.size).toBe(10);
  });

  it("without Retry-After, waits for the exhausted RateLimit window; beyond the budget, names RunPod's reason", async () => {
    const sleeps: number[] = [];
    const client = clientOf({
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    volumes.rateLimitNext(1, 3, { method: "GET" }, { withRetryAfter: false });
    expect(await api.listNetworkVolumes(client)).toEqual([]);
    expect(sleeps).toEqual([3000]);

    volumes.rateLimitNext(1, 3600, { method: "GET" });
    const error = await failure(api.listNetworkVolumes(client));
    expect(error.message).toMatch(
      /^RunPod listNetworkVolumes failed: rate limited \(HTTP 429: rate limit exceeded for the minute window\).*retry after 3600 s/,
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("rate_limit");
  });

  it("answers carry v2's RateLimit headers (the fake's side of the contract)", async () => {
    const response = await fetch(`${volumes.apiBase}/v2/network-volumes`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ networkVolumes: [] });
    expect(response.headers.get("ratelimit")).toMatch(
      /^"minute";r=59;t=\d+, "hour";r=2999;t=\d+, "day";r=49999;t=\d+$/,
    );
    expect(response.headers.get("ratelimit-policy")).toBe(
      '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400',
    );
  });

  it("a retried create after a crash adopts the volume left behind", async () => {
    const left = volumes.seedVolume("aiorch-prod-weights", 100, "EU-SE-1");
    const outs = await created();
    expect(outs.volumeId).toBe(left.id);
    expect(posts()).toHaveLength(0);
  });

  it("adopts a smaller namesake by growing it, and refuses a larger one (volumes cannot shrink)", async () => {
    const small = volumes.seedVolume("aiorch-prod-weights", 40, "EU-SE-1");
    const outs = await created();
    expect(outs).toMatchObject({ volumeId: small.id, sizeGb: 100 });
    expect(volumes.requestsTo(small.id, "PATCH")[0]!.body).toEqual({ size: 100 });

    volumes.reset();
    const big = volumes.seedVolume("aiorch-prod-weights", 500, "EU-SE-1");
    const error = await failure(provider.create(await checked()));
    expect(error.message).toMatch(
      new RegExp(`already exists in EU-SE-1 \\(${big.id}\\) with 500 GB.*set sizeGb to 500 or more`),
    );
    expect(volumes.volumes.size).toBe(1);
  });

  it("does not adopt a namesake in another data centre; two namesakes in ours is a conflict", async () => {
    const elsewhere = volumes.seedVolume("aiorch-prod-weights", 100, "US-TX-3");
    const outs = await created();
    expect(outs.volumeId).not.toBe(elsewhere.id);
    expect(volumes.volumes.size).toBe(2);

    volumes.seedVolume("aiorch-prod-weights", 100, "EU-SE-1");
    const error = await failure(provider.create(await checked()));
    expect(error.message).toMatch(/2 network volumes are named "aiorch-prod-weights" in EU-SE-1/);
  });

  it("passes on RunPod's problem detail for a refused create, without retrying", async () => {
    const error = await failure(provider.create(raw({ dataCenterId: "EU-XX-9" })));
    expect(error.message).toMatch(
      /^RunPod createNetworkVolume failed: RunPod answered HTTP 400: data center EU-XX-9 does not support network volumes; supported: EU-RO-1, /,
    );
    // the shared taxonomy: any other 4xx is fatal (the same request would fail every time)
    expect(api.isRunPodApiError(error) && error.kind).toBe("fatal");
    expect(posts()).toHaveLength(1);
  });

  it("a 422 names the validation errors, and is not retried", async () => {
    // Below the provider's own check, which would have refused 5 GB before asking RunPod.
    const error = await failure(
      api.createNetworkVolume(clientOf(), { name: "small", size: 5, dataCenter: "EU-RO-1" }),
    );
    expect(error.message).toBe(
      "RunPod createNetworkVolume failed: RunPod answered HTTP 422: Request validation failed. " +
        "($.size: must be an integer from 10 to 4096)",
    );
    // the shared taxonomy: a 422 says the body breaks the published contract
    expect(api.isRunPodApiError(error) && error.kind).toBe("invalid");
    expect(posts()).toHaveLength(1);
  });

  it("the fake holds the v2 contract: v1's field name is a 422, v1's paths are gone", async () => {
    const client = clientOf();
    await expect(
      api.rest(client, "createNetworkVolume", "POST", "/network-volumes", {
        body: { name: "v", size: 10, dataCenterId: "EU-RO-1" },
      }),
    ).rejects.toThrow(
      /HTTP 422: Request validation failed\. \(\$: additional properties 'dataCenterId' not allowed; \$: missing property 'dataCenter'\)/,
    );
    expect((await api.rest(client, "listNetworkVolumes", "GET", "/networkvolumes")).status).toBe(404);
    const v1 = await fetch(`${volumes.apiBase}/v1/networkvolumes`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(v1.status).toBe(404);
    expect(v1.headers.get("content-type")).toBe("application/problem+json");
    expect(await v1.json()).toEqual({
      title: "Not Found",
      status: 404,
      detail: "no route GET /v1/networkvolumes",
    });
  });

  it("a rejected key (401) is an auth error without the key in it, and is not retried", async () => {
    const wrong = "rpa_WRONGWRONGWRONGWRONGWRONG";
    const error = await failure(provider.create(await checked({ apiKey: wrong })));
    expect(error.message).toMatch(
      /^RunPod listNetworkVolumes failed: RunPod refused the API key \(HTTP 401\)/,
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("auth");
    expect(error.message).not.toContain(wrong);
    expect(String(error.stack)).not.toContain(wrong);
    expect(volumes.requests).toHaveLength(1);
    expect(volumes.volumes.size).toBe(0);
  });

  it("never puts the API key in an error message, even when RunPod echoes it", async () => {
    volumes.inject({
      type: "status",
      status: 400,
      json: { title: "Bad Request", status: 400, detail: `bad key ${KEY}` },
      headers: problemHeaders,
    });
    const error = await failure(provider.create(await checked()));
    expect(error.message).toBe(
      "RunPod listNetworkVolumes failed: RunPod answered HTTP 400: bad key [redacted]",
    );
  });
});

describe("RunPod network volume provider: diff and update", () => {
  it("a larger size is an in-place update that grows the volume", async () => {
    const olds = await created();
    const news = await checked({ sizeGb: 250 }, olds);
    expect(await diff(olds.volumeId, olds, news)).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const { outs } = await update(olds.volumeId, olds, news);
    expect(volumes.requestsTo(olds.volumeId, "PATCH").map((r) => r.body)).toEqual([{ size: 250 }]);
    expect(volumes.volume(olds.volumeId)?.size).toBe(250);
    expect(outs).toMatchObject({ volumeId: olds.volumeId, sizeGb: 250 });
    expect(volumes.volumes.size).toBe(1);
  });

  it("a smaller size is refused with the field, both sizes and the fix — never a replace", async () => {
    const olds = await created({ sizeGb: 200 });
    const error = await failure(diff(olds.volumeId, olds, raw({ sizeGb: 150 })));
    expect(error.message).toMatch(
      new RegExp(
        `^RunPodNetworkVolume aiorch-prod-weights \\(${olds.volumeId}\\): sizeGb cannot go from 200 to 150 GB: ` +
          "RunPod network volumes only grow, and replacing the volume would delete the cached model weights",
      ),
    );
    await expect(update(olds.volumeId, olds, raw({ sizeGb: 150 }))).rejects.toThrow(/cannot go from 200/);
    expect(volumes.requestsTo(olds.volumeId, "PATCH")).toHaveLength(0);
    expect(volumes.volume(olds.volumeId)?.size).toBe(200);
  });

  it("the fake holds the contract: RunPod refuses to shrink a volume (400), takes an equal size and a rename", async () => {
    const client = clientOf();
    const olds = await created({ sizeGb: 200 });
    const error = await failure(api.updateNetworkVolume(client, olds.volumeId, { size: 100 }));
    expect(error.message).toMatch(
      /RunPod updateNetworkVolume failed: RunPod answered HTTP 400: size cannot be reduced: the network volume has 200 GB/,
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("fatal");
    expect(await api.updateNetworkVolume(client, olds.volumeId, { size: 200, name: "renamed" })).toEqual({
      id: olds.volumeId,
      name: "renamed",
      size: 200,
      dataCenter: "EU-SE-1",
      type: "STANDARD",
    });
    // An empty patch is refused by v2, so the client only reads.
    expect((await api.updateNetworkVolume(client, olds.volumeId, {})).name).toBe("renamed");
    expect(volumes.requestsTo(olds.volumeId, "PATCH")).toHaveLength(2);
  });

  it.each([
    [{ name: "aiorch-prod-weights-2" }, ["name"]],
    [{ dataCenterId: "EU-RO-1" }, ["dataCenterId"]],
    [{ storageType: "HIGH_PERFORMANCE" as const }, ["storageType"]],
  ])("%j replaces, creating the new volume first", async (over, replaces) => {
    const olds = await created();
    expect(await diff(olds.volumeId, olds, await checked(over, olds))).toEqual({
      changes: true,
      replaces,
      deleteBeforeReplace: false,
    });
  });

  it("a new API key or API base alone is no change, nor is naming the tier the volume already has", async () => {
    const olds = await created();
    const news = await checked({ apiKey: "rpa_ROTATEDROTATEDROTATED", apiBase: "https://api.example" }, olds);
    expect(await diff(olds.volumeId, olds, news)).toMatchObject({ changes: false, replaces: [] });
    // The default tier was STANDARD: saying so now changes nothing, and leaving it out keeps it.
    const named = await checked({ storageType: "STANDARD" }, olds);
    expect(await diff(olds.volumeId, olds, named)).toMatchObject({ changes: false, replaces: [] });
  });

  it("adopting a namesake of another storage tier is refused (the tier cannot change)", async () => {
    const other = volumes.seedVolume("aiorch-prod-weights", 100, "EU-SE-1", "STANDARD");
    const error = await failure(provider.create(await checked({ storageType: "HIGH_PERFORMANCE" })));
    expect(error.message).toMatch(
      new RegExp(
        `already exists in EU-SE-1 \\(${other.id}\\) with storage type STANDARD, not HIGH_PERFORMANCE.*set type to STANDARD`,
      ),
    );
    expect(posts()).toHaveLength(0);
  });
});

describe("RunPod network volume provider: read and delete", () => {
  it("refreshes the size RunPod reports (grown in the console), so a later smaller size is refused", async () => {
    const olds = await created();
    volumes.volume(olds.volumeId)!.size = 300;
    const result = await read(olds.volumeId, olds);
    expect(result).toMatchObject({ id: olds.volumeId, props: { sizeGb: 300, dataCenterId: "EU-SE-1" } });
    await expect(diff(olds.volumeId, result.props!, await checked())).rejects.toThrow(
      /sizeGb cannot go from 300 to 100 GB/,
    );
  });

  it("a deleted volume drops out of the state", async () => {
    const olds = await created();
    volumes.volumes.clear();
    expect(await read(olds.volumeId, olds)).toEqual({ id: "", props: {} });
  });

  it("deletes the volume (204), then treats 404 as gone", async () => {
    const olds = await created();
    await destroy(olds.volumeId, olds);
    expect(volumes.volumes.size).toBe(0);
    await destroy(olds.volumeId, olds);
    // The second delete met a 404 and counted as done.
    expect(volumes.requestsTo(olds.volumeId, "DELETE")).toHaveLength(2);
    expect(await api.getNetworkVolume(clientOf(), olds.volumeId)).toBeUndefined();
  });

  it("retries a delete that answered 500 after deleting, and is done at the 404", async () => {
    const olds = await created();
    volumes.inject({ type: "process-then-fail" }, { method: "DELETE" });
    await destroy(olds.volumeId, olds);
    expect(volumes.requestsTo(olds.volumeId, "DELETE").map((r) => r.fault)).toEqual([
      "process-then-fail",
      undefined,
    ]);
    expect(volumes.volumes.size).toBe(0);
  });

  it("gives up on a delete that keeps failing, naming the operation", async () => {
    const olds = await created();
    volumes.inject(
      { type: "status", status: 502, json: { title: "Bad Gateway", status: 502, detail: "bad gateway" } },
      { method: "DELETE", times: 10 },
    );
    const error = await failure(destroy(olds.volumeId, olds));
    expect(error.message).toMatch(/^RunPod deleteNetworkVolume failed: HTTP 502 .*gave up after 4 attempts/);
    expect(volumes.volumes.size).toBe(1);
  });

  it("a 404 from a wrong API base (or a retired API) is an error, never a deleted volume", async () => {
    const olds = await created();
    const lost = { ...olds, apiBase: `${volumes.apiBase}/retired` };
    await expect(read(olds.volumeId, lost)).rejects.toThrow(
      /^RunPod listNetworkVolumes failed: GET http:\/\/127\.0\.0\.1:\d+\/retired\/v2\/network-volumes answered 404; check apiBase/,
    );
    await expect(destroy(olds.volumeId, lost)).rejects.toThrow(/answered 404; check apiBase/);
    expect(volumes.volume(olds.volumeId)).toBeDefined();
  });

  it("a 404 for a volume that is still listed is an error, not gone", async () => {
    const olds = await created();
    volumes.inject(
      {
        type: "status",
        status: 404,
        json: { title: "Not Found", status: 404, detail: "network volume not found" },
        headers: problemHeaders,
      },
      { method: "GET", path: olds.volumeId },
    );
    await expect(read(olds.volumeId, olds)).rejects.toThrow(
      new RegExp(
        `RunPod getNetworkVolume failed: RunPod answered 404 for network volume ${olds.volumeId}, yet lists it`,
      ),
    );
  });
});

describe("serverless endpoints and network volumes (REST v2 fakes)", () => {
  const client = () => api.runpodClient({ apiKey: KEY, apiBase: serverless.url, tuning: TUNING });
  const body = (over: { networkVolumes?: string[]; dataCenterIds?: string[] }) => ({
    name: "ep-volume",
    type: "QUEUE" as const,
    image: "img:1",
    gpu: { pools: ["ADA_24"] },
    scaling: { type: "QUEUE_DELAY" as const, queueDelay: 4 },
    ...over,
  });

  it("refuses a volume that does not exist; mounts volumes in several data centres", async () => {
    const ro = volumes.seedVolume("weights", 50, "EU-RO-1");
    const se = volumes.seedVolume("weights", 50, "EU-SE-1");
    await expect(api.createEndpoint(client(), body({ networkVolumes: ["nope1234"] }))).rejects.toThrow(
      /RunPod createEndpoint failed: RunPod answered HTTP 400: network volume\(s\) not found: nope1234/,
    );
    const endpoint = await api.createEndpoint(
      client(),
      body({ networkVolumes: [ro.id, se.id], dataCenterIds: ["EU-RO-1", "EU-SE-1"] }),
    );
    expect(endpoint).toMatchObject({ networkVolumes: [ro.id, se.id], dataCenterIds: ["EU-RO-1", "EU-SE-1"] });
  });
});

describe("RunPodNetworkVolume and RunPodServerlessEndpoint with a volume (mocks, then the fakes)", () => {
  const registered: pulumi.runtime.MockResourceArgs[] = [];
  let volumeModule: typeof import("../../components/runpod-network-volume");
  let endpointModule: typeof import("../../components/runpod-endpoint");
  const endpointProvider = createRunPodEndpointProvider(TUNING);

  beforeAll(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push(args);
          if (args.type === RUNPOD_NETWORK_VOLUME_TYPE) {
            return { id: "nvmock0001", state: { ...args.inputs, volumeId: "nvmock0001" } };
          }
          return { id: `${args.name}-id`, state: { ...args.inputs, endpointId: "ep-mock-1" } };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
    );
    volumeModule = await import("../../components/runpod-network-volume");
    endpointModule = await import("../../components/runpod-endpoint");
  });
  beforeEach(() => {
    registered.length = 0;
  });

  const promiseOf = <T>(output: pulumi.Output<T>) => new Promise<T>((resolve) => output.apply(resolve));
  /** Mocks see a secret input as Pulumi's wire envelope; the provider gets the plain value. */
  const SECRET_SIG = "4dabf18193072939515e22adb298388d";
  const SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270";
  const unwrapSecrets = (inputs: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(inputs).map(([k, v]) => [
        k,
        typeof v === "object" && v !== null && SECRET_SIG in v
          ? (v as unknown as { value: unknown }).value
          : v,
      ]),
    );
  const registeredOf = (type: string) => registered.filter((r) => r.type === type).at(-1)!;

  it("registers the volume with a default name, its key as a secret input, and outputs id, data centre and size", async () => {
    const volume = new volumeModule.RunPodNetworkVolume("weights", {
      apiKey: pulumi.secret(KEY),
      sizeGb: 100,
      dataCenterId: "EU-SE-1",
    });
    expect(await promiseOf(volume.volumeId)).toBe("nvmock0001");
    expect(await promiseOf(volume.dataCenterId)).toBe("EU-SE-1");
    expect(await promiseOf(volume.sizeGb)).toBe(100);
    const inputs = registeredOf(RUNPOD_NETWORK_VOLUME_TYPE).inputs;
    expect(inputs).toMatchObject({ name: "project-stack-weights", sizeGb: 100, dataCenterId: "EU-SE-1" });
    expect(typeof inputs.__provider).toBe("string");
    expect(inputs.__provider).not.toContain(KEY);
    // The key reaches the state only as a secret (delete and refresh need it); it is no declared output.
    const stateKey = (volume as unknown as { apiKey: pulumi.Output<string> }).apiKey;
    expect(await pulumi.isSecret(stateKey)).toBe(true);
    expect(inputs.apiKey).toEqual({ [SECRET_SIG]: SECRET_VALUE_SIG, value: KEY });
  });

  it("throws early, naming the field and the fix", () => {
    expect(
      () =>
        new volumeModule.RunPodNetworkVolume("huge", { apiKey: KEY, sizeGb: 5000, dataCenterId: "EU-SE-1" }),
    ).toThrow(
      /^RunPodNetworkVolume huge: sizeGb must be a whole number of GB from 10 to 4096.*use 4096 or less/,
    );
    expect(
      () => new volumeModule.RunPodNetworkVolume("where", { apiKey: KEY, sizeGb: 10, dataCenterId: "eu" }),
    ).toThrow(/RunPodNetworkVolume where: dataCenterId must be a RunPod data centre id/);
  });

  it("an endpoint with volumes in two data centres: POST carries networkVolumes, those data centres and BASE_PATH", async () => {
    // The volumes, made by the real provider against the REST fake.
    const se = await created({ dataCenterId: "EU-SE-1" });
    const ro = await created({ dataCenterId: "EU-RO-1" });
    // The component, under mocks, with the volumes' ids and data centres (Outputs, as from RunPodNetworkVolume).
    const endpoint = new endpointModule.RunPodServerlessEndpoint("llama", {
      apiKey: pulumi.secret(KEY),
      gpuPoolIds: ["ADA_24"],
      workersMax: 2,
      dataCenterIds: ["EU-NL-1", "EU-RO-1", "EU-SE-1"],
      env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
      networkVolumeIds: [pulumi.output(se.volumeId), pulumi.output(ro.volumeId)],
      networkVolumeDataCenterIds: [pulumi.output(se.dataCenterId), pulumi.output(ro.dataCenterId)],
      apiBase: serverless.url,
    });
    await promiseOf(endpoint.endpointId);
    const { __provider: _provider, ...secretInputs } = registeredOf(
      "pulumi-nodejs:dynamic/runpod:Endpoint",
    ).inputs;
    const inputs = unwrapSecrets(secretInputs);
    // What the policy pack sees: exactly the volumes' data centres (in the order dataCenterIds gave them).
    expect(inputs).toMatchObject({
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      networkVolumeIds: [se.volumeId, ro.volumeId],
      networkVolumeDataCenterIds: ["EU-SE-1", "EU-RO-1"],
    });

    // The same inputs through the real endpoint provider, against the serverless fake wired to the volumes.
    const result = await endpointProvider.check!(
      {} as RunPodEndpointInputs,
      inputs as unknown as RunPodEndpointInputs,
    );
    expect(result.failures).toEqual([]);
    const { outs } = await endpointProvider.create(result.inputs!);
    const saved = serverless.endpoints.get((outs as RunPodEndpointOutputs).endpointId)!;
    expect(saved).toMatchObject({
      networkVolumes: [se.volumeId, ro.volumeId],
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
    });
    expect(saved.env).toEqual({ ...RUNPOD_VOLUME_CACHE_ENV, MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" });
    expect(saved.env.BASE_PATH).toBe("/runpod-volume");
    expect(saved.env.HF_HOME).toMatch(/^\/runpod-volume\//);
    expect(serverless.templates.size).toBe(0);
  });

  it("the single-volume form (networkVolumeId + networkVolumeDataCenterId) still works", async () => {
    const volume = await created({ dataCenterId: "EU-SE-1" });
    const endpoint = new endpointModule.RunPodServerlessEndpoint("single", {
      apiKey: KEY,
      gpuPoolIds: ["ADA_24"],
      workersMax: 1,
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      networkVolumeId: pulumi.output(volume.volumeId),
      networkVolumeDataCenterId: pulumi.output(volume.dataCenterId),
    });
    await promiseOf(endpoint.endpointId);
    const inputs = registeredOf("pulumi-nodejs:dynamic/runpod:Endpoint").inputs;
    expect(inputs).toMatchObject({
      dataCenterIds: ["EU-SE-1"],
      networkVolumeIds: [volume.volumeId],
      networkVolumeDataCenterIds: ["EU-SE-1"],
    });
    expect(inputs).not.toHaveProperty("networkVolumeId");
  });

  it("keeps the endpoint as it was without a volume", async () => {
    const endpoint = new endpointModule.RunPodServerlessEndpoint("plain", {
      apiKey: KEY,
      gpuPoolIds: ["ADA_24"],
      workersMax: 1,
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      env: { MODEL_NAME: "m" },
    });
    await promiseOf(endpoint.endpointId);
    const inputs = registeredOf("pulumi-nodejs:dynamic/runpod:Endpoint").inputs;
    expect(inputs.dataCenterIds).toEqual(["EU-RO-1", "EU-SE-1"]);
    expect(inputs.env).toEqual({ MODEL_NAME: "m" });
    expect(inputs.networkVolumeIds).toBeUndefined();
    expect(inputs.networkVolumeDataCenterIds).toBeUndefined();
  });

  it("narrows an empty (any) data-centre list to the volume's, and lets the caller's env win", async () => {
    const endpoint = new endpointModule.RunPodServerlessEndpoint("any", {
      apiKey: KEY,
      gpuPoolIds: ["ADA_24"],
      workersMax: 1,
      env: { MODEL_NAME: "m", BASE_PATH: "/runpod-volume/custom" },
      networkVolumeId: "nvabc12345",
      networkVolumeDataCenterId: "US-TX-3",
    });
    await promiseOf(endpoint.endpointId);
    const inputs = registeredOf("pulumi-nodejs:dynamic/runpod:Endpoint").inputs;
    expect(inputs.dataCenterIds).toEqual(["US-TX-3"]);
    expect(inputs.env).toMatchObject({
      BASE_PATH: "/runpod-volume/custom",
      HF_HOME: RUNPOD_VOLUME_CACHE_ENV.HF_HOME,
    });
  });

  it("throws early when the volume's data centre is outside dataCenterIds, or not given", () => {
    const base = {
      apiKey: KEY,
      gpuPoolIds: ["ADA_24"],
      workersMax: 1,
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
    };
    expect(
      () =>
        new endpointModule.RunPodServerlessEndpoint("far", {
          ...base,
          networkVolumeId: "nvabc12345",
          networkVolumeDataCenterId: "US-TX-3",
        }),
    ).toThrow(
      /RunPodServerlessEndpoint far: the network volume is in US-TX-3, which dataCenterIds \(EU-RO-1, EU-SE-1\) leaves out;.*add "US-TX-3" to dataCenterIds/,
    );
    expect(
      () => new endpointModule.RunPodServerlessEndpoint("nodc", { ...base, networkVolumeId: "nvabc12345" }),
    ).toThrow(/RunPodServerlessEndpoint nodc: networkVolumeDataCenterId is required with networkVolumeId/);
  });

  it("the provider's check reports a conflict it learns only once outputs resolve", async () => {
    const result = await endpointProvider.check!(
      {} as RunPodEndpointInputs,
      {
        name: "ep-far",
        gpuPoolIds: ["ADA_24"],
        workersMax: 1,
        dataCenterIds: ["EU-RO-1"],
        networkVolumeId: "nvabc12345",
        networkVolumeDataCenterId: "US-TX-3",
        apiKey: KEY,
      } as unknown as RunPodEndpointInputs,
    );
    expect(result.failures).toEqual([
      {
        property: "networkVolumeDataCenterIds",
        reason: expect.stringMatching(/the network volume is in US-TX-3, which dataCenterIds \(EU-RO-1\)/),
      },
    ]);
  });
});

describe("the stack's weight cache setting (providers.runpod-serverless.weightCache)", () => {
  const parse = (settings: unknown) => runpodServerlessSchema.safeParse(settings);
  const issues = (settings: unknown) =>
    (parse(settings).error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);

  it("one volume per data centre: dataCenters, else dataCenter, else the first of the provider's", () => {
    const of = (settings: unknown) => weightCacheDataCenters(runpodServerlessSchema.parse(settings));
    expect(of({ dataCenters: ["EU-RO-1", "EU-SE-1"], weightCache: { sizeGb: 100 } })).toEqual(["EU-RO-1"]);
    expect(of({ weightCache: { sizeGb: 100, dataCenter: "US-TX-3" } })).toEqual(["US-TX-3"]);
    expect(
      of({
        dataCenters: ["EU-NL-1", "EU-RO-1", "EU-SE-1"],
        weightCache: { sizeGb: 100, dataCenters: ["EU-RO-1", "EU-SE-1"] },
      }),
    ).toEqual(["EU-RO-1", "EU-SE-1"]);
    expect(of({})).toEqual([]);
  });

  it("names the field and the fix", () => {
    expect(issues({ weightCache: { sizeGb: 100, dataCenter: "EU-RO-1", dataCenters: ["EU-RO-1"] } })).toEqual(
      [expect.stringMatching(/^weightCache\.dataCenters: give dataCenter \(one volume\) or dataCenters/)],
    );
    expect(
      issues({ dataCenters: ["EU-RO-1"], weightCache: { sizeGb: 100, dataCenters: ["EU-RO-1", "US-TX-3"] } }),
    ).toEqual([
      expect.stringMatching(/^weightCache\.dataCenters: "US-TX-3" is not one of dataCenters \(EU-RO-1\)/),
    ]);
    expect(issues({ weightCache: { sizeGb: 100, dataCenters: ["EU-RO-1", "EU-RO-1"] } })).toEqual([
      expect.stringMatching(
        /^weightCache\.dataCenters: lists "EU-RO-1" twice; RunPod mounts one network volume per data centre/,
      ),
    ]);
    expect(issues({ weightCache: { sizeGb: 100, dataCenters: [] } })).toEqual([
      expect.stringMatching(/^weightCache\.dataCenters: needs at least one data centre/),
    ]);
    expect(issues({ weightCache: { sizeGb: 100 } })).toEqual([
      expect.stringMatching(/^weightCache\.dataCenter: is required when dataCenters is empty/),
    ]);
    expect(issues({ minCudaVersion: "13" })).toEqual([
      expect.stringMatching(/^minCudaVersion: must be a CUDA version/),
    ]);
  });
});
