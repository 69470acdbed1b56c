/** `aiorch status`: what an operator sees, from a seeded Redis — in-process (readStatus) and as the real CLI. */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readStatus, renderStatus } from "../../cli/status";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { ledgerMonth } from "../../core/protocol";
import { redisKeys } from "../../core/redis-keys";
import { stackYaml } from "../../devkit/stack-yaml";
import { ROOT } from "./helpers";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `st${randomBytes(4).toString("hex")}:`;
const keys = redisKeys(prefix);
const NOW = Date.now();
let redis: Redis;
let config: RuntimeConfig;
let dir: string;
let configFile: string;

function aiorch(args: string[], redisUrl: string) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin", "aiorch.js"), ...args], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: redisUrl },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  const yaml = stackYaml({
    budget: "{ monthlyUsd: 50 }",
    models:
      "[{ name: llama, kind: chat, source: o/llama, gpu: [RTX_3090], providers: [vastai], monthlyBudgetUsd: 10 }, { name: embed, kind: embedding, source: o/e, gpu: [RTX_3090], providers: [vastai] }]",
    redis: `{ keyPrefix: "${prefix}" }`,
  });
  config = renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "t.yaml")), "test");
  dir = mkdtempSync(join(tmpdir(), "aiorch-status-"));
  configFile = join(dir, "runtime.json");
  writeFileSync(configFile, JSON.stringify(config));
  const worker = (id: string, state: string, extra: Record<string, string> = {}) =>
    redis
      .multi()
      .hset(keys.worker(id), {
        id,
        model: "llama",
        provider: "vastai",
        state,
        usdPerHour: "0.25",
        token: "secret-token",
        createdAtMs: String(NOW - 300_000),
        stateChangedAtMs: String(NOW - 60_000),
        lastActiveAtMs: String(NOW),
        accruedUntilMs: String(NOW),
        ...extra,
      })
      .sadd(keys.liveWorkers, id)
      .exec();
  await worker("w1", "ready", { providerId: "7000001", detail: "serving" });
  await worker("w2", "ready", { providerId: "7000002", detail: "serving" });
  await worker("w3", "booting", { providerId: "7000003", detail: "actual_status=loading" });
  await redis.zadd(keys.waiting("llama"), NOW + 60_000, "r1", NOW + 60_000, "r2", NOW - 1, "expired");
  await redis.zadd(keys.inflight("llama"), NOW + 60_000, "w1|r9");
  await redis.hset(keys.routes("llama"), "w1", "{}", "w2", "{}");
  await redis.hset(keys.spendMonth(ledgerMonth(NOW)), {
    total: 12_500_000,
    "model:llama": 12_000_000,
    "model:embed": 500_000,
    "requests:model:llama": 40,
  });
  await redis.hset(
    keys.budgetBlocked,
    "llama",
    "model llama reached its monthly budget of $10 ($12.00 spent)",
  );
  await redis.set(keys.leaderLock, "controller-abc");
  for (const [i, d] of [
    { model: "llama", action: "provision", workers: 2, reason: "llama: demand 12 … provision 2" },
    { model: "llama", action: "drain", workers: 1, reason: "idle 300s ≥ keep-alive 240s" },
    { model: "llama", action: "fail", worker: "w0", reason: "boot timed out" },
  ].entries())
    await redis.lpush(keys.scaleDecisions, JSON.stringify({ atMs: NOW - 10_000 + i * 1_000, ...d }));
  await redis.lpush(keys.scaleDecisions, "not json");
});

afterAll(async () => {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe("aiorch status", () => {
  it("workers by model, provider and state; queue; spend vs budget; blocks; last decisions newest first", async () => {
    const report = await readStatus(redis, config, { now: NOW });
    expect(report.leader).toBe("controller-abc");
    expect(report.workersByState).toEqual([
      { model: "llama", provider: "vastai", state: "booting", workers: 1, usdPerHour: 0.25 },
      { model: "llama", provider: "vastai", state: "ready", workers: 2, usdPerHour: 0.5 },
    ]);
    expect(report.workers.map((w) => [w.id, w.state, w.stateSeconds])).toEqual([
      ["w3", "booting", 60],
      ["w1", "ready", 60],
      ["w2", "ready", 60],
    ]);
    expect(JSON.stringify(report)).not.toContain("secret-token"); // worker tokens never shown
    expect(report.queue).toEqual([
      { model: "llama", waiting: 2, jobs: 0, inFlight: 1, routes: 2 },
      { model: "embed", waiting: 0, jobs: 0, inFlight: 0, routes: 0 },
    ]);
    expect(report.spend).toMatchObject({ totalUsd: 12.5, budgetUsd: 50, percent: 25 });
    expect(report.spend.byModel[0]).toEqual({ model: "llama", usd: 12, budgetUsd: 10, requests: 40 });
    expect(report.budgetBlocks.llama).toMatch(/reached its monthly budget/);
    expect(report.decisions.map((d) => d.action)).toEqual(["fail", "drain", "provision"]);
    const text = renderStatus(report);
    expect(text).toMatch(/controller leader: controller-abc/);
    expect(text).toMatch(/llama\s+vastai\s+ready\s+2/);
    expect(text).toMatch(/spend \d{4}-\d{2}: \$12\.50 of \$50\.00 \(25%\)/);
    expect(text).toMatch(/budget blocks \(no new workers\):\n {2}llama: model llama reached/);
    expect(text).toMatch(/fail .* boot timed out/);
  });

  it("as the CLI: a table, --json, and a clear exit 2 when Redis is unreachable", () => {
    const table = aiorch(["status", "--config", configFile], REDIS_URL);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^stack test at/);
    expect(table.stdout).toMatch(/last scale decisions/);
    const json = aiorch(["status", "--config", configFile, "--json", "--decisions", "2"], REDIS_URL);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { decisions: unknown[]; workers: unknown[] };
    expect(report.decisions).toHaveLength(1); // the newest entry is malformed and skipped
    expect(report.workers).toHaveLength(3);
    const down = aiorch(["status", "--config", configFile], "redis://127.0.0.1:1");
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
