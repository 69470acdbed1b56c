import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { engineLaunch, TLS_DIR, TLS_ENV, type WorkerSpec } from "../../../controller/providers/types";
import { createWorkerCertificate } from "../../../core/x509";

const cert = createWorkerCertificate("w-split");
const spec: WorkerSpec = {
  workerId: "w-split",
  ownerLabel: "o",
  model: "m",
  source: "org/model",
  engine: "vllm",
  image: "img",
  gpuCount: 1,
  engineArgs: ["--x"],
  port: 9000,
  workerToken: "tok-123456",
  env: { HF_TOKEN: "hf_abcdef" },
  tls: { certPem: cert.certPem, keyPem: cert.keyPem },
};
const b64 = (pem: string) => Buffer.from(pem, "utf8").toString("base64");

/** The start-up script as it was before `maxEnvValueChars` existed. */
const SCRIPT_BEFORE = [
  "set -eu",
  "umask 077",
  `mkdir -p ${TLS_DIR}`,
  `printf '%s' "$${TLS_ENV.cert}" | base64 -d > ${TLS_DIR}/cert.pem`,
  `printf '%s' "$${TLS_ENV.key}" | base64 -d > ${TLS_DIR}/key.pem`,
  `unset ${TLS_ENV.cert} ${TLS_ENV.key}`,
  'exec python3 -m vllm.entrypoints.openai.api_server "$@"',
].join("; ");

/** Run the launch's start-up shell with a stand-in python3, writing the TLS files to a private dir. */
function runStartup(launch: ReturnType<typeof engineLaunch>) {
  const dir = mkdtempSync(join(tmpdir(), "aiorch-launch-"));
  const tls = join(dir, "tls");
  const seen = join(dir, "seen.txt");
  try {
    writeFileSync(
      join(dir, "python3"),
      `#!/bin/sh\n{ printf '%s\\n' "$@"; env | grep '^AIORCH_TLS' || true; } > ${seen}\n`,
      { mode: 0o755 },
    );
    // the script names TLS_DIR; point it at this test's own dir (other tests use the real one)
    const args = launch.args.map((a) => a.split(TLS_DIR).join(tls));
    execFileSync(launch.entrypoint!, args, { env: { PATH: `${dir}:${process.env.PATH}`, ...launch.env } });
    return {
      out: readFileSync(seen, "utf8").split("\n"),
      certPem: readFileSync(join(tls, "cert.pem"), "utf8"),
      keyPem: readFileSync(join(tls, "key.pem"), "utf8"),
      keyMode: statSync(join(tls, "key.pem")).mode & 0o077,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("engineLaunch: environment values a provider limits (Vast.ai: 256 characters per entry)", () => {
  it("without the option, or when the values fit, nothing changes", () => {
    for (const launch of [engineLaunch(spec), engineLaunch(spec, { maxEnvValueChars: 100_000 })]) {
      expect(launch.args[1]).toBe(SCRIPT_BEFORE);
      expect(launch.env[TLS_ENV.cert]).toBe(b64(cert.certPem));
      expect(launch.env[TLS_ENV.key]).toBe(b64(cert.keyPem));
      expect(Object.keys(launch.env).filter((k) => k.startsWith("AIORCH_TLS"))).toHaveLength(2);
    }
    expect(engineLaunch({ ...spec, tls: undefined }, { maxEnvValueChars: 10 })).toEqual(
      engineLaunch({ ...spec, tls: undefined }),
    );
  });

  it("splits certificate and key into numbered parts of at most maxEnvValueChars, in order", () => {
    const launch = engineLaunch(spec, { maxEnvValueChars: 200 });
    expect(launch.env[TLS_ENV.cert]).toBeUndefined();
    expect(launch.env[TLS_ENV.key]).toBeUndefined();
    for (const [name, pem] of [
      [TLS_ENV.cert, cert.certPem],
      [TLS_ENV.key, cert.keyPem],
    ] as const) {
      const parts = Object.keys(launch.env).filter((k) => k.startsWith(`${name}_`));
      expect(parts).toEqual(parts.map((_, i) => `${name}_${i}`));
      expect(parts.length).toBe(Math.ceil(b64(pem).length / 200));
      for (const p of parts) expect(launch.env[p]!.length).toBeLessThanOrEqual(200);
      expect(parts.map((p) => launch.env[p]).join("")).toBe(b64(pem));
      // the script reads every part, in order, and drops them all
      expect(launch.args[1]).toContain(`printf '%s' ${parts.map((p) => `"$${p}"`).join(" ")} | base64 -d`);
      for (const p of parts) expect(launch.args[1]).toMatch(new RegExp(`unset [^;]*\\b${p}\\b`));
    }
    // the script carries no secret, and the rest of the launch is as before
    for (const [k, v] of Object.entries(launch.env))
      if (k.startsWith("AIORCH_TLS")) expect(launch.args[1]).not.toContain(v);
    expect(launch.args.slice(2)).toEqual(engineLaunch(spec).args.slice(2));
    expect(launch.env.HF_HOME).toBe(engineLaunch(spec).env.HF_HOME);
  });

  it("the start-up script really joins the parts into the files (owner-only) and leaves no part in the server's env", () => {
    const split = runStartup(engineLaunch(spec, { maxEnvValueChars: 64 }));
    expect(split.certPem).toBe(cert.certPem);
    expect(split.keyPem).toBe(cert.keyPem);
    expect(split.keyMode).toBe(0);
    expect(split.out.slice(0, 3)).toEqual(["-m", "vllm.entrypoints.openai.api_server", "--model"]);
    expect(split.out.some((l) => l.startsWith("AIORCH_TLS"))).toBe(false);
    // and the unsplit form still works the same
    const whole = runStartup(engineLaunch(spec));
    expect([whole.certPem, whole.keyPem]).toEqual([cert.certPem, cert.keyPem]);
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => engineLaunch(spec, { maxEnvValueChars: 0 })).toThrow(/positive integer/);
    expect(() => engineLaunch(spec, { maxEnvValueChars: 1.5 })).toThrow(/positive integer/);
  });
});

describe("engineLaunch: vLLM's optional extras (a speech-to-text model needs `audio`, which vLLM's image leaves out)", () => {
  /** Run the start-up shell with stand-ins: python3 answers the installed vLLM version, uv and the server record. */
  function runWithExtras(launch: ReturnType<typeof engineLaunch>) {
    const dir = mkdtempSync(join(tmpdir(), "aiorch-extras-"));
    const calls = join(dir, "calls.txt");
    try {
      writeFileSync(
        join(dir, "python3"),
        `#!/bin/sh\nif [ "$1" = "-c" ]; then echo 0.10.1.1; exit 0; fi\necho "python3 $*" >> ${calls}\n`,
        { mode: 0o755 },
      );
      writeFileSync(join(dir, "uv"), `#!/bin/sh\necho "uv $*" >> ${calls}\n`, { mode: 0o755 });
      const tls = join(dir, "tls");
      const args = launch.args.map((a) => a.split(TLS_DIR).join(tls));
      execFileSync(launch.entrypoint!, args, { env: { PATH: `${dir}:${process.env.PATH}`, ...launch.env } });
      return readFileSync(calls, "utf8").trim().split("\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("installs vllm[audio] at the image's own vLLM version, then starts the server with the same arguments", () => {
    for (const tls of [undefined, spec.tls]) {
      const launch = engineLaunch({ ...spec, tls, engineExtras: ["audio"] });
      expect(launch.entrypoint).toBe("/bin/sh");
      const [install, server] = runWithExtras(launch);
      expect(install).toBe("uv pip install --system vllm[audio]==0.10.1.1");
      expect(server).toMatch(/^python3 -m vllm\.entrypoints\.openai\.api_server --model org\/model /);
      expect(server).toContain("--api-key tok-123456");
    }
  });

  it("without extras the launch is unchanged (the image's entrypoint, no shell)", () => {
    const plain = engineLaunch({ ...spec, tls: undefined });
    expect(plain.entrypoint).toBeUndefined();
    expect(engineLaunch({ ...spec, tls: undefined, engineExtras: [] })).toEqual(plain);
    expect(engineLaunch(spec).args[1]).toBe(SCRIPT_BEFORE);
  });
});
