import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as api from "../../components/runpod-api";
import {
  createRunPodEndpointProvider,
  RUNPOD_GPU_POOL_IDS,
  type RunPodEndpointInputs,
  type RunPodEndpointOutputs,
  templateInputFor,
} from "../../components/runpod-endpoint";
import { type RunPodFake, startRunPodFake } from "../fakes/runpod-graphql";

// Short retries so faults resolve in milliseconds; the production defaults are seconds.
const TUNING: Partial<api.RetryTuning> = {
  maxAttempts: 4,
  baseDelayMs: 1,
  maxDelayMs: 5,
  maxTotalMs: 5_000,
  requestTimeoutMs: 150,
  deleteAttempts: 4,
  deleteDelayMs: 1,
  templateDeleteAttempts: 4,
  templateDeleteDelayMs: 1,
};
const provider = createRunPodEndpointProvider(TUNING);
const check = provider.check!;
const diff = provider.diff!;
const read = provider.read!;
const update = provider.update!;
const destroy = provider.delete!;

let fake: RunPodFake;
beforeAll(async () => {
  fake = await startRunPodFake();
});
afterAll(async () => {
  await fake.stop();
});
beforeEach(() => fake.reset());

const raw = (over: Partial<RunPodEndpointInputs> = {}): Partial<RunPodEndpointInputs> => ({
  name: "aiorch-dev-llama",
  env: { MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct", MAX_MODEL_LEN: "8192" },
  gpuPoolIds: ["ADA_24", "AMPERE_24"],
  workersMax: 2,
  dataCenterIds: ["EU-RO-1", "EU-SE-1"],
  apiKey: fake.apiKey,
  apiBase: fake.url,
  model: "llama-3.1-8b",
  dataClass: "internal",
  ...over,
});

/** Inputs as `check` returns them, asserting they pass. */
async function checked(over: Partial<RunPodEndpointInputs> = {}): Promise<RunPodEndpointInputs> {
  const result = await check({} as RunPodEndpointInputs, raw(over) as RunPodEndpointInputs);
  expect(result.failures).toEqual([]);
  return result.inputs!;
}

async function created(over: Partial<RunPodEndpointInputs> = {}): Promise<RunPodEndpointOutputs> {
  const result = await provider.create(await checked(over));
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

describe("RunPod endpoint provider: check", () => {
  it("applies the defaults", async () => {
    const inputs = await checked();
    expect(inputs).toMatchObject({
      image: "runpod/worker-v1-vllm:v2.7.0stable-cuda12.1.0",
      workersMin: 0,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
      flashboot: true,
      containerDiskInGb: 30,
      model: "llama-3.1-8b",
      dataClass: "internal",
    });
    const bare = await check(
      {} as RunPodEndpointInputs,
      {
        name: "abc",
        gpuPoolIds: ["ADA_24"],
        workersMax: 1,
        apiKey: "k",
      } as RunPodEndpointInputs,
    );
    expect(bare.failures).toEqual([]);
    expect(bare.inputs).toMatchObject({ env: {}, dataCenterIds: [] });
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
    [{ name: "ab" }, "name", /at least 3 characters/],
    [{ workersMin: 3, workersMax: 1 }, "workersMin", /workersMin \(3\) is greater than workersMax \(1\)/],
    [{ workersMax: 0 }, "workersMax", /≥ 1/],
    [{ gpuPoolIds: [] }, "gpuPoolIds", /at least one RunPod GPU pool/],
    [{ gpuPoolIds: ["ADA_24", "H100"] }, "gpuPoolIds", /"H100" is not a RunPod GPU pool/],
    [{ idleTimeout: 0 }, "idleTimeout", /1 to 3600/],
    [{ idleTimeout: 3601 }, "idleTimeout", /1 to 3600/],
    [{ scalerType: "FASTEST" as never }, "scalerType", /QUEUE_DELAY or REQUEST_COUNT/],
    [{ dataCenterIds: ["eu ro 1"] }, "dataCenterIds", /data centre id/],
    [{ env: { "BAD-NAME": "x" } }, "env", /letters, digits and _/],
    [{ apiKey: "" }, "apiKey", /apiKey is required/],
    [{ apiKey: undefined }, "apiKey", /apiKey is required/],
  ])("fails %j on %s", async (over, property, reason) => {
    const result = await check({} as RunPodEndpointInputs, raw(over) as RunPodEndpointInputs);
    const found = result.failures?.find((f) => f.property === property);
    expect(found?.reason).toMatch(reason);
  });

  it("skips values not known yet (preview)", async () => {
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    const result = await check(
      {} as RunPodEndpointInputs,
      raw({
        apiKey: unknown,
        workersMax: unknown as never,
        gpuPoolIds: [unknown],
      }) as RunPodEndpointInputs,
    );
    expect(result.failures).toEqual([]);
  });
});

describe("RunPod endpoint provider: create", () => {
  it("creates the template, then the endpoint, with RunPod's GraphQL input", async () => {
    const outs = await created();
    expect(fake.requests.map((r) => r.fields[0])).toEqual([
      "myself",
      "saveTemplate",
      "myself",
      "saveEndpoint",
    ]);
    const [templateCall] = fake.calls("saveTemplate");
    expect(templateCall!.variables.input).toEqual({
      name: expect.stringMatching(/^aiorch-dev-llama-[0-9a-f]{8}$/),
      imageName: "runpod/worker-v1-vllm:v2.7.0stable-cuda12.1.0",
      containerDiskInGb: 30,
      volumeInGb: 0,
      dockerArgs: "",
      env: [
        { key: "MAX_MODEL_LEN", value: "8192" },
        { key: "MODEL_NAME", value: "meta-llama/Llama-3.1-8B-Instruct" },
      ],
      isServerless: true,
    });
    const [endpointCall] = fake.calls("saveEndpoint");
    expect(endpointCall!.variables.input).toEqual({
      name: "aiorch-dev-llama",
      templateId: outs.templateId,
      gpuIds: "ADA_24,AMPERE_24",
      workersMin: 0,
      workersMax: 2,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
      locations: "EU-RO-1,EU-SE-1",
      networkVolumeId: "",
      flashBootType: "FLASHBOOT",
    });
    expect(outs.endpointId).toBe([...fake.endpoints.keys()][0]);
    expect(fake.templates.get(outs.templateId)?.name).toBe(outs.templateName);
    // The key travels as a Bearer header only, never in the URL.
    for (const r of fake.requests) {
      expect(r.authorization).toBe(`Bearer ${fake.apiKey}`);
      expect(r.params).toEqual({});
    }
  });

  it("sends FlashBoot off, any data centre and a network volume as asked", async () => {
    await created({ flashboot: false, dataCenterIds: [], networkVolumeId: "vol123" });
    expect(fake.calls("saveEndpoint")[0]!.variables.input).toMatchObject({
      flashBootType: "OFF",
      locations: "",
      networkVolumeId: "vol123",
    });
  });

  it("turns a GraphQL error (HTTP 200 + errors[]) into an error naming the operation and RunPod's message", async () => {
    fake.inject({
      kind: "graphqlError",
      match: "saveEndpoint",
      message: "Max workers exceeds your account limit",
    });
    const error = await failure(provider.create(await checked()));
    expect(error.message).toMatch(/RunPod saveEndpoint failed: .*Max workers exceeds your account limit/);
    expect(fake.calls("saveEndpoint")[0]!.status).toBe(200);
    expect(fake.calls("saveEndpoint")).toHaveLength(1); // not retried
  });

  it("reports a rejected key (401) without retrying", async () => {
    const error = await failure(provider.create(await checked({ apiKey: "rpa_WRONGWRONGWRONGWRONG" })));
    expect(error.message).toMatch(/RunPod listTemplates failed: .*HTTP 401/);
    expect(error.message).not.toContain("rpa_WRONGWRONGWRONGWRONG");
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.status).toBe(401);
  });

  it("retries a 429 without Retry-After and with a non-JSON body, then succeeds", async () => {
    fake.inject({ kind: "status", status: 429, body: "API requests too frequent" }, 2);
    const outs = await created();
    expect(outs.endpointId).toBeTruthy();
    expect(fake.requests.slice(0, 3).map((r) => r.status)).toEqual([429, 429, 200]);
  });

  it.each([500, 503])("retries a %i, then succeeds", async (status) => {
    fake.inject({ kind: "status", status, match: "myself" });
    const outs = await created();
    expect(fake.endpoints.has(outs.endpointId)).toBe(true);
    expect(fake.requests[0]!.status).toBe(status);
  });

  it("adopts a template whose create answered 500 after creating it, instead of creating a second", async () => {
    fake.inject({ kind: "applyThenFail", match: "saveTemplate" });
    const outs = await created();
    expect(fake.templates.size).toBe(1);
    expect(fake.calls("saveTemplate")).toHaveLength(1);
    expect(outs.templateId).toBe([...fake.templates.keys()][0]);
    expect(fake.endpoints.get(outs.endpointId)?.templateId).toBe(outs.templateId);
  });

  it("adopts an endpoint whose create answered 500 after creating it", async () => {
    fake.inject({ kind: "applyThenFail", match: "saveEndpoint" });
    const outs = await created();
    expect(fake.endpoints.size).toBe(1);
    expect(outs.endpointId).toBe([...fake.endpoints.keys()][0]);
  });

  it("a retried create after a crash adopts the template left behind instead of failing on its unique name", async () => {
    // First attempt: the template is made, then the endpoint fails (as if the process died there).
    fake.inject({
      kind: "graphqlError",
      match: "saveEndpoint",
      message: "There are no longer any instances",
    });
    await failure(provider.create(await checked()));
    expect(fake.templates.size).toBe(1);
    // Pulumi retries the create: it must succeed and reuse that template.
    const outs = await created();
    expect(fake.templates.size).toBe(1);
    expect(fake.calls("saveTemplate")).toHaveLength(1);
    expect(fake.endpoints.get(outs.endpointId)?.templateId).toBe([...fake.templates.keys()][0]);
  });

  it("the template name changes with what RunPod bakes into it", async () => {
    const base = await checked();
    const nameOf = async (inputs: RunPodEndpointInputs) => (await templateInputFor(inputs)).name;
    const a = await nameOf(base);
    expect(await nameOf({ ...base, env: { ...base.env } })).toBe(a);
    expect(await nameOf({ ...base, image: "runpod/worker-v1-vllm:v2.8.0" })).not.toBe(a);
    expect(await nameOf({ ...base, env: { ...base.env, MAX_MODEL_LEN: "4096" } })).not.toBe(a);
    expect(await nameOf({ ...base, workersMax: 7 })).toBe(a);
  });
});

describe("RunPod endpoint provider: diff and update", () => {
  it("a scaling change is an in-place update", async () => {
    const olds = await created();
    const news = await checked({ workersMax: 5, idleTimeout: 30 });
    expect(await diff(olds.endpointId, olds, news)).toMatchObject({ changes: true, replaces: [] });
  });

  it.each([
    [{ image: "runpod/worker-v1-vllm:v2.8.0" }, ["image"]],
    [{ env: { MODEL_NAME: "other" } }, ["env"]],
    [{ containerDiskInGb: 60 }, ["containerDiskInGb"]],
    [{ name: "aiorch-dev-other" }, ["name"]],
  ])("%j replaces, deleting first", async (over, replaces) => {
    const olds = await created();
    const result = await diff(olds.endpointId, olds, await checked(over));
    expect(result).toEqual({ changes: true, replaces, deleteBeforeReplace: true });
  });

  it("a new API key alone is no change; the same env in another order is none either", async () => {
    const olds = await created();
    const news = await checked({
      apiKey: "rpa_ROTATEDROTATEDROTATED",
      env: { MAX_MODEL_LEN: "8192", MODEL_NAME: "meta-llama/Llama-3.1-8B-Instruct" },
    });
    expect(await diff(olds.endpointId, olds, news)).toMatchObject({ changes: false, replaces: [] });
  });

  it("update saves the endpoint in place with its id and keeps the template", async () => {
    const olds = await created();
    const news = await checked({ workersMin: 1, workersMax: 4, gpuPoolIds: ["AMPERE_48"], flashboot: false });
    const { outs } = await update(olds.endpointId, olds, news);
    const saves = fake.calls("saveEndpoint");
    expect(saves.at(-1)!.variables.input).toMatchObject({
      id: olds.endpointId,
      templateId: olds.templateId,
      workersMin: 1,
      workersMax: 4,
      gpuIds: "AMPERE_48",
      flashBootType: "OFF",
    });
    expect(fake.endpoints.get(olds.endpointId)).toMatchObject({ workersMin: 1, workersMax: 4 });
    expect(fake.endpoints.size).toBe(1);
    expect(outs).toMatchObject({ endpointId: olds.endpointId, templateId: olds.templateId, workersMax: 4 });
  });

  it("an update of informational fields only makes no RunPod call", async () => {
    const olds = await created();
    const before = fake.requests.length;
    const { outs } = await update(olds.endpointId, olds, await checked({ dataClass: "confidential" }));
    expect(fake.requests).toHaveLength(before);
    expect(outs?.dataClass).toBe("confidential");
  });
});

describe("RunPod endpoint provider: read", () => {
  it("refreshes settings RunPod changed (e.g. its 7-day scale-down)", async () => {
    const olds = await created();
    fake.endpoints.get(olds.endpointId)!.workersMax = 0;
    const result = await read(olds.endpointId, olds);
    expect(result.id).toBe(olds.endpointId);
    expect(result.props).toMatchObject({
      workersMax: 0,
      gpuPoolIds: ["ADA_24", "AMPERE_24"],
      dataCenterIds: ["EU-RO-1", "EU-SE-1"],
      flashboot: true,
      templateId: olds.templateId,
    });
    // …so the next diff restores it in place.
    expect(await diff(olds.endpointId, result.props!, await checked())).toMatchObject({
      changes: true,
      replaces: [],
    });
  });

  it("an endpoint that no longer exists reads as gone", async () => {
    const olds = await created();
    fake.endpoints.clear();
    expect((await read(olds.endpointId, olds)).id).toBe("");
  });

  it("retries a request that never gets an answer", async () => {
    const olds = await created();
    fake.inject({ kind: "hang", match: "myself" });
    const result = await read(olds.endpointId, olds);
    expect(result.id).toBe(olds.endpointId);
    expect(fake.requests.filter((r) => r.fault === "hang")).toHaveLength(1);
  });
});

describe("RunPod endpoint provider: delete", () => {
  it("sets both bounds to 0, then deletes the endpoint, then the template", async () => {
    const olds = await created({ workersMin: 1, workersMax: 3 });
    await destroy(olds.endpointId, olds);
    const mutations = fake.requests.slice(4).flatMap((r) => r.fields.filter((f) => f !== "myself"));
    expect(mutations).toEqual(["saveEndpoint", "deleteEndpoint", "deleteTemplate"]);
    expect(fake.calls("saveEndpoint").at(-1)!.variables.input).toMatchObject({
      id: olds.endpointId,
      workersMin: 0,
      workersMax: 0,
    });
    expect(fake.endpoints.size).toBe(0);
    expect(fake.templates.size).toBe(0);
  });

  it("retries while RunPod refuses because workers drain, and while the template still reads as in use", async () => {
    const olds = await created();
    fake.refuseDeletes("endpoint", 2);
    fake.refuseDeletes("template", 1);
    await destroy(olds.endpointId, olds);
    expect(fake.calls("deleteEndpoint")).toHaveLength(3);
    expect(fake.calls("deleteTemplate")).toHaveLength(2);
    expect(fake.endpoints.size + fake.templates.size).toBe(0);
  });

  it("gives up with the operation and RunPod's reason when the refusals last", async () => {
    const olds = await created();
    fake.refuseDeletes("endpoint", 99);
    const error = await failure(destroy(olds.endpointId, olds));
    expect(error.message).toMatch(
      /RunPod deleteEndpoint failed: .*still refused after 4 attempts.*running workers/,
    );
  });

  it("is idempotent: an endpoint and template already gone is success", async () => {
    const olds = await created();
    await destroy(olds.endpointId, olds);
    const before = fake.requests.length;
    await destroy(olds.endpointId, olds);
    const after = fake.requests.slice(before);
    expect(after.every((r) => r.fields.every((f) => f === "myself"))).toBe(true);
  });
});

describe("RunPod GraphQL client", () => {
  it("honours Retry-After", async () => {
    const sleeps: number[] = [];
    const client = api.runpodClient({
      apiKey: fake.apiKey,
      apiBase: fake.url,
      tuning: TUNING,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    fake.inject({ kind: "status", status: 429, retryAfter: "3", body: "slow down" });
    expect(await api.listEndpoints(client)).toEqual([]);
    expect(sleeps).toEqual([3000]);
  });

  it("gives up at once when Retry-After is beyond the time budget", async () => {
    const client = api.runpodClient({ apiKey: fake.apiKey, apiBase: fake.url, tuning: TUNING });
    fake.inject({ kind: "status", status: 429, retryAfter: "3600" });
    const error = await failure(api.listEndpoints(client));
    expect(error.message).toMatch(/RunPod listEndpoints failed: rate limited .*retry after 3600 s/);
    expect(fake.requests).toHaveLength(1);
  });

  it("bounds the attempts", async () => {
    const client = api.runpodClient({ apiKey: fake.apiKey, apiBase: fake.url, tuning: TUNING });
    fake.inject({ kind: "status", status: 502 }, 10);
    const error = await failure(api.listTemplates(client));
    expect(error.message).toMatch(/HTTP 502.*gave up after 4 attempts/);
    expect(fake.requests).toHaveLength(4);
  });

  it("the fake holds the contract: unknown fields and input fields are GraphQL errors", async () => {
    const client = api.runpodClient({ apiKey: fake.apiKey, apiBase: fake.url, tuning: TUNING });
    await expect(
      api.graphql(client, "probe", "query { myself { endpoints { id cloudType } } }"),
    ).rejects.toThrow(/Cannot query field "cloudType" on type "Endpoint"/);
    await expect(
      api.graphql(
        client,
        "probe",
        "mutation S($input: EndpointInput!) { saveEndpoint(input: $input) { id } }",
        {
          input: { name: "abc", gpuIds: "ADA_24", templateId: "x", flashboot: true },
        },
      ),
    ).rejects.toThrow(/Field "flashboot" is not defined by type "EndpointInput"/);
    // ?api_key= works as well as Bearer.
    const viaQuery = await fetch(`${fake.url}/graphql?api_key=${fake.apiKey}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ myself { id } }" }),
    });
    expect(await viaQuery.json()).toEqual({ data: { myself: { id: "user_fake" } } });
  });

  it("the fake holds the contract: unique template names, templates in use, endpoint name and pools", async () => {
    const client = api.runpodClient({ apiKey: fake.apiKey, apiBase: fake.url, tuning: TUNING });
    const spec: api.TemplateInput = {
      name: "tpl-one",
      imageName: "img:1",
      containerDiskInGb: 10,
      volumeInGb: 0,
      dockerArgs: "",
      env: [],
      isServerless: true,
    };
    const one = await api.saveTemplate(client, spec);
    const two = await api.saveTemplate(client, { ...spec, name: "tpl-two" });
    await expect(api.saveTemplate(client, { ...spec, id: two.id, name: "tpl-one" })).rejects.toThrow(
      /RunPod saveTemplate failed: .*unique/,
    );
    // Saving under an existing name adopts that template and brings it to the new spec.
    const adopted = await api.saveTemplate(client, { ...spec, imageName: "img:2" });
    expect(adopted.id).toBe(one.id);
    expect(fake.templates.get(one.id)?.imageName).toBe("img:2");

    const input: api.EndpointInput = {
      name: "ep-one",
      templateId: one.id,
      gpuIds: "ADA_24,-NVIDIA L4",
      workersMin: 0,
      workersMax: 1,
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
      flashBootType: "OFF",
    };
    await expect(api.saveEndpoint(client, { ...input, name: "ep" })).rejects.toThrow(/at least 3 characters/);
    await expect(api.saveEndpoint(client, { ...input, gpuIds: "H100" })).rejects.toThrow(
      /Invalid GPU id: H100/,
    );
    const endpoint = await api.saveEndpoint(client, input);
    await expect(api.deleteTemplate(client, "tpl-one")).rejects.toThrow(
      /RunPod deleteTemplate failed: .*still refused after 4 attempts: .*in use by endpoint/,
    );
    await expect(
      api.graphql(client, "probe", `mutation { deleteEndpoint(id: ${JSON.stringify(endpoint.id)}) }`),
    ).rejects.toThrow(/workersMin and workersMax set to 0/);
    await api.deleteEndpoint(client, endpoint.id);
    await api.deleteTemplate(client, "tpl-one");
    expect([...fake.templates.values()].map((t) => t.name)).toEqual(["tpl-two"]);
  });

  it("never puts the API key in an error message", async () => {
    const outs = await created();
    const errors: Error[] = [];
    // RunPod echoing the key in its own message is scrubbed too.
    fake.inject({ kind: "graphqlError", message: `bad request for key ${fake.apiKey}` });
    errors.push(await failure(read(outs.endpointId, outs)));
    fake.inject({ kind: "status", status: 500 }, 10);
    errors.push(await failure(update(outs.endpointId, outs, await checked({ workersMax: 9 }))));
    fake.reset();
    fake.inject({ kind: "hang" }, 10);
    errors.push(await failure(provider.create(await checked())));
    fake.reset();
    fake.inject({ kind: "status", status: 429 }, 10);
    errors.push(await failure(destroy(outs.endpointId, outs)));
    fake.reset();
    errors.push(await failure(provider.create(await checked({ apiKey: `${fake.apiKey}x` }))));
    const wrongKey = "rpa_SECRETSECRETSECRETSECRET";
    errors.push(await failure(read(outs.endpointId, { ...outs, apiKey: wrongKey })));

    expect(errors).toHaveLength(6);
    for (const error of errors) {
      expect(error.message).toMatch(/^RunPod \w+ failed: /);
      expect(error.message).not.toContain(fake.apiKey);
      expect(error.message).not.toContain(wrongKey);
      expect(String(error.stack)).not.toContain(fake.apiKey);
    }
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
              ? { ...args.inputs, endpointId: "ep-mock-1", templateId: "tpl-mock-1" }
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
      workersMax: 2,
      model: "llama",
      dataClass: "confidential",
    });
    // The provider is serialized into the inputs; the key must not be inside it.
    expect(typeof dynamic?.inputs.__provider).toBe("string");
    expect(dynamic?.inputs.__provider).not.toContain(apiKey);
  });

  it("throws early, naming both values and the fix, when workersMin > workersMax", () => {
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
  });
});
