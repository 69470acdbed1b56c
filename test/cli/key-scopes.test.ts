/** Issue 23: `aiorch keys create --scope`, as a user runs it (a real process, real Redis). */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL, testRuntimeConfig } from "../gateway/harness";
import { aiorch } from "./helpers";

const prefix = `ks${randomBytes(4).toString("hex")}:`;
let dir: string;
let configFile: string;

beforeAll(() => {
  process.env.REDIS_URL = REDIS_URL;
  dir = mkdtempSync(join(tmpdir(), "aiorch-scope-"));
  configFile = join(dir, "runtime.json");
  writeFileSync(configFile, JSON.stringify(testRuntimeConfig("http://127.0.0.1:9", prefix)));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const redis = new Redis(REDIS_URL);
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

describe("aiorch keys create --scope", () => {
  it("creates keys of each scope (inference by default) and lists the scope", () => {
    const scopes: Record<string, string> = {};
    for (const scope of [undefined, "read", "admin"]) {
      const created = aiorch([
        "keys",
        "create",
        "--config",
        configFile,
        "--name",
        scope ?? "app",
        ...(scope ? ["--scope", scope] : []),
        "--json",
      ]);
      expect(created.code, created.stderr).toBe(0);
      const { id, scope: got } = JSON.parse(created.stdout) as { id: string; scope: string };
      scopes[id] = got;
    }
    expect(Object.values(scopes)).toEqual(["inference", "read", "admin"]);
    const listed = aiorch(["keys", "list", "--config", configFile]);
    expect(listed.code, listed.stderr).toBe(0);
    for (const [id, scope] of Object.entries(scopes))
      expect(listed.stdout).toMatch(new RegExp(`${id}.*${scope}`));
  });

  it("refuses an unknown scope naming the ones there are (exit 2)", () => {
    const bad = aiorch(["keys", "create", "--config", configFile, "--name", "x", "--scope", "root"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--scope "root" is not a scope; use inference, read, admin');
  });
});
