/** The backup document: every Redis key family classified; sealing, checksums and what a restore refuses. */
import { describe, expect, it } from "vitest";
import {
  type BackupContent,
  backupHeader,
  backupId,
  familyOf,
  KEY_FAMILIES,
  openBackup,
  sealBackup,
} from "../../core/backup";
import { newKeyRingEntry, parseKeyRing } from "../../core/envelope";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";

const prefix = "bk:";
const keys = redisKeys(prefix);

/** One key of every family `RedisKeys` names (channels aside), with sample arguments (a model with braces too). */
function everyKey(k: RedisKeys): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(k) as [string, unknown][]) {
    if (name === "prefix" || name.endsWith("Channel")) continue;
    if (typeof value === "string") out[name] = value;
    else if (name === "rateBucket") out[name] = k.rateBucket("key_1", "tpm");
    else if (name === "jobResult") out[name] = k.jobResult("org/m{x}", "job_1");
    else if (name === "jobIdempotency") out[name] = k.jobIdempotency("org/m", "key_1:retry-7");
    else out[name] = (value as (arg: string) => string)(name === "spendMonth" ? "2026-12" : "2026-12-07");
  }
  // model-keyed families with a model name as the gateway sees it
  out.routes = k.routes("meta-llama/Llama-3.1-8B");
  out.variantWeights = k.variantWeights("chat");
  out.jobs = k.jobs("chat");
  out.queuedJobsOfModel = k.queuedJobsOfModel("chat");
  out.waiting = k.waiting("chat");
  out.inflight = k.inflight("chat");
  out.queuedJobsOfKey = k.queuedJobsOfKey("key_1");
  out.spendDay = k.spendDay("2026-12-07");
  out.apiKey = k.apiKey("ab".repeat(32));
  out.job = k.job("job_1");
  out.worker = k.worker("w-1");
  out.intent = k.intent("w-1");
  return out;
}

const content = (records: BackupContent["records"] = []): BackupContent => ({
  stack: "dev",
  prefix,
  takenAt: "2026-12-07T21:00:00.000Z",
  records,
  skipped: 0,
});

describe("key families", () => {
  it("claim every key RedisKeys names, each by its own family", () => {
    const all = everyKey(keys);
    expect(Object.keys(all).length).toBeGreaterThanOrEqual(24);
    for (const [name, key] of Object.entries(all)) {
      const family = familyOf(key.slice(prefix.length));
      expect(family?.name, `${name}: ${key}`).toBe(name);
    }
    // and every family is one RedisKeys has, with a reason
    for (const family of KEY_FAMILIES) {
      expect(all[family.name], family.name).toBeDefined();
      expect(family.why.length).toBeGreaterThan(10);
    }
  });

  it("keep what nothing else brings back and rebuild what live processes own", () => {
    const backedUp = KEY_FAMILIES.filter((f) => f.backedUp).map((f) => f.name);
    for (const name of [
      "apiKey",
      "apiKeyIds",
      "spendMonth",
      "auditStream",
      "worker",
      "jobs",
      "variantWeights",
    ])
      expect(backedUp).toContain(name);
    for (const name of ["rateBucket", "waiting", "inflight", "leaderLock", "scaleDecisions"])
      expect(backedUp).not.toContain(name);
  });

  it("claim nothing of another stack whose prefix extends this one", () => {
    expect(familyOf("other:apikey:abc")).toBeUndefined();
    expect(familyOf("apikey:abc:extra")).toBeUndefined();
  });
});

describe("backup documents", () => {
  const records: BackupContent["records"] = [
    { key: "apikeys", type: "hash", value: { key_1: "ab" } },
    { key: "jobs:key:{k}:queued", type: "zset", value: [["job_1", "1765141200000"]], expireAtMs: 1e13 },
  ];

  it("round-trip sealed with the ring's current key, and plain with a checksum", () => {
    const ring = parseKeyRing(`${newKeyRingEntry("k2")},${newKeyRingEntry("k1")}`)!;
    const sealed = sealBackup(content(records), "b1", ring);
    expect(sealed).not.toContain("key_1");
    expect(backupHeader(sealed)).toMatchObject({ id: "b1", stack: "dev", sealedWith: "k2" });
    expect(openBackup(sealed, ring).content).toEqual(content(records));
    const plain = sealBackup(content(records), "b2", undefined);
    expect(backupHeader(plain)).toMatchObject({ id: "b2", sealedWith: null });
    expect(openBackup(plain, undefined).content).toEqual(content(records));
  });

  it("refuse a foreign key, a missing ring, a corrupted payload and a swapped header, naming the problem", () => {
    const ring = parseKeyRing(newKeyRingEntry("k1"))!;
    const sealed = sealBackup(content(records), "b1", ring);
    const otherSameId = parseKeyRing(newKeyRingEntry("k1"))!;
    expect(() => openBackup(sealed, otherSameId)).toThrow(/does not open with key "k1".*different key/);
    expect(() => openBackup(sealed, parseKeyRing(newKeyRingEntry("k9")))).toThrow(
      /sealed with key "k1", which the key ring .* does not hold \(keys: k9\)/,
    );
    expect(() => openBackup(sealed, undefined)).toThrow(/set AIORCH_ENCRYPTION_KEYS/);
    const doc = JSON.parse(sealed) as { payload: string; stack: string };
    const flipped = { ...doc, payload: `${doc.payload.slice(0, -6)}AAAA${doc.payload.slice(-2)}` };
    expect(() => openBackup(JSON.stringify(flipped), ring)).toThrow(/corrupted or altered/);
    expect(() => openBackup(JSON.stringify({ ...doc, stack: "prod" }), ring)).toThrow(/corrupted or altered/);

    const plain = JSON.parse(sealBackup(content(records), "b2", undefined)) as { payload: string };
    const damaged = { ...plain, payload: `A${plain.payload.slice(1)}` };
    expect(() => openBackup(JSON.stringify(damaged), undefined)).toThrow(/corrupted: .* SHA-256/);
    expect(() => openBackup(JSON.stringify(plain), ring)).toThrow(/is not sealed, but this stack encrypts/);
    expect(() => openBackup("{", undefined, "s3://b/x")).toThrow(
      /s3:\/\/b\/x is not an aiorch backup \(not JSON\)/,
    );
    expect(() => openBackup('{"format":"other"}', undefined)).toThrow(/format: /);
  });

  it("refuse content with a key no backup keeps", () => {
    const bad = sealBackup(content([{ key: "leader", type: "string", value: "me" }]), "b3", undefined);
    expect(() => openBackup(bad, undefined)).toThrow(/holds key "leader", which is not one a backup keeps/);
  });

  it("get ids that sort by time", () => {
    expect(backupId(Date.parse("2026-12-07T21:53:16.123Z"), "abc123")).toBe("20261207T215316Z-abc123");
  });
});
