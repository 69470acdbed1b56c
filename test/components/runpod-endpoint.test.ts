import * as pulumi from "@pulumi/pulumi";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as api from "../../components/runpod-api";
import {
  createRunPodEndpointProvider,
  endpointPatch,
  endpointRequestFor,
  RUNPOD_DEFAULT_WORKER_IMAGE,
  RUNPOD_GPU_POOL_IDS,
  type RunPodEndpointInputs,
  type RunPodEndpointOutputs,
  runpodExecutionTimeoutMs,
} from "../../components/runpod-endpoint";
import { runpodServerlessSchema } from "../../core/config";
import { shellJoin, shellQuote } from "../../core/shell";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";
import type { RecordedRequest } from "../fakes/fake-api-server";
import { RunpodServerlessFake } from "../fakes/runpod-serverless";

// Short retries so faults resolve in milliseconds; the production defaults are seconds. The request timeout stays
// generous (a loaded test machine must not turn a slow answer into a retried one); the hang test uses its own.
const TUNING: Partial<api.RetryTuning> = {
  maxAttempts: 4,
  baseDelayMs: 1,
  maxDelayMs: 5,
  maxTotalMs: 5_000,
  requestTimeoutMs: 5_000,
  templateDeleteAttempts: 4,
  templateDeleteDelayMs: 1,
};
const KEY = "rpa_ENDPOINTKEY0123456789abcdefgh";
const OLD_IMAGE = "runpod/worker-v1-vllm:v2.7.0stable-cuda12.1.0";
const provider = createRunPodEndpointProvider(TUNING);
const check = provider.check!;
const diff = provider.diff!;
const read = provider.read!;
const update = provider.update!;
const destroy = provider.delete!;
const problemHeaders = { "content-type": "application/problem+json" };

const fake = new RunpodServerlessFake({ apiKey: KEY });
/** Every request any test made, to prove none went to GraphQL. */
const allRequests: RecordedRequest[] = [];
beforeAll(async () => {
  await fake.start();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => fake.reset());
afterEach(() => {
  allRequests.push(...fake.requests);
  // every answer the fake gave matched RunPod's published schema
  expect(fake.contractViolations).toEqual([]);
});

const raw = (over: Partial<RunPodEndpointInputs> = {}): Partial<RunPodEndpointInputs> => ({
  name: "aiorch-dev-llama",
  env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", MAX_MODEL_LEN: "8192" },
  gpuPoolIds: ["ADA_24", "AMPERE_24"],
  workersMax: 2,
  dataCenterIds: ["EU-RO-1", "EU-SE-1"],
  apiKey: KEY,
  apiBase: fake.url,
  model: "llama-3.1-8b",
  dataClass: "internal",
  ...over,
});

/** Inputs as `check` returns them, asserting they pass. */
async function checked(
  over: Partial<RunPodEndpointInputs> = {},
  base: Partial<RunPodEndpointInputs> = raw(),
): Promise<RunPodEndpointInputs> {
  const result = await check({} as RunPodEndpointInputs, { ...base, ...over } as RunPodEndpointInputs);
  expect(result.failures).toEqual([]);
  return result.inputs!;
}

async function created(over: Partial<RunPodEndpointInputs> = {}): Promise<RunPodEndpointOutputs> {
  const result = await provider.create(await checked(over));
  expect(result.id).toBe(result.outs!.endpointId);
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

const calls = (from = 0) => fake.requests.slice(from).map((r) => `${r.method} ${r.path}`);
const posts = () => fake.requestsTo(/^\/v2\/serverless$/, "POST");
const patches = () => fake.requestsTo(/^\/v2\/serverless\/[^/]+$/, "PATCH");

/**
 * Python's `shlex.split` in POSIX mode, as worker-vllm applies it to VLLM_EXTRA_ARGS: whitespace separates words;
 * '…' is literal; "…" is literal except that \ escapes " and \; outside quotes \ escapes any character.
 */
function shlexSplit(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error("No closing quotation");
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      while (text[i] !== '"') {
        if (i >= text.length) throw new Error("No closing quotation");
        if (text[i] === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) i++;
        word += text[i];
        i++;
      }
      i++;
    } else if (c === "\\") {
      if (i + 1 < text.length) word += text[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

describe("engine args in VLLM_EXTRA_ARGS (worker-vllm shlex-splits them)", () => {
  it("the splitter reads worker-vllm's own README example as shlex does", () => {
    expect(
      shlexSplit(`--override-generation-config '{"max_new_tokens": 512}' --uvicorn-log-level warning`),
    ).toEqual(["--override-generation-config", '{"max_new_tokens": 512}', "--uvicorn-log-level", "warning"]);
    expect(shlexSplit(`a\\ b "c \\"d\\"" ''`)).toEqual(["a b", 'c "d"', ""]);
  });

  it("quotes only what needs it, as POSIX single quotes", () => {
    expect(shellJoin(["a b", "it's", "plain"])).toBe(`'a b' 'it'"'"'s' plain`);
    expect(shellJoin(["--max-num-seqs", "64", "--dtype=bfloat16"])).toBe(
      "--max-num-seqs 64 --dtype=bfloat16",
    );
    expect(shellQuote("")).toBe("''");
  });

  it.each([
    [["--override-generation-config", '{"max_new_tokens": 512}']],
    [["--chat-template", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"]],
    [["it's", "a  b", "", "$HOME", "back\\slash", 'say "hi"', "tab\there", "*.json", "semi;colon"]],
  ])("%j survives shlex.split", (args) => {
    expect(shlexSplit(shellJoin(args))).toEqual(args);
  });
});

describe("RunPod endpoint provider: check", () => {
  it("applies the defaults: worker-vllm v2.25.2 with its CUDA 13.0 floor, one GPU, RunPod's 600 s timeout", async () => {
    const inputs = await checked();
    expect(inputs).toMatchObject({
      image: "runpod/worker-v1-vllm:v2.25.2",
      minCudaVersion: "13.0",
      gpuCount: 1,
      executionTimeoutMs: 600_000,
      workersMin: 0,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
      flashboot: true,
      containerDiskInGb: 30,
      networkVolumeIds: [],
      networkVolumeDataCenterIds: [],
      model: "llama-3.1-8b",
      dataClass: "internal",
    });
    const bare = await check(
      {} as RunPodEndpointInputs,
      { name: "abc", gpuPoolIds: ["ADA_24"], workersMax: 1, apiKey: "k" } as RunPodEndpointInputs,
    );
    expect(bare.failures).toEqual([]);
    expect(bare.inputs).toMatchObject({ env: {}, dataCenterIds: [] });
    // the stack schema's default image is the component's
    expect(runpodServerlessSchema.parse({}).image).toBe(RUNPOD_DEFAULT_WORKER_IMAGE);
  });

  it("a custom image gets no CUDA floor unless asked; a setting wins; an empty one means none", async () => {
    expect((await checked({ image: "ghcr.io/me/vllm:1" })).minCudaVersion).toBeUndefined();
    expect((await checked({ image: "ghcr.io/me/vllm:1", minCudaVersion: "12.8" })).minCudaVersion).toBe(
      "12.8",
    );
    expect((await checked({ minCudaVersion: "13.1" })).minCudaVersion).toBe("13.1");
    expect(await checked({ minCudaVersion: "" })).not.toHaveProperty("minCudaVersion");
  });

  it("knows RunPod's GPU pools, derived from the catalog plus AMPERE_16", () => {
    expect([...RUNPOD_GPU_POOL_IDS].sort()).toEqual(
      [
        "AMPERE_16",
        "AMPERE_24",
        "ADA_24",
        "AMPERE_48",
        "ADA_48_PRO",
        "AMPERE_80",
        "ADA_80_PRO",
        "HOPPER_141",
      ].sort(),
    );
  });

  it.each([
    [{ name: " " }, "name", /non-empty/],
    [{ workersMin: 3, workersMax: 1 }, "workersMin", /workersMin \(3\) is greater than workersMax \(1\)/],
    [{ workersMax: 0 }, "workersMax", /≥ 1/],
    [{ gpuPoolIds: [] }, "gpuPoolIds", /at least one RunPod GPU pool/],
    [{ gpuPoolIds: ["ADA_24", "H100"] }, "gpuPoolIds", /"H100" is not a RunPod GPU pool/],
    [{ gpuCount: 0 }, "gpuCount", /whole number of GPUs per worker, 1 or more.*got 0/],
    [{ gpuCount: 1.5 }, "gpuCount", /whole number of GPUs/],
    [
      { executionTimeoutMs: 600 },
      "executionTimeoutMs",
      /from 5000 \(5 s\) to 604800000 \(7 days\).*600 s is 600000/,
    ],
    [{ executionTimeoutMs: 8 * 86_400_000 }, "executionTimeoutMs", /RunPod's range; got 691200000$/],
    [
      { minCudaVersion: "13" },
      "minCudaVersion",
      /major\.minor, e\.g\. "13\.0" \(or "" for no floor\); got "13"/,
    ],
    [{ idleTimeout: 0 }, "idleTimeout", /1 to 3600/],
    [{ idleTimeout: 3601 }, "idleTimeout", /1 to 3600/],
    [{ scalerType: "FASTEST" as never }, "scalerType", /QUEUE_DELAY or REQUEST_COUNT/],
    [{ dataCenterIds: ["eu ro 1"] }, "dataCenterIds", /data centre id/],
    [{ env: { "BAD-NAME": "x" } }, "env", /letters, digits and _/],
    [
      { networkVolumeIds: ["nv1"] },
      "networkVolumeDataCenterIds",
      /data centre of each of the 1 networkVolumeIds/,
    ],
    [
      { networkVolumeIds: ["nv1", "nv2"], networkVolumeDataCenterIds: ["EU-RO-1", "EU-RO-1"] },
      "networkVolumeDataCenterIds",
      /two network volumes are in EU-RO-1; RunPod mounts one network volume per data centre/,
    ],
    [
      { networkVolumeIds: ["nv1", "nv2"], networkVolumeDataCenterIds: ["EU-RO-1", "US-TX-3"] },
      "networkVolumeDataCenterIds",
      /volume is in US-TX-3, which dataCenterIds \(EU-RO-1, EU-SE-1\) leaves out.*add "US-TX-3" to dataCenterIds/,
    ],
    [{ networkVolumeIds: ["nv1", "nv1"] }, "networkVolumeIds", /lists "nv1" twice/],
    [{ apiKey: "" }, "apiKey", /apiKey is required/],
    [{ apiKey: undefined }, "apiKey", /apiKey is required/],
  ])("fails %j on %s", async (over, property, reason) => {
    const result = await check({} as RunPodEndpointInputs, raw(over) as RunPodEndpointInputs);
    const found = result.failures?.find((f) => f.property === property);
    expect(found?.reason).toMatch(reason);
  });

  it("narrows the data centres to the volumes', and takes a GraphQL-era single volume as a list", async () => {
    const two = await checked({
      dataCenterIds: ["EU-NL-1", "EU-SE-1", "EU-RO-1"],
      networkVolumeIds: ["nvro", "nvse"],
      networkVolumeDataCenterIds: ["EU-RO-1", "EU-SE-1"],
    });
    expect(two.dataCenterIds).toEqual(["EU-SE-1", "EU-RO-1"]);
    const legacy = await checked({
      dataCenterIds: [],
      networkVolumeId: "nvro",
      networkVolumeDataCenterId: "EU-RO-1",
    } as Partial<RunPodEndpointInputs>);
    expect(legacy).toMatchObject({
      dataCenterIds: ["EU-RO-1"],
      networkVolumeIds: ["nvro"],
      networkVolumeDataCenterIds: ["EU-RO-1"],
    });
    expect(legacy).not.toHaveProperty("networkVolumeId");
  });

  it("skips values not known yet (preview)", async () => {
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    const result = await check(
      {} as RunPodEndpointInputs,
      raw({
        apiKey: unknown,
        workersMax: unknown as never,
        gpuPoolIds: [unknown],
        networkVolumeIds: [unknown],
        networkVolumeDataCenterIds: [unknown],
      }) as RunPodEndpointInputs,
    );
    expect(result.failures).toEqual([]);
  });
});

describe("RunPod endpoint provider: create", () => {
  it("makes one POST /v2/serverless carrying image, env, disk, GPUs and scaling itself — no template", async () => {
    const outs = await created();
    expect(calls()).toEqual(["GET /v2/serverless", "POST /v2/serverless"]);
    expect(posts()[0]!.body).toEqual({
      name: "aiorch-dev-llama",
      type: "QUEUE",
      image: "runpod/worker-v1-vllm:v2.25.2",
      env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", MAX_MODEL_LEN: "8192" },
      disk: 30,
      gpu: { pools: ["ADA_24", "AMPERE_24"], count: 1, minCudaVersion: "13.0" },
      workers: { min: 0, max: 2, idleTimeout: 5 },
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
      flashboot: "FLASHBOOT",
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      networkVolumes: [],
      timeout: 600_000,
    });
    expect(fake.templates.size).toBe(0);
    expect(outs).not.toHaveProperty("templateId");
    expect(fake.endpoints.get(outs.endpointId)).toMatchObject({
      gpu: { count: 1, minCudaVersion: "13.0" },
      timeout: 600_000,
      flashboot: "FLASHBOOT",
    });
    // The key travels as a Bearer header only, never in the URL.
    for (const r of fake.requests) {
      expect(r.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(r.query).toEqual({});
    }
  });

  it("asks for the GPUs per worker and the execution timeout a model needs", async () => {
    const timeout = runpodExecutionTimeoutMs(180, 300);
    expect(timeout).toBe(480_000);
    await created({ gpuCount: 2, executionTimeoutMs: timeout });
    expect(posts()[0]!.body).toMatchObject({ gpu: { count: 2 }, timeout: 480_000 });
    // clamped to RunPod's range (5 s – 7 days)
    expect(runpodExecutionTimeoutMs(1, 1)).toBe(5_000);
    expect(runpodExecutionTimeoutMs(7 * 86_400, 300)).toBe(604_800_000);
  });

  it("REQUEST_COUNT scaling: requestCount, and no idle timeout (RunPod rejects one)", async () => {
    const outs = await created({ scalerType: "REQUEST_COUNT", scalerValue: 2, idleTimeout: 30 });
    expect(posts()[0]!.body).toMatchObject({
      scaling: { type: "REQUEST_COUNT", requestCount: 2 },
      workers: { min: 0, max: 2 },
    });
    expect((posts()[0]!.body as { workers: object }).workers).not.toHaveProperty("idleTimeout");
    expect(fake.endpoints.get(outs.endpointId)?.workers).toEqual({ min: 0, max: 2 });
  });

  it("sends FlashBoot off, any data centre, and network volumes in several data centres", async () => {
    await created({
      flashboot: false,
      dataCenterIds: [],
      networkVolumeIds: ["nvro00001", "nvse00001"],
      networkVolumeDataCenterIds: ["EU-RO-1", "EU-SE-1"],
    });
    expect(posts()[0]!.body).toMatchObject({
      flashboot: "OFF",
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      networkVolumes: ["nvro00001", "nvse00001"],
    });
  });

  it("a 422 surfaces RunPod's validation errors, and is not retried", async () => {
    // A body the published schema refuses (GraphQL's field names): the fake answers as RunPod does.
    const client = api.runpodClient({ apiKey: KEY, apiBase: fake.url, tuning: TUNING });
    const body = { name: "x", type: "QUEUE", image: "i", scaling: { type: "QUEUE_DELAY", queueDelay: 4 } };
    const error = await failure(
      api.createEndpoint(client, { ...body, gpu: { pools: ["ADA_24"] }, gpuIds: "ADA_24" } as never),
    );
    expect(error.message).toBe(
      "RunPod createEndpoint failed: RunPod answered HTTP 422: Request validation failed. " +
        "($: additional properties 'gpuIds' not allowed)",
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("invalid");
    expect(posts()).toHaveLength(1);

    // Through the provider: whatever RunPod lists reaches the message.
    fake.inject(
      {
        type: "status",
        status: 422,
        json: {
          title: "Unprocessable Entity",
          status: 422,
          detail: "Request validation failed.",
          errors: ["$.gpu.minCudaVersion: 14.0 is not offered in the selected pools"],
        },
        headers: problemHeaders,
      },
      { method: "POST" },
    );
    const viaProvider = await failure(provider.create(await checked({ minCudaVersion: "14.0" })));
    expect(viaProvider.message).toMatch(
      /^RunPod createEndpoint failed: RunPod answered HTTP 422: Request validation failed\. \(\$\.gpu\.minCudaVersion: 14\.0 is not offered in the selected pools\)$/,
    );
  });

  it("a rejected key (401) is an auth error without the key in it, and is not retried", async () => {
    const wrong = "rpa_WRONGWRONGWRONGWRONGWRONG";
    const error = await failure(provider.create(await checked({ apiKey: wrong })));
    expect(error.message).toMatch(/^RunPod listEndpoints failed: RunPod refused the API key \(HTTP 401\)/);
    expect(api.isRunPodApiError(error) && error.kind).toBe("auth");
    expect(error.message).not.toContain(wrong);
    expect(fake.requests).toHaveLength(1);
  });

  it("retries a 429, honouring Retry-After, then creates", async () => {
    const sleeps: number[] = [];
    const client = api.runpodClient({
      apiKey: KEY,
      apiBase: fake.url,
      tuning: TUNING,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    fake.rateLimitNext(1, 2, { method: "POST" });
    const inputs = await checked();
    const endpoint = await api.createEndpoint(client, endpointRequestFor(inputs));
    expect(sleeps).toEqual([2000]);
    expect(posts().map((r) => r.fault)).toEqual(["status", undefined]);
    expect(fake.endpoints.has(endpoint.id)).toBe(true);
  });

  it.each([500, 503])("retries a %i on a read, then creates", async (status) => {
    fake.inject(
      { type: "status", status, json: { title: "Server Error", status, detail: "upstream" } },
      { method: "GET" },
    );
    const outs = await created();
    expect(fake.endpoints.has(outs.endpointId)).toBe(true);
    expect(fake.requests[0]!.fault).toBe("status");
  });

  it.each([
    ["a 500 after creating it", { type: "process-then-fail" } as const],
    ["a dropped connection after creating it", { type: "reset", process: true } as const],
  ])("adopts an endpoint whose create got %s, instead of creating a second", async (_what, fault) => {
    fake.inject(fault, { method: "POST", path: /^\/v2\/serverless$/ });
    const outs = await created();
    expect(fake.endpoints.size).toBe(1);
    expect(posts()).toHaveLength(1);
    expect(outs.endpointId).toBe([...fake.endpoints.keys()][0]);
    // it was created as asked, so adopting it changed nothing
    expect(patches()).toHaveLength(0);
  });

  it("a retried create after a crash adopts the endpoint left behind and patches only what differs", async () => {
    const left = await created({ workersMax: 7, image: "runpod/worker-v1-vllm:v2.25.1" });
    fake.requests.length = 0;
    const outs = await created();
    expect(outs.endpointId).toBe(left.endpointId);
    expect(posts()).toHaveLength(0);
    // the image left behind is not the default one, so it had no CUDA floor
    expect(patches().map((r) => r.body)).toEqual([
      { image: "runpod/worker-v1-vllm:v2.25.2", gpu: { minCudaVersion: "13.0" }, workers: { max: 2 } },
    ]);
  });

  it("two endpoints of our name are a conflict, never a third", async () => {
    await created();
    await created({ name: "other-name" });
    [...fake.endpoints.values()].find((e) => e.name === "other-name")!.name = "aiorch-dev-llama";
    const before = posts().length;
    const error = await failure(provider.create(await checked()));
    expect(error.message).toMatch(
      /RunPod findEndpointByName failed: 2 endpoints are named "aiorch-dev-llama"/,
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("conflict");
    expect(posts()).toHaveLength(before);
  });
});

describe("RunPod endpoint provider: diff and update", () => {
  it.each([
    [{ image: "runpod/worker-v1-vllm:v2.26.0" }],
    [{ env: { MODEL_NAME: "other" } }],
    [{ containerDiskInGb: 60 }],
    [{ name: "aiorch-dev-other" }],
    [{ gpuPoolIds: ["AMPERE_48"] }],
    [{ gpuCount: 2 }],
    [{ minCudaVersion: "12.8" }],
    [{ executionTimeoutMs: 900_000 }],
    [{ networkVolumeIds: ["nvro00001"], networkVolumeDataCenterIds: ["EU-RO-1"] }],
    [{ scalerType: "REQUEST_COUNT" as const }],
  ])("%j changes in place, never a replace", async (over) => {
    const olds = await created();
    expect(await diff(olds.endpointId, olds, await checked(over))).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
  });

  it("an update sends one PATCH with just the fields that changed", async () => {
    const olds = await created();
    const before = fake.requests.length;
    // (another image has no CUDA floor unless it names one)
    const news = await checked({
      workersMax: 5,
      idleTimeout: 30,
      image: "runpod/worker-v1-vllm:v2.26.0",
      minCudaVersion: "13.0",
    });
    const { outs } = await update(olds.endpointId, olds, news);
    expect(calls(before)).toEqual([`PATCH /v2/serverless/${olds.endpointId}`]);
    expect(patches()[0]!.body).toEqual({
      image: "runpod/worker-v1-vllm:v2.26.0",
      workers: { max: 5, idleTimeout: 30 },
    });
    expect(fake.endpoints.get(olds.endpointId)).toMatchObject({
      image: "runpod/worker-v1-vllm:v2.26.0",
      workers: { min: 0, max: 5, idleTimeout: 30 },
      // what the PATCH left out stays
      gpu: { pools: ["ADA_24", "AMPERE_24"], count: 1, minCudaVersion: "13.0" },
      releases: 2,
    });
    expect(fake.endpoints.size).toBe(1);
    expect(outs).toMatchObject({ endpointId: olds.endpointId, workersMax: 5 });
  });

  it("sends GPU fields one by one; a new CUDA floor clears an allowed set, a removed one is sent as ''", async () => {
    const olds = await created();
    await update(olds.endpointId, olds, await checked({ gpuCount: 2, minCudaVersion: "13.1" }));
    const floorless = await checked({ gpuCount: 2, minCudaVersion: "" });
    await update(olds.endpointId, { ...olds, gpuCount: 2, minCudaVersion: "13.1" }, floorless);
    expect(patches().map((r) => r.body)).toEqual([
      { gpu: { count: 2, minCudaVersion: "13.1", allowedCudaVersions: [] } },
      { gpu: { minCudaVersion: "" } },
    ]);
    expect(fake.endpoints.get(olds.endpointId)?.gpu).toMatchObject({ count: 2, minCudaVersion: null });
  });

  it("switching to REQUEST_COUNT sends the scaler without an idle timeout; back sends the idle timeout", async () => {
    const olds = await created();
    const news = await checked({ scalerType: "REQUEST_COUNT", scalerValue: 1 });
    const { outs } = await update(olds.endpointId, olds, news);
    const back = await checked();
    await update(olds.endpointId, outs!, back);
    expect(patches().map((r) => r.body)).toEqual([
      { scaling: { type: "REQUEST_COUNT", requestCount: 1 } },
      { workers: { idleTimeout: 5 }, scaling: { type: "QUEUE_DELAY", queueDelay: 4 } },
    ]);
    expect(fake.endpoints.get(olds.endpointId)?.workers).toEqual({ min: 0, max: 2, idleTimeout: 5 });
  });

  it("bounds the controller steers are never sent back by an update", async () => {
    const olds = await created({ workersSteeredAtRuntime: true });
    const patch = endpointPatch(olds, await checked({ workersSteeredAtRuntime: true, workersMax: 9 }));
    expect(patch).toEqual({});
    await update(
      olds.endpointId,
      olds,
      await checked({ workersSteeredAtRuntime: true, workersMax: 9, gpuCount: 2 }),
    );
    expect(patches().map((r) => r.body)).toEqual([{ gpu: { count: 2 } }]);
    // …but the create set them
    expect(posts()[0]!.body).toMatchObject({ workers: { min: 0, max: 2 } });
  });

  it("a new API key alone updates the state without a RunPod call; the same env in another order is no change", async () => {
    const olds = await created();
    const reordered = await checked({
      env: { MAX_MODEL_LEN: "8192", MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
    });
    expect(await diff(olds.endpointId, olds, reordered)).toMatchObject({ changes: false, replaces: [] });
    // refresh and destroy read the key from the state, and the old key may be revoked: the state must take it
    const rotated = await checked({
      apiKey: "rpa_ROTATEDROTATEDROTATED",
      env: { MAX_MODEL_LEN: "8192", MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
    });
    expect(await diff(olds.endpointId, olds, rotated)).toMatchObject({ changes: true, replaces: [] });
    const before = fake.requests.length;
    const { outs } = await update(olds.endpointId, olds, rotated);
    expect(fake.requests).toHaveLength(before);
    expect(outs?.apiKey).toBe("rpa_ROTATEDROTATEDROTATED");
  });

  it("an update of informational fields only makes no RunPod call", async () => {
    const olds = await created();
    const before = fake.requests.length;
    const news = await checked({ dataClass: "confidential" });
    expect(await diff(olds.endpointId, olds, news)).toMatchObject({ changes: true });
    const { outs } = await update(olds.endpointId, olds, news);
    expect(fake.requests).toHaveLength(before);
    expect(outs?.dataClass).toBe("confidential");
  });

  it("a 422 on the PATCH names RunPod's errors; an endpoint deleted outside Pulumi names the fix", async () => {
    const olds = await created();
    fake.inject(
      {
        type: "status",
        status: 422,
        json: {
          title: "Unprocessable Entity",
          status: 422,
          detail: "Request validation failed.",
          errors: ["$.timeout: must be <= 604800000"],
        },
        headers: problemHeaders,
      },
      { method: "PATCH" },
    );
    const error = await failure(update(olds.endpointId, olds, await checked({ workersMax: 3 })));
    expect(error.message).toMatch(
      /HTTP 422: Request validation failed\. \(\$\.timeout: must be <= 604800000\)/,
    );
    fake.endpoints.clear();
    const gone = await failure(update(olds.endpointId, olds, await checked({ workersMax: 3 })));
    expect(gone.message).toMatch(/serverless endpoint \S+ does not exist \(HTTP 404\); run `pulumi refresh`/);
  });
});

describe("RunPod endpoint provider: load-balancing endpoints (image models on vLLM-Omni)", () => {
  const lb: Partial<RunPodEndpointInputs> = {
    endpointType: "LOAD_BALANCER",
    image: "vllm/vllm-omni:v0.16.0",
    args: JSON.stringify({ entrypoint: ["vllm"], cmd: ["serve", "o/pics", "--omni", "--port", "8000"] }),
    ports: ["8000/http"],
    env: { PORT: "8000", PORT_HEALTH: "8000", HEALTH_CHECK_PATH: "/health" },
    scalerType: "REQUEST_COUNT",
    scalerValue: 1,
    idleTimeout: 30,
  };

  it("refuses QUEUE_DELAY scaling and a malformed port, naming the field and the fix", async () => {
    const result = await check(
      {} as RunPodEndpointInputs,
      raw({ ...lb, scalerType: "QUEUE_DELAY", ports: ["8000"] }) as RunPodEndpointInputs,
    );
    expect(result.failures?.map((f) => f.property).sort()).toEqual(["ports", "scalerType"]);
    expect(result.failures?.find((f) => f.property === "scalerType")?.reason).toMatch(
      /LOAD_BALANCER endpoint scales on REQUEST_COUNT.*set scalerType to "REQUEST_COUNT"/,
    );
  });

  it("creates type LOAD_BALANCER with args, ports and its idle timeout (RunPod takes one there), and reads them back", async () => {
    const inputs = await checked(lb);
    const { id } = await provider.create!(inputs);
    const body = fake.requestsTo("/v2/serverless", "POST")[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "LOAD_BALANCER",
      args: lb.args,
      ports: ["8000/http"],
      scaling: { type: "REQUEST_COUNT", requestCount: 1 },
      workers: { idleTimeout: 30 },
    });
    const back = await read(id, { ...inputs, endpointId: id });
    expect(back.props).toMatchObject({ endpointType: "LOAD_BALANCER", args: lb.args, ports: ["8000/http"] });
  });

  it("a QUEUE endpoint's create body is as before: no args, no ports, no idle timeout with REQUEST_COUNT", async () => {
    const body = endpointRequestFor(await checked({ scalerType: "REQUEST_COUNT" }));
    expect(body.type).toBe("QUEUE");
    expect("args" in body || "ports" in body).toBe(false);
    expect(body.workers?.idleTimeout).toBeUndefined();
  });

  it("changing the type replaces the endpoint, the old one deleted first (names are how the controller finds it)", async () => {
    const olds = await created();
    expect(await diff(olds.endpointId, olds, await checked(lb))).toEqual({
      changes: true,
      replaces: ["endpointType"],
      deleteBeforeReplace: true,
    });
    // a state from before endpoint types were inputs is a QUEUE endpoint: no change of type
    const { endpointType: _t, args: _a, ports: _p, ...legacy } = olds;
    const legacyState = legacy as unknown as RunPodEndpointOutputs;
    expect((await diff(olds.endpointId, legacyState, await checked())).replaces).toEqual([]);
  });

  it("a new start command or port is one PATCH in place; clearing them sends the empty values", async () => {
    const inputs = await checked(lb);
    const news = await checked({ ...lb, args: "serve o/other --omni", ports: ["8001/http"] });
    expect(endpointPatch(inputs, news)).toEqual({ args: "serve o/other --omni", ports: ["8001/http"] });
    expect(endpointPatch(inputs, await checked({ ...lb, args: "", ports: [] }))).toEqual({
      args: "",
      ports: [],
    });
  });
});

describe("RunPod endpoint provider: read", () => {
  it("refreshes what RunPod changed (e.g. its idle scale-down), so the next diff restores it in place", async () => {
    const olds = await created({ gpuCount: 2 });
    fake.lowerIdleMax(olds.endpointId, 0);
    const result = await read(olds.endpointId, olds);
    expect(result.id).toBe(olds.endpointId);
    expect(result.props).toMatchObject({
      workersMax: 0,
      gpuPoolIds: ["ADA_24", "AMPERE_24"],
      gpuCount: 2,
      minCudaVersion: "13.0",
      executionTimeoutMs: 600_000,
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      networkVolumeIds: [],
      flashboot: true,
      image: "runpod/worker-v1-vllm:v2.25.2",
    });
    const news = await checked({ gpuCount: 2 });
    expect(await diff(olds.endpointId, result.props!, news)).toMatchObject({ changes: true, replaces: [] });
    expect(endpointPatch(result.props!, news)).toEqual({ workers: { max: 2 } });
  });

  it("an endpoint that no longer exists reads as gone (the listing confirms it)", async () => {
    const olds = await created();
    fake.endpoints.clear();
    const before = fake.requests.length;
    expect((await read(olds.endpointId, olds)).id).toBe("");
    expect(calls(before)).toEqual([`GET /v2/serverless/${olds.endpointId}`, "GET /v2/serverless"]);
  });

  it("a 404 for an endpoint that is still listed is an error, not gone", async () => {
    const olds = await created();
    fake.inject(
      {
        type: "status",
        status: 404,
        json: { title: "Not Found", status: 404, detail: "not found" },
        headers: problemHeaders,
      },
      { method: "GET", path: olds.endpointId },
    );
    await expect(read(olds.endpointId, olds)).rejects.toThrow(
      `RunPod getEndpoint failed: RunPod answered 404 for serverless endpoint ${olds.endpointId}, yet lists it`,
    );
  });

  it("a 404 from a wrong API base is an error, never a deleted endpoint", async () => {
    const olds = await created();
    const lost = { ...olds, apiBase: `${fake.url}/retired` };
    await expect(read(olds.endpointId, lost)).rejects.toThrow(
      /GET \S+\/retired\/v2\/serverless answered 404; check apiBase/,
    );
    await expect(destroy(olds.endpointId, lost)).rejects.toThrow(/answered 404; check apiBase/);
    expect(fake.endpoints.has(olds.endpointId)).toBe(true);
  });

  it("retries a request that never gets an answer", async () => {
    const olds = await created();
    const quick = createRunPodEndpointProvider({ ...TUNING, requestTimeoutMs: 200 });
    fake.inject({ type: "timeout" }, { method: "GET" });
    const result = await quick.read!(olds.endpointId, olds);
    expect(result.id).toBe(olds.endpointId);
    expect(fake.requests.filter((r) => r.fault === "timeout")).toHaveLength(1);
  });
});

describe("RunPod endpoint provider: delete", () => {
  it("one DELETE: RunPod terminates the workers and cancels the jobs itself", async () => {
    const olds = await created({ workersMin: 1, workersMax: 3 });
    const before = fake.requests.length;
    await destroy(olds.endpointId, olds);
    expect(calls(before)).toEqual([`DELETE /v2/serverless/${olds.endpointId}`]);
    expect(fake.endpoints.size).toBe(0);
  });

  it("is idempotent: an endpoint already gone (404, not listed) is success", async () => {
    const olds = await created();
    await destroy(olds.endpointId, olds);
    const before = fake.requests.length;
    await destroy(olds.endpointId, olds);
    expect(calls(before)).toEqual([`DELETE /v2/serverless/${olds.endpointId}`, "GET /v2/serverless"]);
  });

  it("retries a delete that answered 500 after deleting, and gives up naming the operation", async () => {
    const olds = await created();
    fake.inject({ type: "process-then-fail" }, { method: "DELETE" });
    await destroy(olds.endpointId, olds);
    expect(fake.endpoints.size).toBe(0);

    const again = await created();
    fake.inject(
      { type: "status", status: 502, json: { title: "Bad Gateway", status: 502, detail: "bad gateway" } },
      { method: "DELETE", times: 10 },
    );
    const error = await failure(destroy(again.endpointId, again));
    expect(error.message).toMatch(/^RunPod deleteEndpoint failed: HTTP 502 .*gave up after 4 attempts/);
    expect(fake.endpoints.size).toBe(1);
  });
});

describe("a stack whose state the GraphQL-era provider wrote", () => {
  /** What the GraphQL-era provider kept: its inputs (no gpuCount, timeout, CUDA floor; one volume) and outputs. */
  function legacyState(endpointId: string, templateId: string, over: Record<string, unknown> = {}) {
    return {
      name: "aiorch-prod-llama",
      image: OLD_IMAGE,
      env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", VLLM_EXTRA_ARGS: "--enable-prefix-caching" },
      gpuPoolIds: ["ADA_24"],
      workersMin: 0,
      workersMax: 2,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
      flashboot: true,
      dataCenterIds: ["EU-RO-1"],
      networkVolumeId: "nvlegacy01",
      networkVolumeDataCenterId: "EU-RO-1",
      containerDiskInGb: 30,
      apiBase: fake.url,
      apiKey: KEY,
      model: "llama",
      dataClass: "confidential",
      endpointId,
      templateId,
      templateName: "aiorch-prod-llama-1a2b3c4d",
      ...over,
    } as unknown as RunPodEndpointOutputs;
  }
  /** What today's index.ts declares for the same model. */
  const program = (): Partial<RunPodEndpointInputs> => ({
    name: "aiorch-prod-llama",
    image: RUNPOD_DEFAULT_WORKER_IMAGE,
    env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", VLLM_EXTRA_ARGS: "--enable-prefix-caching" },
    gpuPoolIds: ["ADA_24"],
    gpuCount: 1,
    executionTimeoutMs: 480_000,
    workersMax: 2,
    idleTimeout: 5,
    dataCenterIds: ["EU-RO-1", "EU-SE-1"],
    networkVolumeIds: ["nvlegacy01"],
    networkVolumeDataCenterIds: ["EU-RO-1"],
    workersSteeredAtRuntime: true,
    apiBase: fake.url,
    apiKey: KEY,
    model: "llama",
    dataClass: "confidential",
  });
  const seed = () => {
    const endpoint = fake.seedLegacyEndpoint({
      name: "aiorch-prod-llama",
      image: OLD_IMAGE,
      env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", VLLM_EXTRA_ARGS: "--enable-prefix-caching" },
      pools: ["ADA_24"],
      max: 2,
    });
    endpoint.dataCenterIds = ["EU-RO-1"];
    endpoint.networkVolumes = ["nvlegacy01"];
    endpoint.flashboot = "FLASHBOOT";
    return endpoint;
  };

  it("updates in place with one PATCH (no replace, no new endpoint), then deletes the endpoint and its template", async () => {
    const endpoint = seed();
    const templateId = endpoint.boundTemplateId!;
    const olds = legacyState(endpoint.id, templateId);
    const checkedNews = await check(olds, program() as RunPodEndpointInputs);
    expect(checkedNews.failures).toEqual([]);
    const news = checkedNews.inputs!;

    expect(await diff(endpoint.id, olds, news)).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const { outs } = await update(endpoint.id, olds, news);
    expect(calls()).toEqual([`PATCH /v2/serverless/${endpoint.id}`]);
    expect(patches()[0]!.body).toEqual({
      image: RUNPOD_DEFAULT_WORKER_IMAGE,
      gpu: { count: 1, minCudaVersion: "13.0", allowedCudaVersions: [] },
      timeout: 480_000,
    });
    expect(fake.endpoints.size).toBe(1);
    expect(fake.endpoints.get(endpoint.id)).toMatchObject({
      image: RUNPOD_DEFAULT_WORKER_IMAGE,
      gpu: { pools: ["ADA_24"], count: 1, minCudaVersion: "13.0" },
      timeout: 480_000,
      networkVolumes: ["nvlegacy01"],
      workers: { min: 0, max: 2 },
      releases: 2,
    });
    // the state now has the v2-era shape, and remembers the template for the delete
    expect(outs).toMatchObject({
      endpointId: endpoint.id,
      templateId,
      networkVolumeIds: ["nvlegacy01"],
      networkVolumeDataCenterIds: ["EU-RO-1"],
      gpuCount: 1,
      executionTimeoutMs: 480_000,
    });
    expect(outs).not.toHaveProperty("networkVolumeId");
    expect(await diff(endpoint.id, outs!, news)).toMatchObject({ changes: false });

    fake.requests.length = 0;
    await destroy(endpoint.id, outs!);
    expect(calls()).toEqual([`DELETE /v2/serverless/${endpoint.id}`, `DELETE /v2/templates/${templateId}`]);
    expect(fake.endpoints.size).toBe(0);
    expect(fake.templates.has(templateId)).toBe(false);
  });

  it("refresh reads a GraphQL-era endpoint through REST v2 and keeps its template", async () => {
    const endpoint = seed();
    const olds = legacyState(endpoint.id, endpoint.boundTemplateId!);
    const result = await read(endpoint.id, olds);
    expect(result.props).toMatchObject({
      templateId: endpoint.boundTemplateId,
      gpuCount: 1,
      executionTimeoutMs: 600_000,
      networkVolumeIds: ["nvlegacy01"],
      image: OLD_IMAGE,
    });
    expect(
      await diff(endpoint.id, result.props!, (await check(olds, program() as never)).inputs!),
    ).toMatchObject({ changes: true, replaces: [] });
  });

  it("deletes a template RunPod left behind, retrying while RunPod still calls it in use", async () => {
    const endpoint = seed();
    const stray = {
      id: "tpstray01",
      name: "aiorch-prod-llama-9f8e7d6c",
      image: OLD_IMAGE,
      env: {},
      disk: 30,
      serverless: true,
    };
    fake.templates.set(stray.id, stray);
    fake.inject(
      {
        type: "status",
        status: 400,
        json: {
          title: "Bad Request",
          status: 400,
          detail: "Template is in use by a pod or serverless endpoint and cannot be deleted",
        },
        headers: problemHeaders,
      },
      { method: "DELETE", path: "/v2/templates/", times: 2 },
    );
    await destroy(endpoint.id, legacyState(endpoint.id, stray.id));
    expect(fake.requestsTo("/v2/templates/", "DELETE").map((r) => r.fault)).toEqual([
      "status",
      "status",
      undefined,
    ]);
    expect(fake.templates.has(stray.id)).toBe(false);

    const kept = { ...stray, id: "tpstray02" };
    fake.templates.set(kept.id, kept);
    const again = seed();
    fake.inject(
      {
        type: "status",
        status: 400,
        json: {
          title: "Bad Request",
          status: 400,
          detail: "Template is in use by a pod or serverless endpoint",
        },
        headers: problemHeaders,
      },
      { method: "DELETE", path: "/v2/templates/", times: 10 },
    );
    const error = await failure(destroy(again.id, legacyState(again.id, kept.id)));
    expect(error.message).toMatch(
      /^RunPod deleteTemplate failed: template tpstray02 still refused after 4 attempts: RunPod answered HTTP 400: Template is in use/,
    );
  });
});

describe("RunPod REST v2 client", () => {
  it("without Retry-After waits for the exhausted RateLimit window; beyond the budget gives up at once", async () => {
    const sleeps: number[] = [];
    const client = api.runpodClient({
      apiKey: KEY,
      apiBase: fake.url,
      tuning: TUNING,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    fake.inject(
      {
        type: "status",
        status: 429,
        json: { title: "Too Many Requests", status: 429, detail: "slow down" },
        headers: { ...problemHeaders, ratelimit: '"minute";r=0;t=3, "hour";r=2800;t=1812' },
      },
      { method: "GET" },
    );
    expect(await api.listEndpoints(client)).toEqual([]);
    expect(sleeps).toEqual([3000]);

    fake.rateLimitNext(1, 3600, { method: "GET" });
    const error = await failure(api.listEndpoints(client));
    expect(error.message).toMatch(
      /^RunPod listEndpoints failed: rate limited \(HTTP 429: rate limit exceeded for the minute window\).*retry after 3600 s/,
    );
    expect(api.isRunPodApiError(error) && error.kind).toBe("rate_limit");
  });

  it("never puts the API key in an error message, even when RunPod echoes it", async () => {
    const outs = await created();
    const errors: Error[] = [];
    fake.inject({
      type: "status",
      status: 400,
      json: { title: "Bad Request", status: 400, detail: `bad request for key ${KEY}` },
      headers: problemHeaders,
    });
    errors.push(await failure(read(outs.endpointId, outs)));
    fake.inject({ type: "status", status: 500, body: `oops ${KEY}` }, { times: 10 });
    errors.push(await failure(update(outs.endpointId, outs, await checked({ workersMax: 9 }))));
    fake.reset();
    errors.push(await failure(provider.create(await checked({ apiKey: `${KEY}x` }))));
    expect(errors).toHaveLength(3);
    for (const error of errors) {
      expect(error.message).toMatch(/^RunPod \w+ failed: /);
      expect(error.message).not.toContain(KEY);
      expect(String(error.stack)).not.toContain(KEY);
    }
  });
});

describe("the stack program (index.ts) asks RunPod for what the model needs", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) removeProject(dir);
  });
  const engineArgs = ["--override-generation-config", '{"max_new_tokens": 512}', "--enable-prefix-caching"];

  it("a gpuCount 2 model: gpu.count 2, TENSOR_PARALLEL_SIZE, quoted engine args, timeout ≥ queue + upstream, a volume per cache data centre", async () => {
    const dir = tempProject({
      "Pulumi.rp.yaml": stackYaml({
        providers:
          "{ runpod-serverless: { dataCenters: [EU-NL-1, EU-SE-1, EU-RO-1], weightCache: { sizeGb: 100, dataCenters: [EU-RO-1, EU-SE-1] } } }",
        models: `[{ name: big, kind: chat, source: o/big, gpu: [A100_80GB], gpuCount: 2, providers: [runpod-serverless], queueTimeoutSeconds: 240, engineArgs: ["--override-generation-config", "{\\"max_new_tokens\\": 512}", --enable-prefix-caching] }]`,
        gateway: "{ host: ai.example.com, upstreamTimeoutSeconds: 600 }",
      }),
    });
    dirs.push(dir);
    const result = aiorch(["plan", "--json", "--stack", "rp"], dir);
    expect(result.code, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as {
      resources: { type: string; name: string; inputs: Record<string, unknown> }[];
    };
    const volumes = plan.resources.filter((r) => r.type === "pulumi-nodejs:dynamic/runpod:NetworkVolume");
    expect(volumes.map((v) => [v.name, v.inputs.dataCenterId, v.inputs.name]).sort()).toEqual([
      ["runpod-weight-cache-eu-ro-1", "EU-RO-1", "ai-orchestrator-rp-weights"],
      ["runpod-weight-cache-eu-se-1", "EU-SE-1", "ai-orchestrator-rp-weights"],
    ]);
    const declared = plan.resources.find((r) => r.type === "pulumi-nodejs:dynamic/runpod:Endpoint")!.inputs;
    const env = declared.env as Record<string, string>;
    expect(declared).toMatchObject({
      image: RUNPOD_DEFAULT_WORKER_IMAGE,
      gpuPoolIds: ["AMPERE_80"],
      gpuCount: 2,
      dataCenterIds: ["EU-SE-1", "EU-RO-1"],
      networkVolumeDataCenterIds: ["EU-RO-1", "EU-SE-1"],
      workersSteeredAtRuntime: true,
    });
    expect(declared.executionTimeoutMs as number).toBeGreaterThanOrEqual((240 + 600) * 1000);
    expect(env.TENSOR_PARALLEL_SIZE).toBe("2");
    expect(shlexSplit(env.VLLM_EXTRA_ARGS!)).toEqual(engineArgs);

    // The same inputs through the real provider, against the fake: what RunPod is asked for.
    const { __provider: _serialized, ...inputs } = declared;
    const real = await check(
      {} as RunPodEndpointInputs,
      {
        ...inputs,
        apiKey: KEY,
        apiBase: fake.url,
        networkVolumeIds: ["nvro00001", "nvse00001"],
      } as unknown as RunPodEndpointInputs,
    );
    expect(real.failures).toEqual([]);
    await provider.create(real.inputs!);
    const body = posts()[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      image: "runpod/worker-v1-vllm:v2.25.2",
      gpu: { pools: ["AMPERE_80"], count: 2, minCudaVersion: "13.0" },
      timeout: 840_000,
      networkVolumes: ["nvro00001", "nvse00001"],
      dataCenterIds: ["EU-SE-1", "EU-RO-1"],
    });
    expect(shlexSplit((body.env as Record<string, string>).VLLM_EXTRA_ARGS!)).toEqual(engineArgs);
  }, 180_000);
});

describe("no GraphQL", () => {
  it("no request of this file went anywhere but REST v2 (never /graphql)", () => {
    expect(allRequests.length).toBeGreaterThan(50);
    expect(allRequests.filter((r) => /graphql/i.test(r.path))).toEqual([]);
    expect(allRequests.every((r) => r.path.startsWith("/v2/") || r.path.startsWith("/retired/v2/"))).toBe(
      true,
    );
  });
});

describe("RunPodServerlessEndpoint component (mocks)", () => {
  const registered: pulumi.runtime.MockResourceArgs[] = [];
  let component: typeof import("../../components/runpod-endpoint");

  beforeAll(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push(args);
          const state =
            args.type === "pulumi-nodejs:dynamic/runpod:Endpoint"
              ? { ...args.inputs, endpointId: "ep-mock-1" }
              : args.inputs;
          return {
            id: args.type === "pulumi-nodejs:dynamic/runpod:Endpoint" ? "ep-mock-1" : `${args.name}-id`,
            state,
          };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
    );
    component = await import("../../components/runpod-endpoint");
  });

  const promiseOf = <T>(output: pulumi.Output<T>) => new Promise<T>((resolve) => output.apply(resolve));

  it("wires the dynamic resource as a child, derives the OpenAI URL and keeps the key secret", async () => {
    const apiKey = "rpa_MOCKMOCKMOCKMOCKMOCK";
    const endpoint = new component.RunPodServerlessEndpoint("llama", {
      apiKey: pulumi.secret(apiKey),
      gpuPoolIds: ["ADA_24"],
      gpuCount: 2,
      executionTimeoutMs: 480_000,
      workersMax: 2,
      dataCenterIds: ["EU-RO-1"],
      env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
      model: "llama",
      dataClass: "confidential",
    });
    expect(await promiseOf(endpoint.openaiBaseUrl)).toBe("https://api.runpod.ai/v2/ep-mock-1/openai/v1");
    expect(await promiseOf(endpoint.endpointId)).toBe("ep-mock-1");
    expect(await promiseOf(endpoint.endpoint.urn)).toMatch(
      /::aiorch:runpod:ServerlessEndpoint\$pulumi-nodejs:dynamic\/runpod:Endpoint::llama$/,
    );
    expect(await pulumi.isSecret(endpoint.endpoint.apiKey)).toBe(true);

    const dynamic = registered.find((r) => r.type === "pulumi-nodejs:dynamic/runpod:Endpoint");
    expect(dynamic?.inputs).toMatchObject({
      name: "project-stack-llama",
      gpuPoolIds: ["ADA_24"],
      gpuCount: 2,
      executionTimeoutMs: 480_000,
      workersMax: 2,
      model: "llama",
      dataClass: "confidential",
    });
    // The provider is serialized into the inputs; the key must not be inside it, nor any GraphQL.
    expect(typeof dynamic?.inputs.__provider).toBe("string");
    expect(dynamic?.inputs.__provider).not.toContain(apiKey);
    expect(dynamic?.inputs.__provider).not.toMatch(/\/graphql|saveEndpoint|saveTemplate/);
  });

  it("throws early, naming both values and the fix", () => {
    expect(
      () =>
        new component.RunPodServerlessEndpoint("bad", {
          apiKey: "k",
          gpuPoolIds: ["ADA_24"],
          workersMin: 3,
          workersMax: 1,
        }),
    ).toThrow(
      /RunPodServerlessEndpoint bad: workersMin \(3\) is greater than workersMax \(1\); lower workersMin or raise workersMax/,
    );
    expect(
      () =>
        new component.RunPodServerlessEndpoint("slow", {
          apiKey: "k",
          gpuPoolIds: ["ADA_24"],
          workersMax: 1,
          executionTimeoutMs: 480,
        }),
    ).toThrow(/RunPodServerlessEndpoint slow: executionTimeoutMs must be whole milliseconds from 5000/);
    expect(
      () =>
        new component.RunPodServerlessEndpoint("vol", {
          apiKey: "k",
          gpuPoolIds: ["ADA_24"],
          workersMax: 1,
          networkVolumeIds: ["nv1"],
        }),
    ).toThrow(/RunPodServerlessEndpoint vol: networkVolumeDataCenterIds is required with networkVolumeIds/);
  });
});
