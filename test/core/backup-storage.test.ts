/** Backups in S3-compatible storage, against an s3rver the test starts; addressing, credentials, retention. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BackupStorage,
  backupKey,
  clientSettings,
  credentialsFromEnv,
  expiredBackups,
  parseS3Url,
  type StoredBackup,
} from "../../core/backup-storage";
import { type FakeS3, S3RVER_CREDENTIALS, startFakeS3 } from "../fakes/s3-server";

let s3: FakeS3;
beforeAll(async () => {
  s3 = await startFakeS3();
});
afterAll(async () => {
  await s3?.close();
});

describe("object storage settings", () => {
  it("sign Hetzner endpoints for their location, virtual-hosted; a local server path-style", () => {
    expect(clientSettings("https://fsn1.your-objectstorage.com")).toEqual({
      region: "fsn1",
      forcePathStyle: false,
    });
    expect(clientSettings("https://hel1.your-objectstorage.com/")).toEqual({
      region: "hel1",
      forcePathStyle: false,
    });
    expect(clientSettings("http://127.0.0.1:4568")).toEqual({ region: "us-east-1", forcePathStyle: true });
    expect(clientSettings("http://localhost:9000").forcePathStyle).toBe(true);
    expect(() => clientSettings("fsn1.your-objectstorage.com")).toThrow(/is not a URL; write e.g. https:/);
  });

  it("take credentials from the environment and name the variables when they are missing, never a value", () => {
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" })).toEqual({
      accessKeyId: "a",
      secretAccessKey: "b",
    });
    expect(() => credentialsFromEnv({ AWS_ACCESS_KEY_ID: "id-only" })).toThrow(
      /set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
    expect(() => credentialsFromEnv({ AWS_ACCESS_KEY_ID: "id-only" })).not.toThrow(/id-only/);
  });

  it("parse s3:// addresses", () => {
    expect(parseS3Url("s3://aiorch-backups/aiorch/dev/b1.json")).toEqual({
      bucket: "aiorch-backups",
      key: "aiorch/dev/b1.json",
    });
    expect(() => parseS3Url("https://x/y")).toThrow(/not an s3:\/\/BUCKET\/KEY address/);
  });

  it("retention deletes what is older than its days, never the newest backup", () => {
    const day = 86_400_000;
    const now = Date.parse("2026-12-07T00:00:00Z");
    const at = (daysAgo: number, key: string): StoredBackup => ({
      url: `s3://b/${key}`,
      key,
      bytes: 1,
      lastModified: new Date(now - daysAgo * day),
    });
    const stored = [at(10, "a"), at(8, "b"), at(1, "c")];
    expect(expiredBackups(stored, now, 7).map((b) => b.key)).toEqual(["a", "b"]);
    expect(expiredBackups([at(30, "only")], now, 7)).toEqual([]);
  });
});

describe("against an S3-compatible server", () => {
  const target = () => ({ endpoint: s3.endpoint, bucket: s3.bucket, prefix: "aiorch/" });

  it("writes, lists, reads back and deletes backups", async () => {
    const storage = new BackupStorage(target(), S3RVER_CREDENTIALS);
    try {
      const url = await storage.put(backupKey(target(), "dev", "20261207T000000Z-aaaaaa"), '{"a":1}\n');
      expect(url).toBe(`s3://${s3.bucket}/aiorch/dev/20261207T000000Z-aaaaaa.json`);
      await storage.put(backupKey(target(), "dev", "20261207T010000Z-bbbbbb"), '{"b":2}\n');
      await storage.put(backupKey(target(), "prod", "20261207T010000Z-cccccc"), "{}\n");
      const listed = await storage.list("dev");
      expect(listed.map((b) => b.key)).toEqual([
        "aiorch/dev/20261207T000000Z-aaaaaa.json",
        "aiorch/dev/20261207T010000Z-bbbbbb.json",
      ]);
      expect(listed[0]!.bytes).toBe(8);
      expect(await storage.get(url)).toBe('{"a":1}\n');
      await storage.delete([listed[0]!]);
      expect((await storage.list("dev")).map((b) => b.key)).toEqual([
        "aiorch/dev/20261207T010000Z-bbbbbb.json",
      ]);
    } finally {
      storage.close();
    }
  });

  it("fails a write with wrong credentials or a missing bucket, naming where and never the secret", async () => {
    // s3rver checks the access key id only (its SigV4 check is unimplemented: lib/middleware/authentication.js)
    const wrong = new BackupStorage(target(), {
      AWS_ACCESS_KEY_ID: "nobody",
      AWS_SECRET_ACCESS_KEY: "not-the-secret-4711",
    });
    try {
      const error = await wrong.put("aiorch/dev/x.json", "{}").catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(
        new RegExp(`cannot write s3://${s3.bucket}/aiorch/dev/x.json at ${s3.endpoint}: InvalidAccessKeyId`),
      );
      expect((error as Error).message).not.toContain("not-the-secret-4711");
    } finally {
      wrong.close();
    }
    const missing = new BackupStorage({ ...target(), bucket: "no-such-bucket" }, S3RVER_CREDENTIALS);
    try {
      await expect(missing.put("k.json", "{}")).rejects.toThrow(
        /cannot write s3:\/\/no-such-bucket\/k.json .*NoSuchBucket/,
      );
    } finally {
      missing.close();
    }
  });
});
