/**
 * The books one finished request or job run leaves (gateway/bookkeeping.ts): one implementation for both, so the
 * rules are tested here once, as plain functions.
 */
import { describe, expect, it } from "vitest";
import { redisKeys } from "../../core/redis-keys";
import { type Bill, billOf, bookSpend, type FinishedWork } from "../../gateway/bookkeeping";
import type { Backend } from "../../gateway/routing";

const backend: Backend = {
  id: "w1",
  workerId: "w1",
  provider: "vastai",
  baseUrl: "http://127.0.0.1:1/v1",
  auth: { kind: "none" },
  capacity: 4,
  usdPerSecond: 0.001,
};

const work = (over: Partial<FinishedWork> = {}): FinishedWork => ({
  requestId: "req_1",
  keyId: "k1",
  unit: "chat@b",
  publicModel: "chat",
  variant: "b",
  endpoint: "chat",
  stream: false,
  status: 200,
  error: null,
  backend,
  concurrency: 1,
  startedAtMs: Date.parse("2026-12-07T10:00:00Z"),
  latencyMs: 3_000,
  queueMs: 1_000,
  serviceMs: 2_000,
  ttftMs: null,
  promptEstimate: 40,
  completionEstimate: 7,
  ...over,
});

describe("billOf", () => {
  it("takes the worker's usage, else the estimates; a prompt estimate only when a worker took the work", () => {
    expect(billOf(work({ usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }))).toEqual({
      promptTokens: 10,
      completionTokens: 5,
      usedTokens: 15,
      costUsd: 0.002,
    });
    expect(billOf(work())).toMatchObject({ promptTokens: 40, completionTokens: 7, usedTokens: 47 });
    expect(billOf(work({ backend: undefined, completionEstimate: 0 }))).toEqual({
      promptTokens: 0,
      completionTokens: 0,
      usedTokens: 0,
      costUsd: 0,
    });
  });

  it("bills the worker's busy time, shared by the requests it served at once, never below zero", () => {
    expect(billOf(work({ concurrency: 4 })).costUsd).toBeCloseTo(0.0005, 10);
    expect(billOf(work({ serviceMs: -5 })).costUsd).toBe(0);
  });

  it("a job's stored body costs at least its minTokens; nonsense usage falls back to the estimates", () => {
    const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    expect(billOf(work({ usage, minTokens: 250 })).usedTokens).toBe(250);
    expect(
      billOf(work({ usage: { prompt_tokens: -1, completion_tokens: Number.NaN } as never })),
    ).toMatchObject({ promptTokens: 40, completionTokens: 7 });
  });
});

describe("bookSpend", () => {
  it("books the key's cost in micro-dollars and the unit's request in the month the work started", () => {
    const writes: [string, string, number][] = [];
    const sink = { incr: (hash: string, field: string, by: number) => void writes.push([hash, field, by]) };
    const keys = redisKeys("t");
    const bill: Bill = { promptTokens: 1, completionTokens: 1, usedTokens: 2, costUsd: 0.002 };
    bookSpend(sink, keys, work(), bill);
    expect(writes).toEqual([
      [keys.spendMonth("2026-12"), "key:k1", 2_000],
      [keys.spendMonth("2026-12"), "requests:model:chat@b", 1],
    ]);
    writes.length = 0;
    bookSpend(sink, keys, work({ backend: undefined }), bill);
    expect(writes).toEqual([]); // no worker took it: nothing billed, nothing counted as served
  });
});
