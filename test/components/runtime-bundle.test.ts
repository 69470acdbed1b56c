/**
 * The bundles the cluster runs: small enough for a ConfigMap, and — unpacked the way the init container does —
 * real programs that start on a plain Node with nothing but the bundle.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  bundleProcess,
  CONFIGMAP_LIMIT_BYTES,
  type RuntimeProcess,
  unpackCommand,
} from "../../components/runtime-bundle";
import { GATEWAY_NODE_FLAGS, GATEWAY_PROCESS_ENV } from "../../core/process-env";
import { testRuntimeConfig } from "../gateway/harness";

const dir = mkdtempSync(join(tmpdir(), "aiorch-bundle-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Unpack with the init container's own command, pointed at a temp folder instead of /opt/aiorch. */
function unpack(which: RuntimeProcess): string {
  const bundle = bundleProcess(which);
  const [node, flag, script] = unpackCommand(bundle) as [string, string, string];
  expect(node).toBe("node");
  writeFileSync(join(dir, bundle.fileName), bundle.compressed);
  const local = script.replaceAll("/opt/aiorch/bundle", dir).replaceAll("/opt/aiorch/app", dir);
  const result = spawnSync(process.execPath, [flag, local], { encoding: "utf8" });
  expect(result.status, result.stderr).toBe(0);
  return join(dir, `${which}.js`);
}

/**
 * Start a bundle in its own folder (no node_modules anywhere near), with the node flags and environment its
 * Deployment gives it, and wait for its "listening" line; resolves with the pattern's groups.
 */
function start(
  file: string,
  args: string[],
  pattern: RegExp,
  deployment: { nodeFlags?: readonly string[]; env?: Readonly<Record<string, string>> } = {},
): Promise<string[]> {
  const child = spawn(process.execPath, [...(deployment.nodeFlags ?? []), file, ...args], {
    cwd: dir,
    env: {
      ...deployment.env,
      PATH: process.env.PATH,
      REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
      NODE_PATH: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stderr!.on("data", (d: Buffer) => {
      seen += d.toString();
      const match = pattern.exec(seen);
      if (match) resolve(match.slice(1));
    });
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${seen}`)));
    setTimeout(() => reject(new Error(`no start line: ${seen}`)), 15_000);
  });
}

describe("runtime bundles", () => {
  it.each(["gateway", "controller"] as const)(
    "%s: its ConfigMap object stays well under the 1 MiB limit",
    (which) => {
      const bundle = bundleProcess(which);
      // what the API server stores: the object with its base64 binaryData
      const object = JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          name: `${which}-bundle-code-0123abcd`,
          namespace: "ai-orchestrator",
          annotations: { "aiorch.dev/bundle-sha256": bundle.sha256 },
        },
        binaryData: { [bundle.fileName]: bundle.compressed.toString("base64") },
      });
      expect(Buffer.byteLength(object)).toBeLessThan(CONFIGMAP_LIMIT_BYTES * 0.75);
      expect(bundle.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(bundleProcess(which)).toBe(bundle); // built once per process
    },
  );

  it("the gateway bundle runs on plain Node, with the Deployment's node flags and environment, and serves", async () => {
    const file = unpack("gateway");
    const config = join(dir, "gateway-runtime.json");
    writeFileSync(
      config,
      JSON.stringify(testRuntimeConfig("http://127.0.0.1:9/v1", `b${randomBytes(3).toString("hex")}:`)),
    );
    const [ops, address] = await start(
      file,
      ["--config", config, "--port", "0", "--metrics-port", "0", "--host", "127.0.0.1"],
      /\/readyz on (http:\/\/\S+)[\s\S]*listening on (http:\/\/\S+)/,
      { nodeFlags: GATEWAY_NODE_FLAGS, env: GATEWAY_PROCESS_ENV },
    );
    const health = await fetch(`${ops}/healthz`);
    expect(health.status).toBe(200);
    expect((await fetch(`${ops}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${ops}/metrics`)).text()).toContain("aiorch_requests_total");
    expect((await fetch(`${address}/metrics`)).status).toBe(404);
    const unauthorized = await fetch(`${address}/v1/models`);
    expect(unauthorized.status).toBe(401);
  });

  it("the controller bundle runs on plain Node and serves its metrics", async () => {
    const file = unpack("controller");
    const config = join(dir, "controller-runtime.json");
    writeFileSync(
      config,
      JSON.stringify(testRuntimeConfig("http://127.0.0.1:9/v1", `b${randomBytes(3).toString("hex")}:`)),
    );
    const [port] = await start(
      file,
      ["--config", config, "--port", "0", "--host", "127.0.0.1"],
      /metrics on 127\.0\.0\.1:(\d+)/,
    );
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain("aiorch_workers");
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });
});
