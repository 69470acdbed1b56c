import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  backoffMs,
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  excerpt,
  ProviderHttp,
  parseRetryAfter,
  redact,
  shapeOf,
} from "../../../controller/providers/http";
import {
  ENGINE_DOWNLOAD_DIR,
  engineLaunch,
  engineServesTls,
  instanceTag,
  ProviderError,
  parseInstanceTag,
  shellJoin,
  specSecrets,
  TLS_DIR,
  TLS_ENV,
  type WorkerSpec,
} from "../../../controller/providers/types";
import { createWorkerCertificate } from "../../../core/x509";

describe("classifyFailure", () => {
  it.each([
    [{ status: 429 }, "rate_limit"],
    [{ status: 429, message: "API requests too frequent" }, "rate_limit"],
    [{ status: 401 }, "auth"],
    [{ status: 403 }, "auth"],
    [{ status: 400, code: "unauthorized_request" }, "auth"],
    [{ status: 403, code: "forbidden_action", message: "cannot delete" }, "fatal"],
    [{ status: 400, code: "no_capacity" }, "capacity"],
    [
      {
        status: 400,
        message: "There are no longer any instances available with the requested specifications",
      },
      "capacity",
    ],
    [{ status: 400, message: "no instances available" }, "capacity"],
    [
      { status: 400, code: "invalid_request", message: "Instance type 1A100.22V is not available at FIN-03" },
      "capacity",
    ],
    [{ status: 400, code: "no_such_ask", message: "Instance type by id 7 is not available." }, "capacity"],
    [{ status: 503, message: "out of capacity in region" }, "capacity"],
    [{ status: 500 }, "transient"],
    [{ status: 502, message: "<html>Bad gateway</html>" }, "transient"],
    [{ status: 503, code: "service_unavailable" }, "transient"],
    [{ status: 408 }, "transient"],
    [{ status: 400, code: "invalid_args", message: "bad disk" }, "fatal"],
    [{ status: 402, code: "insufficient_funds" }, "fatal"],
    [{ status: 404 }, "fatal"],
    [{ status: 422, message: "unknown field foo" }, "invalid"],
  ] as const)("%o → %s", (facts, kind) => {
    expect(classifyFailure(facts)).toBe(kind);
  });
});

describe("Retry-After and backoff", () => {
  const now = Date.UTC(2026, 0, 5, 12, 0, 0);

  it("parses delta-seconds and HTTP dates, ignores junk", () => {
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter(["2.5"], now)).toBe(2500);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter("", now)).toBeUndefined();
  });

  it("draws full jitter from an exponentially growing, capped window", () => {
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, policy, () => 0.999999))).toEqual([
      99, 199, 399, 799, 999, 999,
    ]);
    expect(backoffMs(3, policy, () => 0)).toBe(0);
  });

  it("retrying honours Retry-After, retries only rate_limit/transient, and bounds the total", async () => {
    let now = 0;
    const sleeps: number[] = [];
    const http = new ProviderHttp({
      provider: "vastai",
      baseUrl: "http://127.0.0.1:9",
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      random: () => 0.5,
      retry: { maxAttempts: 10, baseDelayMs: 1000, maxDelayMs: 60_000, maxTotalMs: 20_000 },
    });
    const err = (kind: ProviderError["kind"], retryAfterMs?: number) =>
      new ProviderError({
        kind,
        provider: "vastai",
        operation: "t",
        detail: "x",
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });

    let calls = 0;
    await http.retrying("t", async () => {
      calls++;
      if (calls === 1) throw err("rate_limit", 5000);
      if (calls === 2) throw err("transient");
      return "ok";
    });
    expect(sleeps).toEqual([5000, 1000]);

    for (const kind of ["auth", "capacity", "fatal"] as const) {
      calls = 0;
      await expect(
        http.retrying("t", async () => {
          calls++;
          throw err(kind);
        }),
      ).rejects.toMatchObject({ kind });
      expect(calls).toBe(1);
    }

    sleeps.length = 0;
    now = 0;
    const final = await http
      .retrying("t", async () => {
        throw err("transient");
      })
      .catch((e: ProviderError) => e);
    expect(final.attempts).toBe(6); // waits 500 + 1000 + 2000 + 4000 + 8000; the next 16 000 would pass 20 s
    expect(sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(20_000);

    await expect(http.retrying("t", () => Promise.reject(new TypeError("bug")))).rejects.toThrow(TypeError);
  });

  it("a refused connection is transient and names provider and operation", async () => {
    const http = new ProviderHttp({
      provider: "datacrunch",
      baseUrl: "http://127.0.0.1:9",
      retry: { maxAttempts: 1 },
      secrets: () => ["s3cr3t-value"],
    });
    const err: unknown = await http
      .send({ operation: "list", method: "GET", path: "/x" })
      .catch((e: unknown) => e);
    if (!(err instanceof ProviderError)) throw new Error("expected a ProviderError");
    expect(err.kind).toBe("transient");
    expect(err.message).toMatch(/^datacrunch list failed \(transient\): network error/);
  });
});

describe("redaction", () => {
  it("removes configured secrets, api_key params, bearer tokens and --api-key values", () => {
    const text =
      "GET /x?api_key=abc123XYZ&y=1 Authorization: Bearer eyJhbGciOi.xyz --api-key tok-1234 token=zzz99 the-secret-val";
    const out = redact(text, ["the-secret-val"]);
    expect(out).not.toMatch(/abc123XYZ|eyJhbGciOi|tok-1234|zzz99|the-secret-val/);
    expect(out).toContain("api_key=[redacted]");
    expect(out).toContain("Bearer [redacted]");
  });

  it("excerpts are short, printable and redacted; shapes hide values", () => {
    expect(excerpt(`\u0000${"x".repeat(500)}`, [], 20)).toBe(`${"x".repeat(20)}…`);
    expect(excerpt("")).toBe("(empty body)");
    expect(shapeOf({ id: 1, env: { HF_TOKEN: "hf_x" } })).toBe("object {id, env}");
    expect(shapeOf([1, 2])).toBe("array(2)");
  });

  it("removes PEM private keys, also when the echo cut them short", () => {
    const { keyPem } = createWorkerCertificate("w1");
    const body = keyPem.split("\n")[1]!;
    expect(redact(`env: ${keyPem.trim()} rest`)).toBe("env: [redacted private key] rest");
    expect(redact(`env: ${JSON.stringify(keyPem)} rest`)).not.toContain(body);
    expect(redact(`echo ${keyPem.slice(0, 80)}`)).not.toContain(body.slice(0, 40));
  });

  it("remembered secrets are scrubbed from later errors", () => {
    const http = new ProviderHttp({ provider: "runpod-pod", baseUrl: "http://127.0.0.1:9" });
    http.rememberSecrets(["worker-token-123456", "ab"]);
    const err = http.error("list", "fatal", "env had worker-token-123456 and ab");
    expect(err.message).toBe("runpod-pod list failed (fatal): env had [redacted] and ab");
  });
});

describe("tags and engine launch", () => {
  it("round-trips owner label and worker id, never confusing prefixes", () => {
    expect(instanceTag("aiorch-dev", "w-01HX.2")).toBe("aiorch-dev.w-01HX.2");
    expect(parseInstanceTag("aiorch-dev.w-01HX.2")).toEqual({
      ownerLabel: "aiorch-dev",
      workerId: "w-01HX.2",
    });
    expect(parseInstanceTag("aiorch-dev-2.w-1")?.ownerLabel).toBe("aiorch-dev-2");
    for (const bad of ["", "nodot", ".w", "owner.", "Upper.w", "my notebook", 7, null])
      expect(parseInstanceTag(bad)).toBeUndefined();
    expect(() => instanceTag("has.dot", "w")).toThrow();
    expect(() => instanceTag("ok", "has space")).toThrow();
  });

  const base: WorkerSpec = {
    workerId: "w",
    ownerLabel: "o",
    model: "m",
    source: "org/model",
    engine: "vllm",
    image: "img",
    gpuCount: 2,
    maxModelLen: 4096,
    engineArgs: ["--x"],
    port: 9000,
    workerToken: "tok it's",
    env: {},
  };

  it("vLLM and TGI demand the worker token; Ollama cannot", () => {
    const vllm = engineLaunch(base);
    expect(vllm.args).toEqual([
      "--model",
      "org/model",
      "--served-model-name",
      "m",
      "--host",
      "0.0.0.0",
      "--port",
      "9000",
      "--tensor-parallel-size",
      "2",
      "--max-model-len",
      "4096",
      "--download-dir",
      "/aiorch/weights",
      "--api-key",
      "tok it's",
      "--x",
    ]);
    expect(vllm.authEnforced).toBe(true);
    expect(vllm.env).toEqual({ HF_HOME: "/aiorch/weights/hf" });
    const tgi = engineLaunch({ ...base, engine: "tgi" });
    expect(tgi.args).toEqual(
      expect.arrayContaining(["--model-id", "org/model", "--num-shard", "2", "--api-key"]),
    );
    const ollama = engineLaunch({ ...base, engine: "ollama" });
    expect(ollama).toMatchObject({ authEnforced: false, env: { OLLAMA_HOST: "0.0.0.0:9000" } });
    expect(shellJoin(["a b", "it's", "plain"])).toBe(`'a b' 'it'"'"'s' plain`);
  });

  it("each engine downloads into the download dir; with a weight cache vLLM and TGI fetch from the mirror", () => {
    const cached = { ...base, weightCache: { mirrorUrl: "https://mirror.example" } };
    expect(engineLaunch(cached).env).toEqual({
      HF_HOME: `${ENGINE_DOWNLOAD_DIR}/hf`,
      HF_ENDPOINT: "https://mirror.example",
    });
    expect(engineLaunch({ ...cached, engine: "tgi" }).env).toEqual({
      HUGGINGFACE_HUB_CACHE: ENGINE_DOWNLOAD_DIR,
      HF_ENDPOINT: "https://mirror.example",
    });
    expect(engineLaunch({ ...base, engine: "tgi" }).env).toEqual({
      HUGGINGFACE_HUB_CACHE: ENGINE_DOWNLOAD_DIR,
    });
    // Ollama pulls from its own registry: the Hub mirror does not apply, the download dir does
    expect(engineLaunch({ ...cached, engine: "ollama" }).env).toEqual({
      OLLAMA_MODELS: ENGINE_DOWNLOAD_DIR,
      OLLAMA_HOST: "0.0.0.0:9000",
    });
  });
});

describe("engine launch with TLS", () => {
  const cert = createWorkerCertificate("w-tls");
  const spec: WorkerSpec = {
    workerId: "w-tls",
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

  it("vLLM: a shell writes certificate and key from the environment, then runs the server with --ssl-*", () => {
    const launch = engineLaunch(spec);
    const plain = engineLaunch({ ...spec, tls: undefined });
    expect(launch.entrypoint).toBe("/bin/sh");
    expect(launch.args.slice(0, 1)).toEqual(["-c"]);
    expect(launch.args[2]).toBe("aiorch-engine");
    expect(launch.args.slice(3)).toEqual([
      ...plain.args,
      "--ssl-certfile",
      `${TLS_DIR}/cert.pem`,
      "--ssl-keyfile",
      `${TLS_DIR}/key.pem`,
    ]);
    expect(Buffer.from(launch.env[TLS_ENV.cert]!, "base64").toString()).toBe(cert.certPem);
    expect(Buffer.from(launch.env[TLS_ENV.key]!, "base64").toString()).toBe(cert.keyPem);
    // the script itself carries no secret
    expect(launch.args[1]).not.toContain(launch.env[TLS_ENV.key]!);
    expect(launch.authEnforced).toBe(true);
    expect(plain.entrypoint).toBeUndefined();
  });

  it("the start-up script really writes the files (owner-only) and hands the arguments to the server", () => {
    const launch = engineLaunch(spec);
    const bin = mkdtempSync(join(tmpdir(), "aiorch-bin-"));
    const seen = join(bin, "seen.txt");
    try {
      // a stand-in for python3: records its arguments and what the TLS files hold, and the key left in its env
      writeFileSync(
        join(bin, "python3"),
        `#!/bin/sh\n{ printf '%s\\n' "$@"; echo "keyenv=\${${TLS_ENV.key}:-}"; } > ${seen}\n`,
        { mode: 0o755 },
      );
      execFileSync(launch.entrypoint!, launch.args as string[], {
        env: { PATH: `${bin}:${process.env.PATH}`, ...launch.env },
      });
      const args = readFileSync(seen, "utf8").split("\n");
      expect(args.slice(0, 3)).toEqual(["-m", "vllm.entrypoints.openai.api_server", "--model"]);
      expect(args).toContain("--ssl-keyfile");
      expect(args).toContain("keyenv="); // removed from the server's environment
      expect(readFileSync(`${TLS_DIR}/cert.pem`, "utf8")).toBe(cert.certPem);
      expect(readFileSync(`${TLS_DIR}/key.pem`, "utf8")).toBe(cert.keyPem);
      expect(statSync(`${TLS_DIR}/key.pem`).mode & 0o077).toBe(0);
    } finally {
      rmSync(bin, { recursive: true, force: true });
      rmSync(TLS_DIR, { recursive: true, force: true });
    }
  });

  it("TGI and Ollama cannot serve TLS and refuse a certificate", () => {
    expect(engineServesTls("vllm")).toBe(true);
    expect(engineServesTls("tgi")).toBe(false);
    expect(engineServesTls("ollama")).toBe(false);
    expect(() => engineLaunch({ ...spec, engine: "tgi" })).toThrow(/cannot serve TLS/);
    expect(() => engineLaunch({ ...spec, engine: "ollama" })).toThrow(/cannot serve TLS/);
  });

  it("the key counts as a secret in every form it travels in; the certificate does not", () => {
    const secrets = specSecrets(spec);
    expect(secrets).toContain(cert.keyPem);
    expect(secrets).toContain(engineLaunch(spec).env[TLS_ENV.key]);
    for (const line of cert.keyPem.split("\n").filter((l) => l && !l.startsWith("-----")))
      expect(secrets).toContain(line);
    expect(secrets).not.toContain(cert.certPem);
  });
});
