/** How the controller starts vLLM-Omni (the image engine) on instance providers: command, flags, TLS. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ENGINE_DOWNLOAD_DIR,
  engineLaunch,
  engineServesTls,
  TLS_DIR,
  type WorkerSpec,
} from "../../../controller/providers/types";
import { ENGINE_IMAGES } from "../../../core/config/schema";
import { createWorkerCertificate } from "../../../core/x509";

const spec: WorkerSpec = {
  workerId: "w-omni",
  ownerLabel: "o",
  model: "pics",
  source: "Tongyi-MAI/Z-Image-Turbo",
  engine: "vllm-omni",
  image: ENGINE_IMAGES["vllm-omni"],
  gpuCount: 1,
  engineArgs: ["--seed", "7"],
  port: 9000,
  workerToken: "tok-123456",
  env: { HF_TOKEN: "hf_abcdef" },
};

describe("engineLaunch: vllm-omni", () => {
  it("pins the vLLM-Omni image", () => {
    expect(ENGINE_IMAGES["vllm-omni"]).toBe("vllm/vllm-omni:v0.16.0");
  });

  it("runs `vllm serve <model> --omni` with vLLM's serve flags, the worker token as --api-key", () => {
    const launch = engineLaunch({ ...spec, revision: "abc123", maxModelLen: 4096, gpuCount: 2 });
    expect(launch.entrypoint).toBe("vllm");
    expect(launch.args).toEqual([
      "serve",
      "Tongyi-MAI/Z-Image-Turbo",
      "--omni",
      "--revision",
      "abc123",
      "--served-model-name",
      "pics",
      "--host",
      "0.0.0.0",
      "--port",
      "9000",
      "--api-key",
      "tok-123456",
      "--seed",
      "7",
    ]);
    // weights land on the instance's disk, through the mirror when there is one
    expect(launch.env).toEqual({ HF_HOME: `${ENGINE_DOWNLOAD_DIR}/hf` });
    expect(engineLaunch({ ...spec, weightCache: { mirrorUrl: "https://hf.example.com" } }).env).toMatchObject(
      { HF_ENDPOINT: "https://hf.example.com" },
    );
    expect(launch.authEnforced).toBe(true);
  });

  it("serves TLS: the start-up script writes the files and execs `vllm serve … --ssl-certfile … --ssl-keyfile …`", () => {
    expect(engineServesTls("vllm-omni")).toBe(true);
    const cert = createWorkerCertificate("w-omni");
    const launch = engineLaunch({ ...spec, tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
    expect(launch.entrypoint).toBe("/bin/sh");
    const dir = mkdtempSync(join(tmpdir(), "aiorch-omni-"));
    const seen = join(dir, "seen.txt");
    try {
      // a stand-in `vllm` that records what it was started with
      writeFileSync(join(dir, "vllm"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${seen}\n`, { mode: 0o755 });
      const tls = join(dir, "tls");
      const args = launch.args.map((a) => a.split(TLS_DIR).join(tls));
      execFileSync(launch.entrypoint!, args, { env: { PATH: `${dir}:${process.env.PATH}`, ...launch.env } });
      const out = readFileSync(seen, "utf8").trim().split("\n");
      expect(out.slice(0, 3)).toEqual(["serve", "Tongyi-MAI/Z-Image-Turbo", "--omni"]);
      expect(out.slice(-4)).toEqual(["--ssl-certfile", `${tls}/cert.pem`, "--ssl-keyfile", `${tls}/key.pem`]);
      expect(readFileSync(join(tls, "cert.pem"), "utf8")).toBe(cert.certPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
