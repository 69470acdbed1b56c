import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type ConfigProblem,
  isDocumentationRange,
  type LoadedStackConfig,
  loadStackConfig,
  offlineSecretPlaceholder,
  parseRuntimeConfig,
  parseStackFile,
  type RawConfigValue,
  refuseToDeploy,
  renderRuntimeConfig,
  StackConfigError,
  weightCacheDataCenter,
} from "../../core/config";
import { stackYaml } from "../../devkit/stack-yaml";

const ROOT = join(__dirname, "..", "..");
const stackFile = (stack: string) => readFileSync(join(ROOT, `Pulumi.${stack}.yaml`), "utf8");

const load = (yaml: string): LoadedStackConfig => loadStackConfig(parseStackFile(yaml, "Pulumi.test.yaml"));

function problemsOf(yaml: string): ConfigProblem[] {
  try {
    load(yaml);
  } catch (error) {
    if (error instanceof StackConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected the config to be rejected");
}

const messageFor = (problems: ConfigProblem[], key: string) => problems.find((p) => p.key === key)?.message;

describe("stack config: the shipped stacks", () => {
  it("dev validates: Llama 3.2 1B and the example image model (Z-Image-Turbo on vLLM-Omni) on Vast.ai, public data", () => {
    const { config, warnings } = load(stackFile("dev"));
    expect(config.dataClass).toBe("public");
    expect(config.models).toHaveLength(2);
    expect(config.models[0]).toMatchObject({
      source: "meta-llama/Llama-3.2-1B-Instruct",
      gpu: ["RTX_3090"],
      providers: ["vastai"],
    });
    expect(config.models[1]).toMatchObject({
      kind: "image",
      engine: "vllm-omni",
      source: "Tongyi-MAI/Z-Image-Turbo",
      providers: ["vastai"],
      targetConcurrency: 1,
    });
    // no credentials in the file: each one the stack needs is a warning, not an error
    // the shipped stack's SSH/API sources are documentation placeholders: a warning naming each (pulumi up refuses them)
    expect(warnings.map((w) => w.key)).toEqual([
      "ai-orchestrator:vastaiApiKey",
      "hcloud:token",
      "ai-orchestrator:cluster.sshAllowedCidrs[0]",
      "ai-orchestrator:cluster.apiAllowedCidrs[0]",
    ]);
  });

  it("prod validates: confidential, budget, RunPod serverless first and DataCrunch second, an embedding model", () => {
    const { config } = load(stackFile("prod"));
    expect(config.dataClass).toBe("confidential");
    expect(config.budget?.monthlyUsd).toBeGreaterThan(0);
    const chat = config.models.find((m) => m.kind === "chat")!;
    expect(chat.providers).toEqual(["runpod-serverless", "datacrunch"]);
    expect(chat.gpu).toContain("RTX_4090");
    expect(config.providers["runpod-serverless"]?.cloud).toBe("secure");
    expect(config.models.some((m) => m.kind === "embedding")).toBe(true);
  });
});

describe("stack config: defaults", () => {
  it("fills defaults a user may leave out", () => {
    const { config } = load(stackYaml());
    const model = config.models[0]!;
    expect(model).toMatchObject({
      engine: "vllm",
      minWorkers: 0,
      maxWorkers: 1,
      idleTimeoutSeconds: "auto",
      gpuCount: 1,
      alwaysOn: false,
    });
    expect(config.namespace).toBe("ai-orchestrator");
    expect(config.gateway).toMatchObject({
      replicas: 2,
      tls: { enabled: true },
      limits: { rpm: 60, tpm: 100_000 },
    });
    expect(config.redis.keyPrefix).toBe("aiorch:");
    expect(config.budget?.alertAtPercent).toEqual([50, 80, 100]);
    expect(config.providers.vastai).toMatchObject({ verifiedOnly: true, minReliability: 0.98 });
  });

  it("defaults the data class to confidential, the safe choice", () => {
    expect(load(stackYaml({ dataClass: "" })).config.dataClass).toBe("confidential");
  });

  it("accepts a single GPU or provider where a list is expected", () => {
    const { config } = load(
      stackYaml({ models: "[{ name: m, kind: chat, source: org/model, gpu: RTX_3090, providers: vastai }]" }),
    );
    expect(config.models[0]).toMatchObject({ gpu: ["RTX_3090"], providers: ["vastai"] });
  });

  it("reads the Pulumi runtime's form (JSON strings) the same as the YAML file's", () => {
    const fromYaml = load(stackFile("prod")).config;
    const raw = parseStackFile(stackFile("prod"), "Pulumi.prod.yaml");
    const asRuntime: Record<string, RawConfigValue> = {};
    for (const [key, { value, secret }] of Object.entries(raw)) {
      asRuntime[key] = { value: typeof value === "string" ? value : JSON.stringify(value), secret };
    }
    asRuntime["ai-orchestrator:gdpr"] = { value: "true", secret: false };
    // every structured key, also those the shipped stacks leave at their defaults
    const extra = {
      "ai-orchestrator:monitoring": { enabled: false },
      "ai-orchestrator:redis": { storageGi: 9 },
      "ai-orchestrator:prices": { vastai: { RTX_3090: 0.1 } },
      "ai-orchestrator:trust": { approved: { public: ["datacrunch"] } },
    };
    for (const [key, value] of Object.entries(extra)) {
      raw[key] = { value, secret: false };
      asRuntime[key] = { value: JSON.stringify(value), secret: false };
    }
    expect(loadStackConfig(asRuntime).config).toEqual(loadStackConfig(raw).config);
    expect(loadStackConfig(asRuntime).config.monitoring.enabled).toBe(false);
    expect(fromYaml.monitoring.enabled).toBe(true);
  });
});

describe("stack config: errors name the key and the fix", () => {
  it("an unknown GPU lists the known ones", () => {
    const problems = problemsOf(
      stackYaml({
        models:
          "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai] }, { name: b, kind: chat, source: o/b, gpu: RTX_5090, providers: [vastai] }]",
      }),
    );
    const message = messageFor(problems, "ai-orchestrator:models[1].gpu");
    expect(message).toMatch(/^"RTX_5090" is not a known GPU; known: .*RTX_4090/);
  });

  it("an unknown GPU inside a list names its index", () => {
    const problems = problemsOf(
      stackYaml({
        models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090, GTX_1080], providers: [vastai] }]",
      }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].gpu[1]")).toContain(
      '"GTX_1080" is not a known GPU',
    );
  });

  it("an unknown provider in a model lists the known ones", () => {
    const problems = problemsOf(
      stackYaml({ models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [lambda] }]" }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].providers[0]")).toMatch(
      /"lambda" is not a known provider; known: runpod-serverless, runpod-pod, vastai, datacrunch, local/,
    );
  });

  it("an unknown provider in the providers map suggests the closest name", () => {
    const problems = problemsOf(stackYaml({ providers: "{ vastai: {}, datacrunsh: {} }" }));
    expect(messageFor(problems, "ai-orchestrator:providers.datacrunsh")).toMatch(
      /unknown provider "datacrunsh"; did you mean "datacrunch"\?/,
    );
  });

  it("a negative budget", () => {
    const problems = problemsOf(stackYaml({ budget: "{ monthlyUsd: -100 }" }));
    expect(messageFor(problems, "ai-orchestrator:budget.monthlyUsd")).toBe(
      "must be a positive amount in USD; got -100",
    );
  });

  it("a missing model name says what the name is for", () => {
    const problems = problemsOf(
      stackYaml({ models: "[{ kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai] }]" }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].name")).toMatch(
      /^is required: the id clients send as "model"/,
    );
  });

  it("malformed YAML names the file, line and column", () => {
    const problems = problemsOf("config:\n  ai-orchestrator:models: [1,\n  ai-orchestrator:gateway: 2\n");
    expect(problems[0]?.key).toMatch(/^Pulumi\.test\.yaml:\d+:\d+$/);
    expect(problems[0]?.message).toMatch(/^malformed YAML: /);
  });

  it("a duplicate YAML key is malformed", () => {
    const problems = problemsOf(
      "config:\n  ai-orchestrator:dataClass: public\n  ai-orchestrator:dataClass: internal\n",
    );
    expect(problems[0]?.message).toMatch(/malformed YAML/);
  });

  it("a credential in plain text is refused with the command that stores it as a secret", () => {
    const problems = problemsOf(stackYaml({ "ai-orchestrator:vastaiApiKey": "abc123" }));
    expect(messageFor(problems, "ai-orchestrator:vastaiApiKey")).toMatch(/pulumi config set --secret/);
  });

  it("a misspelt top-level key suggests the right one", () => {
    const problems = problemsOf(stackYaml({ "ai-orchestrator:model": "[]" }));
    expect(messageFor(problems, "ai-orchestrator:model")).toMatch(
      /unknown config key "model"; did you mean "models"\?/,
    );
  });

  it("a misspelt field suggests the right one", () => {
    const problems = problemsOf(stackYaml({ gateway: "{ hots: ai.example.com }" }));
    expect(messageFor(problems, "ai-orchestrator:gateway.hots")).toMatch(/did you mean "host"\?/);
    expect(messageFor(problems, "ai-orchestrator:gateway.host")).toMatch(/^is required/);
  });

  it("a wrong type says what was expected and what came", () => {
    const problems = problemsOf(stackYaml({ gateway: "{ host: ai.example.com, replicas: two }" }));
    expect(messageFor(problems, "ai-orchestrator:gateway.replicas")).toBe('expected a number, got "two"');
  });

  it("a cluster mode other than create or existing", () => {
    const problems = problemsOf(stackYaml({ cluster: "{ mode: creat }" }));
    expect(messageFor(problems, "ai-orchestrator:cluster.mode")).toMatch(/must be "create" .* or "existing"/);
  });

  it("create mode needs a pinned k3s version and an odd control plane", () => {
    const problems = problemsOf(
      stackYaml({ cluster: "{ mode: create, k3sVersion: latest, controlPlane: { count: 2 } }" }),
    );
    expect(messageFor(problems, "ai-orchestrator:cluster.k3sVersion")).toMatch(/not a pinned k3s release/);
    expect(messageFor(problems, "ai-orchestrator:cluster.controlPlane.count")).toMatch(/must be odd/);
  });

  it("documentation address ranges as SSH/API sources: a warning naming the key offline, refused to deploy", () => {
    const loaded = load(
      stackYaml({
        cluster:
          "{ mode: create, k3sVersion: v1.36.4+k3s1, sshAllowedCidrs: [203.0.113.7/32, 85.10.0.4/32], apiAllowedCidrs: [198.51.0.0/16] }",
      }),
    );
    expect(loaded.warnings.map((w) => w.key).filter((k) => k.includes("Cidrs"))).toEqual([
      "ai-orchestrator:cluster.sshAllowedCidrs[0]",
      "ai-orchestrator:cluster.apiAllowedCidrs[0]",
    ]);
    expect(messageFor([...loaded.warnings], "ai-orchestrator:cluster.sshAllowedCidrs[0]")).toMatch(
      /"203\.0\.113\.7\/32" is a documentation address range .* cannot read the kubeconfig over SSH; set the address pulumi up runs from/,
    );
    expect(() => refuseToDeploy(loaded)).toThrow(StackConfigError);
    expect(() => refuseToDeploy(loaded)).toThrow(/cluster\.sshAllowedCidrs\[0\]/);
    // real addresses (and IPv6 outside 2001:db8::/32) pass
    const real = load(
      stackYaml({
        cluster: "{ mode: create, k3sVersion: v1.36.4+k3s1, sshAllowedCidrs: [85.10.0.4/32, 2a01:4f8::/32] }",
      }),
    );
    expect(real.warnings.filter((w) => w.key.includes("Cidrs"))).toEqual([]);
    expect(() => refuseToDeploy(real)).not.toThrow();
    expect(isDocumentationRange("2001:db8:1::/48")).toBe(true);
  });

  it("create mode refuses a k3s release outside the Hetzner charts' version policies, naming the fix", () => {
    const problems = problemsOf(stackYaml({ cluster: "{ mode: create, k3sVersion: v1.31.4+k3s1 }" }));
    expect(messageFor(problems, "ai-orchestrator:cluster.k3sVersion")).toMatch(
      /"v1\.31\.4\+k3s1" is Kubernetes 1\.31, outside what the pinned Hetzner charts support \(CCM 1\.35\.0, CSI 2\.22\.1: 1\.33–1\.36\); pin e\.g\. "v1\.36\.4\+k3s1"/,
    );
    expect(
      load(stackYaml({ cluster: "{ mode: create, k3sVersion: v1.36.4+k3s1 }" })).config.cluster,
    ).toMatchObject({
      k3sVersion: "v1.36.4+k3s1",
    });
  });

  it("a model may only use configured providers", () => {
    const problems = problemsOf(
      stackYaml({
        models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai, datacrunch] }]",
      }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].providers[1]")).toMatch(
      /"datacrunch" is not configured; add it under ai-orchestrator:providers/,
    );
  });

  it("a GPU none of the model's providers offers", () => {
    const problems = problemsOf(
      stackYaml({
        providers: "{ datacrunch: {} }",
        models: "[{ name: a, kind: chat, source: o/a, gpu: [A100_80GB, RTX_4090], providers: [datacrunch] }]",
      }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].gpu[1]")).toMatch(
      /"RTX_4090" is not offered by any of this model's providers \(datacrunch\)/,
    );
  });

  it("minWorkers above maxWorkers", () => {
    const problems = problemsOf(
      stackYaml({
        models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai], minWorkers: 3 }]",
      }),
    );
    expect(messageFor(problems, "ai-orchestrator:models[0].minWorkers")).toMatch(/exceeds maxWorkers \(1\)/);
  });

  it("duplicate model names", () => {
    const model = "{ name: same, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai] }";
    const problems = problemsOf(stackYaml({ models: `[${model}, ${model}]` }));
    expect(messageFor(problems, "ai-orchestrator:models[1].name")).toMatch(/already used by models\[0\]/);
  });

  it("an unknown RunPod data centre", () => {
    const problems = problemsOf(
      stackYaml({
        providers: "{ runpod-serverless: { dataCenters: [EU-XX-9] } }",
        models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_4090], providers: [runpod-serverless] }]",
      }),
    );
    expect(messageFor(problems, "ai-orchestrator:providers.runpod-serverless.dataCenters[0]")).toMatch(
      /"EU-XX-9" is not a known RunPod secure data centre/,
    );
  });

  it("reports every problem at once, not one per run", () => {
    const problems = problemsOf(
      stackYaml({ budget: "{ monthlyUsd: -1 }", gateway: "{}", dataClass: "secret" }),
    );
    expect(problems.map((p) => p.key).sort()).toEqual([
      "ai-orchestrator:budget.monthlyUsd",
      "ai-orchestrator:dataClass",
      "ai-orchestrator:gateway.host",
    ]);
  });
});

describe("stack config: secrets", () => {
  it("a secure value counts as set and never surfaces its ciphertext", () => {
    const raw = parseStackFile(
      stackYaml({ "ai-orchestrator:vastaiApiKey": "{ secure: v1:AAAAcipher }" }),
      "x.yaml",
    );
    expect(raw["ai-orchestrator:vastaiApiKey"]).toEqual({
      value: offlineSecretPlaceholder("ai-orchestrator:vastaiApiKey"),
      secret: true,
    });
    const loaded = loadStackConfig(raw);
    expect(loaded.secretsSet.has("ai-orchestrator:vastaiApiKey")).toBe(true);
    expect(loaded.missingSecrets).toEqual(["ai-orchestrator:kubeconfig"]);
  });
});

describe("runtime config", () => {
  it("renders from a stack, holds no secret, and parses back with the same schema", () => {
    const yaml = stackYaml({ "ai-orchestrator:vastaiApiKey": "{ secure: v1:AAAAcipher }" });
    const runtime = renderRuntimeConfig(load(yaml), "test");
    const text = JSON.stringify(runtime);
    expect(text).not.toContain("AAAAcipher");
    expect(text).not.toContain("offline-secret");
    expect(parseRuntimeConfig(JSON.parse(text))).toEqual(runtime);
    expect(runtime.ownerLabel).toBe("ai-orchestrator-test");
    expect(runtime.providers.vastai?.apiBase).toBe("https://console.vast.ai/api/v0");
    expect(runtime.models[0]?.dataClass).toBe("public");
    expect(runtime.prices).toEqual([
      expect.objectContaining({ provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.2 }),
    ]);
  });

  it("applies stack price overrides", () => {
    const runtime = renderRuntimeConfig(load(stackYaml({ prices: "{ vastai: { RTX_3090: 0.15 } }" })), "t");
    expect(runtime.prices[0]?.usdPerHour).toBe(0.15);
  });

  it("a bad runtime config names the key", () => {
    const runtime = renderRuntimeConfig(load(stackYaml()), "t");
    const broken = { ...runtime, models: [{ ...runtime.models[0], gpu: ["RTX_9999"] }] };
    expect(() => parseRuntimeConfig(broken)).toThrow(
      /runtime:models\[0\]\.gpu\[0\]: "RTX_9999" is not a known GPU/,
    );
  });
});

describe("model versions", () => {
  const model = (extra: string) =>
    `[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai]${extra} }]`;

  it("accepts variants with weights and defaults them to the model's source", () => {
    const { config } = load(
      stackYaml({
        models: model(
          ", variants: [{ name: v1, weight: 90 }, { name: v2, source: o/m2, revision: abc, weight: 10 }]",
        ),
      }),
    );
    expect(config.models[0]?.variants).toEqual([
      { name: "v1", weight: 90 },
      { name: "v2", source: "o/m2", revision: "abc", weight: 10 },
    ]);
  });

  it("names bad variants: duplicate names, all weights zero, a missing weight", () => {
    expect(
      problemsOf(
        stackYaml({ models: model(", variants: [{ name: a, weight: 1 }, { name: a, weight: 1 }]") }),
      )[0]?.key,
    ).toBe("ai-orchestrator:models[0].variants[1].name");
    expect(
      messageFor(
        problemsOf(stackYaml({ models: model(", variants: [{ name: a, weight: 0 }]") })),
        "ai-orchestrator:models[0].variants",
      ),
    ).toMatch(/every weight is 0/);
    expect(
      messageFor(
        problemsOf(stackYaml({ models: model(", variants: [{ name: a }]") })),
        "ai-orchestrator:models[0].variants[0].weight",
      ),
    ).toMatch(/is required/);
  });

  it("takes SLOs and refuses an availability of 100%", () => {
    const { config } = load(stackYaml({ models: model(", slo: { availability: 0.995, ttftSeconds: 2 }") }));
    expect(config.models[0]?.slo).toEqual({ availability: 0.995, ttftSeconds: 2, ttftTarget: 0.95 });
    expect(
      messageFor(
        problemsOf(stackYaml({ models: model(", slo: { availability: 1 }") })),
        "ai-orchestrator:models[0].slo.availability",
      ),
    ).toMatch(/less than 1/);
    expect(
      messageFor(
        problemsOf(stackYaml({ models: model(", slo: { ttftSeconds: 900 }") })),
        "ai-orchestrator:models[0].slo.ttftSeconds",
      ),
    ).toMatch(/up to 300s/);
  });
});

describe("RunPod weight cache", () => {
  const rp = (settings: string) =>
    stackYaml({
      providers: `{ runpod-serverless: ${settings} }`,
      models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_4090], providers: [runpod-serverless] }]",
    });
  it("defaults the volume's data centre to the first allowed one", () => {
    const r = load(rp("{ dataCenters: [EU-RO-1, EU-SE-1], weightCache: { sizeGb: 200 } }")).config.providers[
      "runpod-serverless"
    ]!;
    expect(weightCacheDataCenter(r)).toBe("EU-RO-1");
    expect(weightCacheDataCenter({ ...r, weightCache: undefined })).toBeUndefined();
  });
  it("names the field and the fix for a missing or foreign data centre, and an oversized volume", () => {
    expect(
      messageFor(
        problemsOf(rp("{ weightCache: { sizeGb: 200 } }")),
        "ai-orchestrator:providers.runpod-serverless.weightCache.dataCenter",
      ),
    ).toMatch(/required when dataCenters is empty/);
    expect(
      messageFor(
        problemsOf(rp("{ dataCenters: [EU-RO-1], weightCache: { sizeGb: 200, dataCenter: US-TX-3 } }")),
        "ai-orchestrator:providers.runpod-serverless.weightCache.dataCenter",
      ),
    ).toMatch(/"US-TX-3" is not one of dataCenters \(EU-RO-1\)/);
    expect(
      messageFor(
        problemsOf(rp("{ dataCenters: [EU-RO-1], weightCache: { sizeGb: 5000 } }")),
        "ai-orchestrator:providers.runpod-serverless.weightCache.sizeGb",
      ),
    ).toMatch(/at most 4096 GB/);
  });
});

describe("instance providers' weight cache (a Hugging Face mirror)", () => {
  const vast = (settings: string) =>
    stackYaml({
      providers: `{ vastai: ${settings} }`,
      models: "[{ name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai] }]",
    });
  it("takes an https mirror into the runtime config", () => {
    const cfg = load(vast('{ weightCache: { mirrorUrl: "https://hf.example.com" } }')).config;
    expect(cfg.providers.vastai?.weightCache).toEqual({ mirrorUrl: "https://hf.example.com" });
  });
  it("refuses a plain-http mirror (it would receive HF_TOKEN in the clear) and names the fix", () => {
    expect(
      messageFor(
        problemsOf(vast('{ weightCache: { mirrorUrl: "http://hf.example.com" } }')),
        "ai-orchestrator:providers.vastai.weightCache.mirrorUrl",
      ),
    ).toMatch(/not an https URL.*HF_TOKEN/);
    expect(
      messageFor(
        problemsOf(vast("{ weightCache: {} }")),
        "ai-orchestrator:providers.vastai.weightCache.mirrorUrl",
      ),
    ).toMatch(/is required: the https URL of a Hugging Face mirror/);
  });
});
