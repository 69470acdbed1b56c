/**
 * The Vast.ai contract fake answers in Vast.ai's published shapes (core/contracts/vastai.ts), checks request bodies
 * as the spec documents them, and the schemas are strict enough that a wrongly shaped answer — the v0 instance list
 * where v1 is expected, a missing required field, an invented field — is caught.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CreateInstanceError,
  CreateInstanceRequest,
  CreateInstanceResponse,
  DestroyInstanceResponse,
  ErrorResponse,
  ListInstancesError,
  ListInstancesResponse,
  SearchOffersRequest,
  SearchOffersResponse,
  ShowInstanceResponse,
  VastInstance,
  VastOffer,
} from "../../core/contracts/vastai";
import { ManualClock, type RecordedRequest, type Reply, schemaViolations } from "./fake-api-server";
import { VastAiFake, type VastOfferSeed } from "./vastai-api";

const KEY = "vast-contract-key";
const OFFERS: VastOfferSeed[] = [
  { id: 11, gpu_name: "A100 SXM4", num_gpus: 1, dph_base: 0.7, reliability: 0.99, gpu_ram: 40_960 },
  { id: 12, gpu_name: "A100 SXM4", num_gpus: 1, dph_base: 1.2, reliability: 0.99, gpu_ram: 81_920 },
  { id: 13, gpu_name: "RTX 4090", num_gpus: 1, dph_base: 0.3, reliability: 0.99, direct_port_count: 0 },
  ...Array.from({ length: 30 }, (_, i) => ({
    id: 100 + i,
    gpu_name: "RTX 3090",
    num_gpus: 1,
    dph_base: 0.2,
    reliability: 0.99,
  })),
];

let clock: ManualClock;
let fake: VastAiFake;

beforeEach(async () => {
  clock = new ManualClock();
  fake = new VastAiFake({ apiKey: KEY, offers: OFFERS, now: clock.now });
  await fake.start();
});
afterEach(async () => {
  await fake.close();
});

async function call(
  method: string,
  path: string,
  body?: unknown,
  key = KEY,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${fake.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const rent = (ask: number, extra: Record<string, unknown> = {}) =>
  call("PUT", `/api/v0/asks/${ask}/`, { image: "vllm/vllm-openai:v0", disk: 20, runtype: "args", ...extra });

describe("the fake answers in the published shapes", () => {
  it("search: the 200 answer, with gpu_ram and direct_port_count on offers; 40 and 80 GB A100 SXM4 hosts", async () => {
    const res = await call("POST", "/api/v0/bundles/", {
      gpu_name: { eq: "A100 SXM4" },
      rentable: { eq: true },
      order: [["dph_total", "asc"]],
      type: "ondemand",
      allocated_storage: 20,
    });
    expect(res.status).toBe(200);
    expect(schemaViolations(SearchOffersResponse, res.json)).toEqual([]);
    const offers = (res.json as { offers: VastOffer[] }).offers;
    expect(offers.map((o) => [o.id, o.gpu_ram])).toEqual([
      [11, 40_960],
      [12, 81_920],
    ]);
    const big = await call("POST", "/api/v0/bundles/", {
      gpu_name: { eq: "A100 SXM4" },
      gpu_ram: { gte: 73_728 },
    });
    expect((big.json as { offers: VastOffer[] }).offers.map((o) => o.id)).toEqual([12]);
    const direct = await call("POST", "/api/v0/bundles/", {
      gpu_name: { eq: "RTX 4090" },
      direct_port_count: { gte: 1 },
    });
    expect((direct.json as { offers: VastOffer[] }).offers).toEqual([]);
    expect(fake.contractViolations).toEqual([]);
  });

  it("search: an unknown field or operator is a 400 (stricter than known); a bad key is 404 'Invalid user key'", async () => {
    const bad = await call("POST", "/api/v0/bundles/", { gpu_memory_gb: { gte: 80 } });
    expect(bad.status).toBe(400);
    expect(schemaViolations(ErrorResponse, bad.json)).toEqual([]);
    expect((await call("POST", "/api/v0/bundles/", { num_gpus: { between: [1, 2] } })).status).toBe(400);
    const unauth = await call("POST", "/api/v0/bundles/", {}, "wrong");
    expect(unauth).toMatchObject({ status: 404, json: { msg: "Invalid user key" } });
    const unauthShow = await call("GET", "/api/v0/instances/1/", undefined, "wrong");
    expect(unauthShow).toMatchObject({ status: 401, json: { success: false, error: "auth_error" } });
    expect(fake.contractViolations).toEqual([]);
  });

  it("create: {success, new_contract}; a gone offer is 404 no_such_ask; a body beyond the spec is 400 invalid_args", async () => {
    const ok = await rent(12, { label: "s.w-1", env: { HF_TOKEN: "hf_x", "-p 8000:8000": "1" } });
    expect(ok.status).toBe(200);
    expect(schemaViolations(CreateInstanceResponse, ok.json)).toEqual([]);
    const gone = await rent(12);
    expect(gone.status).toBe(404);
    expect(schemaViolations(CreateInstanceError, gone.json)).toEqual([]);
    expect((gone.json as { msg: string }).msg).toMatch(/no_such_ask .* is not available/);
    for (const extra of [
      { client_id: "me" }, // vast-cli sends it, the spec does not list it: refused here, stricter than known
      { env: { AIORCH_TLS_KEY_B64: "A".repeat(257) } }, // env.max_length 256
      { onstart: "/bin/sh", args: ["-c", "x".repeat(4_090)] }, // args + onstart ≤ 4096
      { env: "-e A=b -p 8000:8000" }, // the yaml's string form: the API guide and the CLI send an object
      { disk: 4 }, // disk.min 8
    ]) {
      const refused = await rent(11, extra);
      expect(refused.status, JSON.stringify(extra).slice(0, 60)).toBe(400);
      expect((refused.json as { error: string }).error).toBe("invalid_args");
    }
    expect(fake.live()).toHaveLength(1);
    expect(fake.contractViolations).toEqual([]);
  });

  it("show: null for an unknown instance; ports only once running; a destroyed one is cur_state unloaded, then null", async () => {
    expect((await call("GET", "/api/v0/instances/42/")).json).toEqual({ instances: null });
    const id = ((await rent(12, { env: { "-p 8000:8000": "1" } })).json as { new_contract: number })
      .new_contract;
    const show = async () =>
      (await call("GET", `/api/v0/instances/${id}/?owner=me`)).json as ShowInstanceResponse;
    const early = await show();
    expect(early.instances).toMatchObject({ actual_status: null, ports: null, cur_state: "running" });
    clock.advance(40_000);
    const running = (await show()).instances!;
    expect(running.actual_status).toBe("running");
    expect(running.ports?.["8000/tcp"]?.[0]?.HostPort).toMatch(/^\d+$/);
    const destroyed = await call("DELETE", `/api/v0/instances/${id}/`);
    expect(destroyed.status).toBe(200);
    expect(schemaViolations(DestroyInstanceResponse, destroyed.json)).toEqual([]);
    expect((await show()).instances).toMatchObject({ cur_state: "unloaded" });
    const again = await call("DELETE", `/api/v0/instances/${id}/`);
    expect(again).toMatchObject({ status: 404, json: { error: "not_found" } });
    clock.advance(3_600_000);
    expect((await show()).instances).toBeNull();
    expect(fake.contractViolations).toEqual([]);
  });

  it("a host without direct ports never maps the requested port", async () => {
    const id = ((await rent(13, { env: { "-p 8000:8000": "1" } })).json as { new_contract: number })
      .new_contract;
    clock.advance(40_000);
    const { instances } = (await call("GET", `/api/v0/instances/${id}/`)).json as ShowInstanceResponse;
    expect(instances?.actual_status).toBe("running");
    expect(instances?.ports?.["8000/tcp"]).toBeUndefined();
  });

  it("list: v1 pages of at most 25 with next_token; a bad token is 400 invalid_token; the v0 list is gone", async () => {
    for (let i = 0; i < 30; i++) fake.seedInstance(100 + i, `s.w-${i}`);
    const first = await call("GET", "/api/v1/instances/?limit=100");
    expect(schemaViolations(ListInstancesResponse, first.json)).toEqual([]);
    const page1 = first.json as ListInstancesResponse;
    expect(page1.instances).toHaveLength(25);
    expect(page1.total_instances).toBe(30);
    expect(page1.next_token).toEqual(expect.any(String));
    const second = await call(
      "GET",
      `/api/v1/instances/?limit=25&after_token=${encodeURIComponent(page1.next_token!)}`,
    );
    const page2 = second.json as ListInstancesResponse;
    expect(page2.instances).toHaveLength(5);
    expect(page2.next_token).toBeNull();
    expect(new Set([...page1.instances, ...page2.instances].map((i) => i.id)).size).toBe(30);

    const badToken = await call("GET", "/api/v1/instances/?after_token=bm9wZQ==");
    expect(badToken.status).toBe(400);
    expect(schemaViolations(ListInstancesError, badToken.json)).toEqual([]);
    expect((badToken.json as { error: string }).error).toBe("invalid_token");
    const badFilter = await call(
      "GET",
      `/api/v1/instances/?select_filters=${encodeURIComponent('{"dph_total":{"lt":1}}')}`,
    );
    expect(badFilter).toMatchObject({ status: 400, json: { error: "invalid_request" } });
    expect((await call("GET", "/api/v0/instances/")).status).toBe(404);
    expect(fake.contractViolations).toEqual([]);
  });
});

describe("the schemas catch a wrongly shaped answer", () => {
  const instance = (): Record<string, unknown> => ({
    id: 7,
    label: "s.w-1",
    actual_status: "running",
    cur_state: "running",
    start_date: 1_767_614_400,
    extra_env: [["-p 8000:8000", "1"]],
    public_ipaddr: "203.0.113.7",
    ports: { "8000/tcp": [{ HostIp: "0.0.0.0", HostPort: "40123" }] },
  });

  it("a well-formed v1 page passes", () => {
    expect(schemaViolations(ListInstancesResponse, { instances: [instance()], next_token: null })).toEqual(
      [],
    );
  });

  it("a v0-style list (no next_token) where v1 is expected", () => {
    expect(schemaViolations(ListInstancesResponse, { instances: [instance()] })).toEqual([
      "next_token: Invalid input: expected string, received undefined",
    ]);
  });

  it("a missing required field", () => {
    const { start_date: _, ...noStart } = instance();
    expect(schemaViolations(VastInstance, noStart)).toEqual([
      "start_date: Invalid input: expected number, received undefined",
    ]);
    expect(schemaViolations(VastOffer, { id: 1, gpu_name: "RTX 4090", num_gpus: 1 })).toEqual([
      "dph_total: Invalid input: expected number, received undefined",
    ]);
    expect(schemaViolations(CreateInstanceResponse, { success: true })).toHaveLength(1);
  });

  it("an invented field, or a documented one in the wrong shape", () => {
    expect(schemaViolations(VastInstance, { ...instance(), publicIp: "203.0.113.7" })).toEqual([
      '(body): Unrecognized key: "publicIp"',
    ]);
    expect(
      schemaViolations(VastOffer, {
        id: 1,
        gpu_name: "A100 SXM4",
        num_gpus: 1,
        dph_total: 1,
        gpu_memory_gb: 80,
      }),
    ).toEqual(['(body): Unrecognized key: "gpu_memory_gb"']);
    // HostPort is a string; ports is a map, not show_instance.yaml's list of integers
    expect(
      schemaViolations(VastInstance, { ...instance(), ports: { "8000/tcp": [{ HostPort: 40123 }] } }),
    ).toHaveLength(1);
    expect(schemaViolations(VastInstance, { ...instance(), ports: [8000] })).toHaveLength(1);
    expect(schemaViolations(CreateInstanceResponse, { success: true, new_contract: "7" })).toHaveLength(1);
    expect(schemaViolations(ShowInstanceResponse, { instances: [instance()] })).toHaveLength(1);
  });

  it("request bodies: a field the spec lacks fails", () => {
    expect(schemaViolations(CreateInstanceRequest, { image: "x", client_id: "me" })).toEqual([
      '(body): Unrecognized key: "client_id"',
    ]);
    expect(
      schemaViolations(SearchOffersRequest, { gpu_name: { eq: "RTX 4090" }, gpu_mem: { gte: 1 } }),
    ).toEqual(['(body): Unrecognized key: "gpu_mem"']);
  });

  it("the harness turns a reply that breaks the schema into a 500 and records it", async () => {
    class Drifting extends VastAiFake {
      protected override async handle(req: RecordedRequest): Promise<Reply> {
        const reply = await super.handle(req);
        if (req.path === "/api/v1/instances/" && reply.status === 200) {
          const { next_token: _, ...v0Style } = reply.json as Record<string, unknown>;
          return { status: 200, json: v0Style };
        }
        return reply;
      }
    }
    const drifting = new Drifting({ apiKey: KEY, offers: OFFERS, now: clock.now });
    await drifting.start();
    try {
      const res = await fetch(`${drifting.url}/api/v1/instances/`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toMatchObject({ error: "fake_contract_violation" });
      expect(drifting.contractViolations).toEqual([
        "GET /api/v1/instances/ → 200: next_token: Invalid input: expected string, received undefined",
      ]);
    } finally {
      await drifting.close();
    }
  });
});
