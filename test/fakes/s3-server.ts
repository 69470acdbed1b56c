/**
 * An S3-compatible server for tests: `s3rver` (npm) on a free port of 127.0.0.1 with one bucket. Its account is
 * `S3RVER` / `S3RVER` (its README, "Supported clients"); of a SigV4 request it checks the access key id only
 * (`lib/middleware/authentication.js`: "Signature version 4 calculation is unimplemented").
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../private-redis";

/** The part of s3rver's API the tests use (the package ships no types). */
interface S3rverInstance {
  run(): Promise<unknown>;
  close(): Promise<void>;
}
type S3rverClass = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

export const S3RVER_CREDENTIALS = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" } as const;

export interface FakeS3 {
  readonly endpoint: string;
  readonly bucket: string;
  close(): Promise<void>;
}

export async function startFakeS3(bucket = "aiorch-backups"): Promise<FakeS3> {
  const S3rver = require("s3rver") as S3rverClass;
  const directory = mkdtempSync(join(tmpdir(), "s3rver-"));
  const port = await freePort();
  const server = new S3rver({
    address: "127.0.0.1",
    port,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    close: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
