/**
 * `aiorch backup now|list` and `aiorch restore` as a user runs them (in this process, so the S3-compatible
 * server the test starts keeps answering): real Redis, an s3rver, the stack's key ring.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
// main loads each command's module with require() when it runs: teach require TypeScript, as bin/aiorch.js does
import "tsx/cjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main";
import { ApiKeyStore, hashApiKey } from "../../core/api-keys";
import { BackupStorage } from "../../core/backup-storage";
import { newKeyRingEntry } from "../../core/envelope";
import { redisKeys } from "../../core/redis-keys";
import { type FakeS3, S3RVER_CREDENTIALS, startFakeS3 } from "../fakes/s3-server";
import { REDIS_URL, testRuntimeConfig } from "../gateway/harness";

const prefix = `cb${randomBytes(4).toString("hex")}:`;
const keys = redisKeys(prefix);
const redis = new Redis(REDIS_URL);
const ring = newKeyRingEntry("k1");
let s3: FakeS3;
let dir: string;
let configFile: string;
let objectPrefix: string;

beforeAll(async () => {
  s3 = await startFakeS3();
  dir = mkdtempSync(join(tmpdir(), "aiorch-backup-"));
  configFile = join(dir, "runtime.json");
  objectPrefix = `t${randomBytes(3).toString("hex")}/`;
  const config = testRuntimeConfig("http://127.0.0.1:9", prefix, {
    security: "{ encryptQueued: true }",
    backup: `{ endpoint: "${s3.endpoint}", bucket: ${s3.bucket}, prefix: "${objectPrefix}", retentionDays: 7 }`,
  });
  writeFileSync(configFile, JSON.stringify(config));
});
afterAll(async () => {
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
  await wipe();
  redis.disconnect();
});

async function wipe() {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
}

/** `aiorch ARGS` in this process with ENV over a clean environment; output captured. */
async function run(args: readonly string[], env: Record<string, string | undefined> = {}) {
  const saved = { ...process.env };
  for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AIORCH_ENCRYPTION_KEYS"])
    delete process.env[name];
  Object.assign(process.env, { REDIS_URL, ...S3RVER_CREDENTIALS, AIORCH_ENCRYPTION_KEYS: ring }, env);
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete process.env[name];
  let stdout = "";
  let stderr = "";
  try {
    const code = await main(args, {
      out: (t) => {
        stdout += t;
      },
      err: (t) => {
        stderr += t;
      },
    });
    return { code, stdout, stderr };
  } finally {
    process.env = saved;
  }
}

const snapshot = async () => {
  const all = (await redis.keys(`${prefix}*`)).sort();
  return { all, audit: await redis.xlen(keys.auditStream) };
};

describe("aiorch backup and restore", () => {
  let rawKey: string;
  let url: string;

  it("backup now prints the object's address; list shows it; the last-backup marker is written", async () => {
    const created = await run(["keys", "create", "--config", configFile, "--name", "ci", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    rawKey = (JSON.parse(created.stdout) as { key: string }).key;

    const backedUp = await run(["backup", "now", "--config", configFile]);
    expect(backedUp.code, backedUp.stderr).toBe(0);
    url = backedUp.stdout.trim();
    expect(url).toMatch(
      new RegExp(`^s3://${s3.bucket}/${objectPrefix}test/\\d{8}T\\d{6}Z-[0-9a-f]{6}\\.json$`),
    );
    expect(backedUp.stderr).toMatch(/backed up \d+ keys of stack test \(sealed with key "k1"/);
    expect(await redis.hget(keys.lastBackup, "url")).toBe(url);

    const listed = await run(["backup", "list", "--config", configFile]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(url);
  });

  it("refuses to back up in clear when the stack encrypts, or without credentials, naming what to set", async () => {
    const noRing = await run(["backup", "now", "--config", configFile], {
      AIORCH_ENCRYPTION_KEYS: undefined,
    });
    expect(noRing.code).toBe(2);
    expect(noRing.stderr).toMatch(/security.encryptQueued is on but AIORCH_ENCRYPTION_KEYS is not set/);
    const noCredentials = await run(["backup", "now", "--config", configFile], {
      AWS_SECRET_ACCESS_KEY: undefined,
    });
    expect(noCredentials.code).toBe(2);
    expect(noCredentials.stderr).toMatch(/set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  });

  it("a backup that cannot be written fails with exit 2 and leaves the last-backup marker alone", async () => {
    const before = await redis.hgetall(keys.lastBackup);
    const failed = await run(["backup", "now", "--config", configFile], {
      AWS_ACCESS_KEY_ID: "nobody",
      AWS_SECRET_ACCESS_KEY: "secret-4711-xyz",
    });
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/cannot write s3:\/\/.* InvalidAccessKeyId/);
    expect(failed.stderr).not.toContain("secret-4711-xyz");
    expect(await redis.hgetall(keys.lastBackup)).toEqual(before);
  });

  it("refuses a Redis that holds stack data, untouched", async () => {
    const before = await snapshot();
    const refused = await run(["restore", "--from", url, "--config", configFile]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already holds \d+ key\(s\) of stack data .* pass --force/);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a corrupted backup and one sealed with a foreign key, leaving Redis untouched", async () => {
    await wipe();
    const storage = new BackupStorage(
      { endpoint: s3.endpoint, bucket: s3.bucket, prefix: objectPrefix },
      S3RVER_CREDENTIALS,
    );
    try {
      const doc = JSON.parse(await storage.get(url)) as { payload: string };
      const corrupted = { ...doc, payload: `${doc.payload.slice(0, 40)}${doc.payload.slice(41)}x` };
      const corruptedUrl = await storage.put(`${objectPrefix}test/corrupted.json`, JSON.stringify(corrupted));
      const bad = await run(["restore", "--from", corruptedUrl, "--config", configFile]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/does not open with key "k1": it was corrupted or altered/);
      expect(await redis.keys(`${prefix}*`)).toEqual([]);

      const foreign = await run(["restore", "--from", url, "--config", configFile], {
        AIORCH_ENCRYPTION_KEYS: newKeyRingEntry("other"),
      });
      expect(foreign.code).toBe(2);
      expect(foreign.stderr).toMatch(/sealed with key "k1", which the key ring .* does not hold/);
      const sameIdOtherKey = await run(["restore", "--from", url, "--config", configFile], {
        AIORCH_ENCRYPTION_KEYS: newKeyRingEntry("k1"),
      });
      expect(sameIdOtherKey.code).toBe(2);
      expect(sameIdOtherKey.stderr).toMatch(/does not open with key "k1"/);
      expect(await redis.keys(`${prefix}*`)).toEqual([]);
      await storage.delete([
        { url: corruptedUrl, key: `${objectPrefix}test/corrupted.json`, bytes: 0, lastModified: new Date() },
      ]);
    } finally {
      storage.close();
    }
  });

  it("restores into an empty Redis: the key works again and audit verify passes with the restore listed", async () => {
    await wipe();
    const restored = await run(["restore", "--from", url, "--config", configFile, "--actor", "ops"]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/restored backup \S+ \(taken .*\) into stack test: \d+ keys/);
    expect(await new ApiKeyStore(redis, keys).byHash(hashApiKey(rawKey))).toMatchObject({ name: "ci" });

    const verified = await run(["audit", "verify", "--config", configFile]);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toMatch(/audit trail intact: 2 entries/);
    expect(verified.stdout).toMatch(/restored at \S+ by ops: restored from backup \S+ taken /);
    const listed = await run(["audit", "list", "--config", configFile, "--json"]);
    const entries = JSON.parse(listed.stdout) as { action: string; actor: string; reason: string }[];
    expect(entries.map((e) => e.action)).toEqual(["key.created", "backup.restored"]);
    expect(entries[1]!.actor).toBe("ops");
    expect(entries[1]!.reason).toMatch(/^restored from backup \S+ taken .*; actions between then and now/);
  });

  it("--at restores the newest backup taken at or before a time, and says when there is none", async () => {
    await wipe();
    const at = await run([
      "restore",
      "--at",
      new Date(Date.now() + 60_000).toISOString(),
      "--config",
      configFile,
    ]);
    expect(at.code, at.stderr).toBe(0);
    expect(at.stdout).toContain(`restored backup ${url.match(/\/([^/]+)\.json$/)![1]}`);
    const none = await run(["restore", "--at", "2001-01-01", "--config", configFile]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no backup of this stack was taken at or before 2001-01-01/);
    expect((await run(["restore", "--at", "yesterday", "--config", configFile])).stderr).toMatch(
      /--at "yesterday" is not a time/,
    );
  });

  it("answers usage errors with exit 2: no --from, both --from and --at, a non-s3 address", async () => {
    expect((await run(["restore", "--config", configFile])).stderr).toMatch(
      /restore needs --from s3:\/\/BUCKET\/KEY/,
    );
    expect((await run(["restore", "--from", "https://x/y", "--config", configFile])).code).toBe(2);
    expect(
      (await run(["restore", "--from", url, "--at", "2026-12-07", "--config", configFile])).stderr,
    ).toMatch(/or --at TIME .*not both/);
  });
});
