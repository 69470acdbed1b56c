/**
 * Layer 2 of the security model: Redis serves TLS only and admits only clients with a certificate from the
 * stack's CA — run against a real redis-server with TLS and client authentication.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisClientOptions, redisConnectionFromEnv } from "../../core/config";

const dir = mkdtempSync(join(tmpdir(), "aiorch-tls-"));
let server: ChildProcess;
let port = 0;
const file = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function issue(name: string, cn: string, usage: string): void {
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`);
  openssl("req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`);
  writeFileSync(
    file(`${name}.ext`),
    `subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=${usage}\n`,
  );
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "90",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.crt`,
  );
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port: p } = s.address() as { port: number };
      s.close(() => resolve(p));
    });
  });

const envFor = (client: string | undefined) => ({
  REDIS_URL: `rediss://127.0.0.1:${port}`,
  REDIS_TLS_CA_FILE: file("ca.crt"),
  ...(client
    ? { REDIS_TLS_CERT_FILE: file(`${client}.crt`), REDIS_TLS_KEY_FILE: file(`${client}.key`) }
    : {}),
});
const read = (path: string) => readFileSync(path, "utf8");

async function ping(env: Record<string, string>): Promise<string> {
  const connection = redisConnectionFromEnv(env, read);
  const redis = new Redis(connection.url, {
    ...redisClientOptions(connection),
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    lazyConnect: true,
    connectTimeout: 2_000,
  });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    return await redis.ping();
  } finally {
    redis.disconnect();
  }
}

/** Serial number of the certificate the server presents right now. */
const presentedSerial = () =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(
      {
        host: "127.0.0.1",
        port,
        ca: read(file("ca.crt")),
        cert: read(file("gateway.crt")),
        key: read(file("gateway.key")),
        servername: "localhost",
      },
      () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.end();
      },
    );
    socket.on("error", reject);
  });

beforeAll(async () => {
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key");
  openssl(
    "req",
    "-x509",
    "-new",
    "-key",
    "ca.key",
    "-subj",
    "/CN=aiorch-test-ca",
    "-days",
    "3650",
    "-out",
    "ca.crt",
  );
  issue("redis", "redis", "serverAuth,clientAuth");
  issue("gateway", "gateway", "clientAuth");
  // a client certificate from another CA
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "rogue.key");
  openssl(
    "req",
    "-x509",
    "-new",
    "-key",
    "rogue.key",
    "-subj",
    "/CN=rogue",
    "-days",
    "30",
    "-out",
    "rogue.crt",
  );
  port = await freePort();
  server = spawn(
    "redis-server",
    [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      file("redis.crt"),
      "--tls-key-file",
      file("redis.key"),
      "--tls-ca-cert-file",
      file("ca.crt"),
      "--tls-auth-clients",
      "yes",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    { stdio: "ignore" },
  );
  for (let i = 0; i < 100; i++) {
    try {
      if ((await ping(envFor("gateway"))) === "PONG") return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("redis-server with TLS did not come up (is it built with TLS?)");
});

afterAll(() => {
  server?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("Redis with mTLS", () => {
  it("admits a client presenting a certificate from the stack's CA", async () => {
    expect(await ping(envFor("gateway"))).toBe("PONG");
  });

  it("refuses a client without a certificate, with one from another CA, and plain TCP", async () => {
    await expect(ping(envFor(undefined))).rejects.toThrow();
    writeFileSync(file("rogue-only.key"), read(file("rogue.key")));
    await expect(
      ping({
        ...envFor(undefined),
        REDIS_TLS_CERT_FILE: file("rogue.crt"),
        REDIS_TLS_KEY_FILE: file("rogue-only.key"),
      }),
    ).rejects.toThrow();
    const plain = new Redis(`redis://127.0.0.1:${port}`, {
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
      connectTimeout: 1_000,
    });
    plain.on("error", () => undefined);
    await expect(plain.connect().then(() => plain.ping())).rejects.toThrow();
    plain.disconnect();
  });

  it("the runtime's connection settings refuse half-configured TLS", () => {
    expect(() =>
      redisConnectionFromEnv({ REDIS_URL: "redis://x:6379", REDIS_TLS_CA_FILE: "/ca" }, read),
    ).toThrow(/must be rediss:\/\//);
    expect(() => redisConnectionFromEnv({ REDIS_URL: "rediss://x:6379" }, read)).toThrow(
      /REDIS_TLS_CA_FILE is not set/,
    );
    expect(() =>
      redisConnectionFromEnv(
        { REDIS_URL: "rediss://x", REDIS_TLS_CA_FILE: "/ca", REDIS_TLS_CERT_FILE: "/c" },
        () => "",
      ),
    ).toThrow(/go together/);
  });

  it("a renewed server certificate is picked up without a restart; connections keep working", async () => {
    const before = await presentedSerial();
    const longLived = redisConnectionFromEnv(envFor("gateway"), read);
    const client = new Redis(longLived.url, { ...redisClientOptions(longLived), maxRetriesPerRequest: 1 });
    await client.set("k", "v");
    issue("redis", "redis", "serverAuth,clientAuth"); // renewal: new key and certificate in the same files
    // what the runtime's reload does after the Secret volume updated: re-read the files, no restart
    await client.config("SET", "tls-cert-file", file("redis.crt"), "tls-key-file", file("redis.key"));
    expect(await presentedSerial()).not.toBe(before);
    expect(await client.get("k")).toBe("v"); // the existing connection never dropped
    expect(await ping(envFor("gateway"))).toBe("PONG"); // and new ones verify the new certificate
    client.disconnect();
  });
});
