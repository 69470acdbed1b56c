/** `aiorch keys …` and `aiorch gateway` as a user runs them: real processes, real Redis, a fake model server. */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { REDIS_URL, testRuntimeConfig } from "../gateway/harness";
import { aiorch, ROOT } from "./helpers";

let fake: FakeVllm;
let dir: string;
let configFile: string;
const prefix = `c${randomBytes(4).toString("hex")}:`;
const env = { ...process.env, REDIS_URL };

beforeAll(async () => {
  fake = await startFakeVllm({ model: ["chat", "embed", "cold"] });
  dir = mkdtempSync(join(tmpdir(), "aiorch-cli-"));
  configFile = join(dir, "runtime.json");
  writeFileSync(configFile, JSON.stringify(testRuntimeConfig(fake.url, prefix)));
});
afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
  const redis = new Redis(REDIS_URL);
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

function run(args: string[]) {
  const result = aiorch(args);
  return result;
}

describe("aiorch keys", () => {
  it("create prints the key once; list shows prefixes, never keys; revoke stops it", () => {
    process.env.REDIS_URL = REDIS_URL;
    const created = run([
      "keys",
      "create",
      "--config",
      configFile,
      "--name",
      "ci",
      "--models",
      "chat",
      "--rpm",
      "30",
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, id } = JSON.parse(created.stdout) as { key: string; id: string };
    expect(key).toMatch(/^sk-aiorch-[A-Za-z0-9_-]{32}$/);
    const listed = run(["keys", "list", "--config", configFile]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain("active");
    expect(listed.stdout).not.toContain(key);
    expect(run(["keys", "revoke", id, "--config", configFile]).code).toBe(0);
    expect(run(["keys", "list", "--config", configFile]).stdout).toMatch(new RegExp(`${id}.*revoked`));
  });

  it("refuses unknown models, bad numbers, past expiry and unknown ids with exit 2", () => {
    expect(
      run(["keys", "create", "--config", configFile, "--name", "x", "--models", "gpt-9"]).stderr,
    ).toMatch(/unknown model\(s\) gpt-9/);
    expect(run(["keys", "create", "--config", configFile, "--name", "x", "--rpm", "-1"]).code).toBe(2);
    expect(
      run(["keys", "create", "--config", configFile, "--name", "x", "--expires", "2001-01-01"]).stderr,
    ).toMatch(/in the past/);
    expect(run(["keys", "revoke", "key_nope", "--config", configFile]).code).toBe(2);
    expect(run(["keys", "frob", "--config", configFile]).code).toBe(2);
  });
});

describe("aiorch gateway", () => {
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill("SIGTERM"));

  it("--help names the ports, --metrics-port included; a bad port is a usage error", () => {
    const help = run(["gateway", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--metrics-port 9091/);
    expect(run(["controller", "--help"]).stdout).toMatch(/--port 9090/);
    expect(run(["dev", "--help"]).stdout).toMatch(/--gateway-metrics-port 9091/);
    const bad = run(["gateway", "--config", configFile, "--metrics-port", "http"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--metrics-port must be 0-65535/);
  });

  it("serves the OpenAI API from a runtime config file, with a key from aiorch keys", async () => {
    const { key } = JSON.parse(
      run(["keys", "create", "--config", configFile, "--name", "gw", "--json"]).stdout,
    ) as { key: string };
    child = spawn(
      process.execPath,
      [
        join(ROOT, "bin", "aiorch.js"),
        "gateway",
        "--config",
        configFile,
        "--port",
        "0",
        "--metrics-port",
        "0",
      ],
      {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const [ops, address] = await new Promise<string[]>((resolve, reject) => {
      let seen = "";
      child!.stderr!.on("data", (d: Buffer) => {
        seen += d.toString();
        const match = /\/readyz on (http:\/\/\S+)[\s\S]*listening on (http:\/\/\S+)/.exec(seen);
        if (match) resolve(match.slice(1));
      });
      child!.on("exit", (code) => reject(new Error(`gateway exited ${code}: ${seen}`)));
      setTimeout(() => reject(new Error(`gateway did not start: ${seen}`)), 20_000);
    });
    const client = new OpenAI({ apiKey: key, baseURL: `${address}/v1`, maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    expect(answer.usage?.completion_tokens).toBe(2);
    // health and metrics on the ops port (--metrics-port), not on the API's
    expect((await fetch(`${ops}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(/aiorch_requests_total\{model="chat"/);
    expect((await fetch(`${address}/metrics`)).status).toBe(404);
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child!.on("exit", resolve));
    expect(code).toBe(0);
  });
});

describe("aiorch dev", () => {
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill("SIGTERM"));

  it("runs the gateway and the controller together from one config", async () => {
    const { key } = JSON.parse(
      run(["keys", "create", "--config", configFile, "--name", "dev", "--json"]).stdout,
    ) as { key: string };
    child = spawn(
      process.execPath,
      [
        join(ROOT, "bin", "aiorch.js"),
        "dev",
        "--config",
        configFile,
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--gateway-metrics-port",
        "0",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const seen = await new Promise<string>((resolve, reject) => {
      let text = "";
      child!.stderr!.on("data", (d: Buffer) => {
        text += d.toString();
        if (/listening on http/.test(text) && /metrics on/.test(text)) resolve(text);
      });
      child!.on("exit", (code) => reject(new Error(`dev exited ${code}: ${text}`)));
      setTimeout(() => reject(new Error(`dev did not start: ${text}`)), 20_000);
    });
    const gateway = /listening on (http:\/\/\S+)/.exec(seen)![1]!;
    const metricsPort = /metrics on 127\.0\.0\.1:(\d+)/.exec(seen)![1]!;
    const client = new OpenAI({ apiKey: key, baseURL: `${gateway}/v1`, maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 1,
    });
    expect(answer.choices).toHaveLength(1);
    expect(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).toContain(
      "aiorch_queue_depth",
    );
    child.kill("SIGTERM");
    expect(await new Promise<number | null>((resolve) => child!.on("exit", resolve))).toBe(0);
  });
});

describe("key rotation and the audit trail", () => {
  it("rotate prints a new key; the old one works until the grace ends; every action is audited", async () => {
    const created = JSON.parse(
      run(["keys", "create", "--config", configFile, "--name", "rot", "--json", "--actor", "alice"]).stdout,
    ) as { key: string; id: string };
    const rotated = run([
      "keys",
      "rotate",
      created.id,
      "--config",
      configFile,
      "--grace",
      "2s",
      "--json",
      "--actor",
      "alice",
    ]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { key: newKey, id: newId } = JSON.parse(rotated.stdout) as { key: string; id: string };
    expect(newKey).not.toBe(created.key);
    const { ApiKeyStore, ApiKeyVerifier } = await import("../../core/api-keys");
    const { redisKeys } = await import("../../core/redis-keys");
    const redis = new Redis(REDIS_URL);
    try {
      const verifier = new ApiKeyVerifier(new ApiKeyStore(redis, redisKeys(prefix)), {
        ttlMs: 0,
        negativeTtlMs: 0,
      });
      expect((await verifier.verify(created.key)).ok).toBe(true); // within the grace
      expect((await verifier.verify(newKey)).ok).toBe(true);
      await new Promise((r) => setTimeout(r, 2_100));
      expect(await verifier.verify(created.key)).toEqual({
        ok: false,
        reason: "This API key has expired",
        failure: "expired",
      });
      expect((await verifier.verify(newKey)).ok).toBe(true);
    } finally {
      redis.disconnect();
    }
    expect(
      run(["keys", "revoke", newId, "--config", configFile, "--actor", "bob", "--reason", "laptop stolen"])
        .code,
    ).toBe(0);
    const trail = JSON.parse(run(["audit", "list", "--config", configFile, "--json"]).stdout) as {
      actor: string;
      action: string;
      target: string;
      reason: string;
    }[];
    expect(
      trail.filter((e) => e.target === created.id || e.target === newId).map((e) => `${e.actor} ${e.action}`),
    ).toEqual(["alice key.created", "alice key.rotated", "bob key.revoked"]);
    expect(trail.find((e) => e.action === "key.revoked" && e.target === newId)?.reason).toBe("laptop stolen");
    expect(JSON.stringify(trail)).not.toContain(newKey);
    const verified = run(["audit", "verify", "--config", configFile]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/audit trail intact: \d+ entries/);
  });
});

describe("aiorch models", () => {
  it("list shows declared weights; set-weight changes one at run time, audited; --reset restores it", () => {
    const file = join(dir, "variants.json");
    writeFileSync(
      file,
      JSON.stringify(
        testRuntimeConfig(fake.url, prefix, {
          models: `[{ name: chat, kind: chat, source: o/chat, revision: ${"c".repeat(40)}, gpu: [RTX_3090], providers: [local],
            variants: [{ name: stable, weight: 95 }, { name: canary, source: o/chat-next, weight: 5 }] }]`,
        }),
      ),
    );
    const listed = run(["models", "list", "--config", file]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/chat\s+stable\s+o\/chat\s+cccccccccccc\s+95\s+95\s+95\.0%\s+no/);
    expect(listed.stdout).toMatch(/chat\s+canary\s+o\/chat-next\s+\(unpinned\)\s+5\s+5\s+5\.0%/);

    const set = run(["models", "set-weight", "chat", "canary", "45", "--config", file, "--actor", "carol"]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("chat@canary: weight 5 → 45; traffic now stable 67.9%, canary 32.1%");
    const rows = JSON.parse(run(["models", "list", "--config", file, "--json"]).stdout) as {
      variant: string;
      weight: number;
      declaredWeight: number;
    }[];
    expect(rows.map((r) => [r.variant, r.declaredWeight, r.weight])).toEqual([
      ["stable", 95, 95],
      ["canary", 5, 45],
    ]);
    expect(run(["audit", "list", "--config", file]).stdout).toMatch(
      /carol\s+weights\.changed\s+chat@canary\s+5 → 45/,
    );

    expect(run(["models", "set-weight", "chat", "canary", "--reset", "--config", file]).code).toBe(0);
    expect(run(["models", "list", "--config", file]).stdout).toMatch(
      /canary\s+o\/chat-next\s+\(unpinned\)\s+5\s+5\s/,
    );
    const bad = run(["models", "set-weight", "chat", "canary", "lots", "--config", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('WEIGHT must be a number ≥ 0, e.g. 25; got "lots"');
    expect(run(["models", "set-weight", "chat", "stable", "0", "--config", file]).code).toBe(0);
    const off = run(["models", "set-weight", "chat", "canary", "0", "--config", file]);
    expect(off.code).toBe(2);
    expect(off.stderr).toMatch(/switch the model off/);
  });
});
