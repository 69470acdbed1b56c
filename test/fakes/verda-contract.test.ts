import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateInstanceRequest,
  Instance,
  InstanceActionResultList,
  InstanceList,
  InstanceType,
  InstanceTypeList,
  LocationAvailabilityList,
  StartupScriptList,
  TokenResponse,
  VerdaError,
  VolumeInTrashList,
  VolumeList,
} from "../../core/contracts/verda";
import { VerdaFake } from "./datacrunch-api";
import { ManualClock, type RecordedRequest, type Reply, schemaViolations } from "./fake-api-server";

const CLIENT_ID = "verda-contract-id";
const CLIENT_SECRET = "verda-contract-secret";

interface Answer {
  status: number;
  text: string;
  json: unknown;
}

async function call(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; token?: string; contentType?: string } = {},
): Promise<Answer> {
  const body = options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined);
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(body !== undefined ? { "content-type": options.contentType ?? "application/json" } : {}),
    },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** A create body as sdk-python's `InstancesService.create` builds it (every field it sends). */
const pythonCreateBody = (scriptId: string) => ({
  instance_type: "2A100.44V",
  image: "ubuntu-24.04-cuda-12.8-open-docker",
  ssh_key_ids: [],
  startup_script_id: scriptId,
  hostname: "contract-test-1",
  description: "contract test",
  location_code: "FIN-03",
  os_volume: { name: "contract-test-1-os", size: 100 },
  volumes: [],
  existing_volumes: [],
  is_spot: false,
  coupon: null,
  contract: "PAY_AS_YOU_GO",
});

describe("Verda fake against the published contract (sdk-python, verdacloud-sdk-go)", () => {
  const clock = new ManualClock();
  const fake = new VerdaFake({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    availability: { "FIN-03": ["1A100.40S.22V", "1A100.22V", "2A100.44V"], "FIN-01": ["1A6000.10V"] },
    now: clock.now,
  });
  let base: string;
  let token: string;

  beforeAll(async () => {
    await fake.start();
    base = fake.apiBase;
    const auth = await call(base, "POST", "/oauth2/token", {
      body: { grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
    });
    expect(auth.status).toBe(200);
    expect(schemaViolations(TokenResponse, auth.json)).toEqual([]);
    token = (auth.json as TokenResponse).access_token;
  });
  afterAll(() => fake.close());

  it("every reply of a full instance lifecycle matches the published shapes", async () => {
    const types = await call(base, "GET", "/instance-types?currency=usd", { token });
    expect(schemaViolations(InstanceTypeList, types.json)).toEqual([]);
    const a100s = (types.json as InstanceType[]).filter((t) => t.model === "A100");
    // A 40 GB and an 80 GB A100 type, and a multi-GPU one whose gpu_memory is the total and price the whole.
    expect(a100s.map((t) => [t.instance_type, t.gpu.number_of_gpus, t.gpu_memory.size_in_gigabytes])).toEqual(
      [
        ["1A100.40S.22V", 1, 40],
        ["1A100.22V", 1, 80],
        ["2A100.44V", 2, 160],
        ["4A100.88V", 4, 320],
      ],
    );
    expect(a100s.find((t) => t.instance_type === "2A100.44V")?.price_per_hour).toBe("2.58");

    const avail = await call(base, "GET", "/instance-availability?location_code=FIN-03", { token });
    expect(schemaViolations(LocationAvailabilityList, avail.json)).toEqual([]);
    expect(avail.json).toEqual([
      { location_code: "FIN-03", availabilities: ["1A100.40S.22V", "1A100.22V", "2A100.44V"] },
    ]);
    for (const q of ["isSpot=true", "is_spot=true"]) {
      const spot = await call(base, "GET", `/instance-availability?location_code=FIN-03&${q}`, { token });
      expect(spot.json).toEqual([{ location_code: "FIN-03", availabilities: [] }]);
    }

    const script = await call(base, "POST", "/scripts", {
      token,
      body: { name: "s", script: "#!/bin/sh\n" },
    });
    expect(script.status).toBe(201);
    expect(script.text).toMatch(/^[0-9a-f-]{36}$/); // a plain-text id, as py's tests answer
    const scripts = await call(base, "GET", "/scripts", { token });
    expect(schemaViolations(StartupScriptList, scripts.json)).toEqual([]);

    const created = await call(base, "POST", "/instances", { token, body: pythonCreateBody(script.text) });
    expect(created.status).toBe(200);
    expect(created.json).toBeUndefined(); // plain text
    const id = created.text;
    const one = await call(base, "GET", `/instances/${id}`, { token });
    expect(schemaViolations(Instance, one.json)).toEqual([]);
    // An instance's price is per GPU (verda-cli `cmd/util/pricing.go`); ip null until it runs.
    expect(one.json).toMatchObject({
      status: "ordered",
      ip: null,
      price_per_hour: 1.29,
      gpu: { number_of_gpus: 2 },
    });
    clock.advance(40_000);
    const list = await call(base, "GET", "/instances", { token });
    expect(schemaViolations(InstanceList, list.json)).toEqual([]);
    expect((list.json as Instance[])[0]).toMatchObject({ status: "running", ip: expect.any(String) });

    const volumes = await call(base, "GET", "/volumes", { token });
    expect(schemaViolations(VolumeList, volumes.json)).toEqual([]);
    const osVolume = (volumes.json as { id: string }[])[0]!.id;

    const del = await call(base, "PUT", "/instances", {
      token,
      body: { id: [id], action: "delete", volume_ids: null }, // py sends null when no volume is named
    });
    expect(del.status).toBe(202);
    expect(schemaViolations(InstanceActionResultList, del.json)).toEqual([]);
    const again = await call(base, "PUT", "/instances", { token, body: { id: [id], action: "delete" } });
    expect(again.status).toBe(403);
    expect(schemaViolations(VerdaError, again.json)).toEqual([]);
    expect(again.json).toMatchObject({ code: "forbidden_action" });

    clock.advance(10_000);
    expect((await call(base, "GET", `/instances/${id}`, { token })).status).toBe(404);
    // volume_ids omitted: the API's default deletes the OS volume (go `InstanceActionRequest`), into the trash.
    const trash = await call(base, "GET", "/volumes/trash", { token });
    expect(schemaViolations(VolumeInTrashList, trash.json)).toEqual([]);
    expect((trash.json as { id: string }[]).map((v) => v.id)).toEqual([osVolume]);
    const purge = await call(base, "DELETE", `/volumes/${osVolume}`, { token, body: { is_permanent: true } });
    expect(purge.status).toBe(202);
    const gone = await call(base, "DELETE", "/scripts", { token, body: { scripts: [script.text] } });
    expect(gone.status).toBe(200);

    const unauthorized = await call(base, "GET", "/instances", { token: "nope" });
    expect(unauthorized.status).toBe(401);
    expect(schemaViolations(VerdaError, unauthorized.json)).toEqual([]);
    expect(fake.contractViolations).toEqual([]);
  });

  it("refuses requests the published schemas do not allow (unknown fields: stricter than known)", async () => {
    const script = await call(base, "POST", "/scripts", { token, body: { name: "s", script: "x" } });
    const bad = [
      // an invented field (RunPod's / Vast's vocabulary)
      { ...pythonCreateBody(script.text), ports: ["8000/tcp"] },
      // a required field missing (go `CreateInstanceRequest.Validate`: description)
      (({ description: _, ...rest }) => rest)(pythonCreateBody(script.text)),
      // a wrong type
      { ...pythonCreateBody(script.text), os_volume: { name: "x", size: "100" } },
      // a contract Verda does not have
      { ...pythonCreateBody(script.text), contract: "ON_DEMAND" },
      // a hostname Verda's frontend refuses (no letter)
      { ...pythonCreateBody(script.text), hostname: "123-456" },
    ];
    for (const body of bad) {
      expect(schemaViolations(CreateInstanceRequest, body)).not.toEqual([]);
      const res = await call(base, "POST", "/instances", { token, body });
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ code: "invalid_request" });
    }
    // The token request is JSON (py `_authentication.py`); a form body is refused.
    const form = await call(base, "POST", "/oauth2/token", {
      raw: `grant_type=client_credentials&client_id=${CLIENT_ID}&client_secret=${CLIENT_SECRET}`,
      contentType: "application/x-www-form-urlencoded",
    });
    expect(form.status).toBe(400);
    // Query parameters the SDKs never send.
    expect((await call(base, "GET", "/instance-availability?spot=false", { token })).status).toBe(400);
    expect((await call(base, "GET", "/instance-types?currency=gbp", { token })).status).toBe(400);
    // Actions: id list and a published action; `delete_permanently` must be a boolean.
    const action = await call(base, "PUT", "/instances", {
      token,
      body: { id: ["x"], action: "delete", delete_permanently: "yes" },
    });
    expect(action.status).toBe(400);
    expect(fake.contractViolations).toEqual([]);
  });

  it("a wrongly shaped answer fails the schemas: missing field, invented field, wrong type", async () => {
    const types = (await call(base, "GET", "/instance-types", { token })).json as InstanceType[];
    const good = types[0]!;
    expect(schemaViolations(InstanceType, good)).toEqual([]);
    const { gpu_memory: _, ...missing } = good;
    expect(schemaViolations(InstanceType, missing)).toEqual([
      "gpu_memory: Invalid input: expected object, received undefined",
    ]);
    expect(schemaViolations(InstanceType, { ...good, gpu_memory_per_gpu: 40 })).toEqual([
      '(body): Unrecognized key: "gpu_memory_per_gpu"',
    ]);
    expect(
      schemaViolations(InstanceType, {
        ...good,
        gpu_memory: { ...good.gpu_memory, size_in_gigabytes: "40" },
      }),
    ).toEqual(["gpu_memory.size_in_gigabytes: Invalid input: expected number, received string"]);
    expect(schemaViolations(InstanceType, { ...good, price_per_hour: "$1.29" })).not.toEqual([]);

    const script = await call(base, "POST", "/scripts", { token, body: { name: "s", script: "x" } });
    const created = await call(base, "POST", "/instances", {
      token,
      body: { ...pythonCreateBody(script.text), instance_type: "1A100.22V", hostname: "contract-test-2" },
    });
    const inst = (await call(base, "GET", `/instances/${created.text}`, { token })).json as Instance;
    expect(schemaViolations(Instance, inst)).toEqual([]);
    expect(schemaViolations(Instance, { ...inst, status: "booting" })).not.toEqual([]);
    expect(schemaViolations(Instance, { ...inst, publicIp: "192.0.2.1" })).toEqual([
      '(body): Unrecognized key: "publicIp"',
    ]);
    expect(schemaViolations(Instance, { ...inst, ip: 3232235777 })).not.toEqual([]);
    const { hostname: __, ...noHostname } = inst;
    expect(schemaViolations(Instance, noHostname)).not.toEqual([]);
    expect(schemaViolations(VerdaError, { error: "not_found", msg: "x" })).not.toEqual([]);
  });

  it("the harness turns a reply off the published shape into a 500 and records it", async () => {
    class DriftedVerda extends VerdaFake {
      protected override handle(req: RecordedRequest): Reply | Promise<Reply> {
        if (req.path === "/v1/instance-types")
          return { status: 200, json: [{ instance_type: "1A100.22V", price_per_hour: 1.29, gpu_count: 1 }] };
        return super.handle(req);
      }
    }
    const drifted = new DriftedVerda({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    await drifted.start();
    try {
      const auth = await call(drifted.apiBase, "POST", "/oauth2/token", {
        body: { grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
      });
      const res = await call(drifted.apiBase, "GET", "/instance-types", {
        token: (auth.json as TokenResponse).access_token,
      });
      expect(res.status).toBe(500);
      expect(res.json).toMatchObject({ error: "fake_contract_violation" });
      expect(drifted.contractViolations).toContain(
        'GET /v1/instance-types → 200: 0: Unrecognized key: "gpu_count"',
      );
    } finally {
      await drifted.close();
    }
  });
});
