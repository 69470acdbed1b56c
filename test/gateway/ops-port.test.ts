/**
 * The gateway process and its ops port: `/metrics`, `/healthz`, `/readyz` on `--metrics-port`, never on the
 * public port; started while Redis is down it serves the ops port, logs a line per attempt, answers 503 on
 * /readyz, and becomes ready by itself once Redis answers. A real `aiorch gateway` and a private redis-server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpsServer, type Readiness } from "../../gateway/app";
import { GatewayMetrics } from "../../gateway/metrics";
import { freePort, type PrivateRedis, startPrivateRedis } from "../private-redis";
import { testRuntimeConfig } from "./harness";

const ROOT = join(__dirname, "..", "..");
const PASSWORD = `pw-${randomBytes(6).toString("hex")}`;
let dir: string;
let configFile: string;
const children: ChildProcess[] = [];
const servers: PrivateRedis[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "aiorch-ops-"));
  configFile = join(dir, "runtime.json");
  writeFileSync(
    configFile,
    JSON.stringify(testRuntimeConfig("http://127.0.0.1:9/v1", `o${randomBytes(4).toString("hex")}:`)),
  );
});
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** `aiorch gateway` on free ports against a Redis URL (with a password); its stderr collected. */
function startGatewayProcess(redisPort: number) {
  const child = spawn(
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
      "--host",
      "127.0.0.1",
    ],
    {
      env: { ...process.env, REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${redisPort}` },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  children.push(child);
  let log = "";
  child.stderr!.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  /** The first match of `pattern` in the log, waiting for it. */
  const line = async (pattern: RegExp, timeoutMs = 8_000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(log);
      if (match) return match;
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${log}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} in: ${log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { child, line, exited, log: () => log };
}

describe("gateway ops port", () => {
  it("waits for Redis with a line per attempt and /readyz 503, then serves; /metrics only on the ops port", async () => {
    const redisPort = await freePort();
    const gateway = startGatewayProcess(redisPort);
    const ops = (await gateway.line(/\/readyz on (http:\/\/\S+)/))[1]!;

    // Redis down: alive, not ready, and saying why, with the URL but never the password
    const waiting = await gateway.line(/gateway: waiting for Redis .*\n/);
    expect(waiting[0].trim()).toMatch(
      new RegExp(
        `^gateway: waiting for Redis at redis://127\\.0\\.0\\.1:${redisPort} \\(attempt 1, last error: connect ECONNREFUSED 127\\.0\\.0\\.1:${redisPort}\\); next attempt in 0\\.5 s, /readyz answers 503 until Redis answers$`,
      ),
    );
    expect((await fetch(`${ops}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${ops}/readyz`);
    expect(notReady.status).toBe(503);
    const body = (await notReady.json()) as { status: string; reason: string };
    expect(body.status).toBe("not ready");
    expect(body.reason).toMatch(
      new RegExp(
        `^waiting for Redis at redis://127\\.0\\.0\\.1:${redisPort} \\(attempt \\d+, last error: connect ECONNREFUSED`,
      ),
    );
    expect(await (await fetch(`${ops}/metrics`)).text()).toContain("aiorch_requests_total");
    await gateway.line(/attempt 2,/);

    // Redis appears: the gateway finds it on its next attempt (at most 2 s later) and starts serving
    servers.push(await startPrivateRedis(redisPort, PASSWORD));
    const address = (await gateway.line(/listening on (http:\/\/\S+)/))[1]!;
    expect(gateway.log()).toMatch(
      new RegExp(`gateway: Redis at redis://127\\.0\\.0\\.1:${redisPort} answered after \\d+ attempts`),
    );
    const ready = await fetch(`${ops}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });

    // the public port: the API, and no ops paths
    expect((await fetch(`${address}/v1/models`)).status).toBe(401);
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      const response = await fetch(`${address}${path}`);
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unknown_url");
    }
    expect(gateway.log()).not.toContain(PASSWORD);

    gateway.child.kill("SIGTERM");
    expect(await gateway.exited).toBe(0);
  }, 20_000);

  it("exits 0 on SIGTERM while it still waits for Redis", async () => {
    const gateway = startGatewayProcess(await freePort());
    const ops = (await gateway.line(/\/readyz on (http:\/\/\S+)/))[1]!;
    await gateway.line(/gateway: waiting for Redis/);
    expect((await fetch(`${ops}/readyz`)).status).toBe(503);
    const stoppedAt = Date.now();
    gateway.child.kill("SIGTERM");
    expect(await gateway.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(2_000);
    await expect(fetch(`${ops}/healthz`)).rejects.toThrow();
  }, 20_000);
});

describe("buildOpsServer", () => {
  it("serves the registry on /metrics, 200 on /healthz, and /readyz from the readiness it is given", async () => {
    const metrics = new GatewayMetrics(new Set(["chat"]), { defaultMetrics: false });
    metrics.requests.inc({ model: "chat", variant: "", status: "200" });
    let state: Readiness = { ready: false, reason: "waiting for Redis at redis://redis:6379 (attempt 2, …)" };
    const ops = buildOpsServer({ metrics, readiness: async () => state });
    try {
      const scraped = await ops.inject({ method: "GET", url: "/metrics" });
      expect(scraped.statusCode).toBe(200);
      expect(scraped.headers["content-type"]).toBe(metrics.registry.contentType);
      expect(scraped.body).toMatch(/aiorch_requests_total\{model="chat",variant="",status="200"\} 1/);
      expect((await ops.inject({ method: "GET", url: "/healthz" })).json()).toEqual({ status: "ok" });

      const waiting = await ops.inject({ method: "GET", url: "/readyz" });
      expect(waiting.statusCode).toBe(503);
      expect(waiting.json()).toEqual({ status: "not ready", reason: state.reason });
      state = { ready: true };
      const ready = await ops.inject({ method: "GET", url: "/readyz" });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: "ready" });

      expect((await ops.inject({ method: "GET", url: "/v1/models" })).statusCode).toBe(404);
    } finally {
      await ops.close();
    }
  });

  it("answers 503 when the readiness check itself fails", async () => {
    const ops = buildOpsServer({
      metrics: new GatewayMetrics(new Set(), { defaultMetrics: false }),
      readiness: () => Promise.reject(new Error("boom")),
    });
    const response = await ops.inject({ method: "GET", url: "/readyz" });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ status: "not ready", reason: "readiness check failed: boom" });
    await ops.close();
  });
});
