/**
 * Backups in S3-compatible object storage (Hetzner Object Storage by default), through the official AWS SDK
 * (`@aws-sdk/client-s3`: PutObject, GetObject, ListObjectsV2, DeleteObjects).
 *
 * Rules:
 * - Objects are `<prefix><stack>/<backup id>.json`; ids sort by time, so a listing is in time order.
 * - Credentials come from the environment only (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, the AWS SDK's
 *   standard names; in the cluster a Secret sets them from the stack's `backupAccessKeyId` /
 *   `backupSecretAccessKey`). They are never printed: errors name the endpoint, bucket and key, never a secret.
 * - Addressing: virtual-hosted style (the SDK's default; Hetzner serves buckets as
 *   `https://<bucket>.<location>.your-objectstorage.com`, as public object URLs such as
 *   `https://hc-cdn.hel1.your-objectstorage.com/…` show), path style only for an endpoint whose host cannot
 *   carry a bucket subdomain (an IP address or localhost: a test server, a MinIO on the node).
 * - Signing region: for `<location>.your-objectstorage.com` the location (fsn1, nbg1, hel1); public clients of
 *   Hetzner Object Storage sign that way (FluentStorage's Hetzner provider takes the location as the region).
 *   Not confirmed from a Hetzner page: the search index had only Hetzner's Object Storage FAQ. Otherwise
 *   us-east-1, what most S3-compatible servers accept.
 * - Checksums only when an operation requires them (`requestChecksumCalculation: "WHEN_REQUIRED"`, an S3Client
 *   option): the SDK's newer default checksum headers are an AWS extension other servers may not know.
 * - Retention: after a backup, objects of the stack older than `retentionDays` are deleted, never the newest.
 */

import { isIP } from "node:net";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";

export interface BackupTarget {
  /** S3 endpoint URL, e.g. https://fsn1.your-objectstorage.com */
  readonly endpoint: string;
  readonly bucket: string;
  /** Key prefix inside the bucket, e.g. `aiorch/` (may be empty). */
  readonly prefix: string;
}

export interface StoredBackup {
  readonly url: string;
  readonly key: string;
  readonly bytes: number;
  readonly lastModified: Date;
}

/** Object storage could not be reached or refused; the message names where and why, never a credential. */
export class BackupStorageError extends Error {
  override name = "BackupStorageError";
}

export const HETZNER_ENDPOINT = /^([a-z]+\d+)\.your-objectstorage\.com$/;

/** `s3://bucket/key` → its parts. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(url);
  if (!match) throw new BackupStorageError(`"${url}" is not an s3://BUCKET/KEY address of a backup`);
  return { bucket: match[1]!, key: match[2]! };
}

export const s3Url = (bucket: string, key: string) => `s3://${bucket}/${key}`;

/** Object key of a backup. */
export const backupKey = (target: BackupTarget, stack: string, id: string) =>
  `${target.prefix}${stack}/${id}.json`;

/** Client settings for an endpoint: signing region and addressing style (see the header). */
export function clientSettings(endpoint: string): { region: string; forcePathStyle: boolean } {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    throw new BackupStorageError(
      `backup endpoint "${endpoint}" is not a URL; write e.g. https://fsn1.your-objectstorage.com`,
    );
  }
  const bare = host.replace(/^\[|\]$/g, "");
  return {
    region: HETZNER_ENDPOINT.exec(host)?.[1] ?? "us-east-1",
    forcePathStyle: isIP(bare) !== 0 || host === "localhost",
  };
}

/** Credentials from the environment, or a clear error naming the variables to set. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): { accessKeyId: string; secretAccessKey: string } {
  const accessKeyId = env.AWS_ACCESS_KEY_ID?.trim();
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY?.trim();
  if (!accessKeyId || !secretAccessKey)
    throw new BackupStorageError(
      "object storage credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the bucket's access key; in the cluster the stack's backupAccessKeyId / backupSecretAccessKey secrets)",
    );
  return { accessKeyId, secretAccessKey };
}

/** Which backups retention deletes: older than `retentionDays`, never the newest one. */
export function expiredBackups(
  stored: readonly StoredBackup[],
  nowMs: number,
  retentionDays: number,
): StoredBackup[] {
  const newest = [...stored].sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime())[0];
  const cutoff = nowMs - retentionDays * 86_400_000;
  return stored.filter((b) => b !== newest && b.lastModified.getTime() < cutoff);
}

export class BackupStorage {
  private readonly client: S3Client;

  constructor(
    readonly target: BackupTarget,
    env: NodeJS.ProcessEnv,
  ) {
    this.client = new S3Client({
      endpoint: target.endpoint,
      ...clientSettings(target.endpoint),
      credentials: credentialsFromEnv(env),
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 3,
    });
  }

  close(): void {
    this.client.destroy();
  }

  private failure(what: string, where: string, error: unknown): BackupStorageError {
    const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : "";
    return new BackupStorageError(
      `cannot ${what} ${where} at ${this.target.endpoint}: ${e.name ?? "Error"}${status}: ${e.message ?? String(error)}`,
    );
  }

  /** Upload a backup document; returns its s3:// address. */
  async put(key: string, text: string): Promise<string> {
    const url = s3Url(this.target.bucket, key);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.target.bucket,
          Key: key,
          Body: text,
          ContentType: "application/json",
        }),
      );
    } catch (error) {
      throw this.failure("write", url, error);
    }
    return url;
  }

  /** Download a backup document by its s3:// address (any bucket the credentials can read). */
  async get(url: string): Promise<string> {
    const { bucket, key } = parseS3Url(url);
    try {
      const answer = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!answer.Body) throw new Error("empty body");
      return await answer.Body.transformToString("utf8");
    } catch (error) {
      throw this.failure("read", url, error);
    }
  }

  /** The stack's backups, oldest first. */
  async list(stack: string): Promise<StoredBackup[]> {
    const prefix = `${this.target.prefix}${stack}/`;
    const out: StoredBackup[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.target.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) {
          if (!object.Key?.endsWith(".json")) continue;
          out.push({
            url: s3Url(this.target.bucket, object.Key),
            key: object.Key,
            bytes: object.Size ?? 0,
            lastModified: object.LastModified ?? new Date(0),
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (error) {
      throw this.failure("list", s3Url(this.target.bucket, prefix), error);
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(backups: readonly StoredBackup[]): Promise<void> {
    if (backups.length === 0) return;
    try {
      const answer = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.target.bucket,
          Delete: { Objects: backups.map((b) => ({ Key: b.key })), Quiet: true },
        }),
      );
      const failed = answer.Errors?.[0];
      if (failed) throw new Error(`${failed.Key}: ${failed.Code} ${failed.Message ?? ""}`);
    } catch (error) {
      throw this.failure("delete old backups in", s3Url(this.target.bucket, this.target.prefix), error);
    }
  }
}
