import { afterAll, describe, expect, it } from "vitest";
import { parseRuntimeConfig } from "../../core/config";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, ROOT, removeProject, tempProject } from "./helpers";

interface PlanJson {
  stack: string;
  resources: {
    type: string;
    name: string;
    urn: string;
    parent: string | null;
    inputs: Record<string, unknown>;
  }[];
  warnings: { key: string; message: string }[];
  policy: { violations: { policy: string; level: string; message: string }[] };
  forecast: {
    rows: {
      model: string;
      provider: string;
      gpu: string;
      pattern: string;
      costUsd: number;
      alwaysOnCostUsd: number;
    }[];
  };
}

const projects: string[] = [];
const project = (files: Record<string, string>, options?: { linkProgram?: boolean }) => {
  const dir = tempProject(files, options);
  projects.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of projects) removeProject(dir);
});

const planJson = (args: string[], cwd?: string): { code: number | null; plan: PlanJson; stderr: string } => {
  const result = aiorch(["plan", "--json", ...args], cwd);
  return { code: result.code, plan: JSON.parse(result.stdout) as PlanJson, stderr: result.stderr };
};
const types = (plan: PlanJson) => new Set(plan.resources.map((r) => r.type));

describe("aiorch plan", () => {
  it("shows the dev stack's resources, policy verdict and forecast; dev is the default stack", () => {
    const result = aiorch(["plan"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Plan for stack dev \(project ai-orchestrator\): \d+ resources/);
    for (const section of ["RESOURCES", "WARNINGS", "POLICY", "COST FORECAST"])
      expect(result.stdout).toContain(section);
    expect(result.stdout).toMatch(/hcloud:index\/server:Server\s+cluster-cp-0\s+serverType=cpx21/);
    expect(result.stdout).toContain("! ai-orchestrator:vastaiApiKey: is not set");
    expect(result.stdout).toMatch(/llama-3\.2-1b\s+vastai\s+RTX_3090/);
    // the forecast says which keep-alive it simulates and which bound its ratio is to (issue 21)
    expect(result.stdout).toContain("policy: keep-alive auto (aiorch simulate's 'adaptive')");
    expect(result.stdout).toContain("over the lower bound of sim/bound.ts");
    expect(result.stdout).toMatch(/p95 wait\s+×bound/);
  });

  it("--stack prod --json is one JSON document with every resource's type, name, parent and inputs", () => {
    const { code, plan } = planJson(["--stack", "prod"]);
    expect(code).toBe(0);
    expect(plan.stack).toBe("prod");
    const t = types(plan);
    for (const type of [
      "pulumi:pulumi:Stack",
      "hcloud:index/network:Network",
      "hcloud:index/firewall:Firewall",
      "hcloud:index/server:Server",
      "kubernetes:core/v1:Namespace",
      "kubernetes:core/v1:ConfigMap",
    ]) {
      expect(t.has(type), type).toBe(true);
    }
    const servers = plan.resources.filter((r) => r.type === "hcloud:index/server:Server");
    expect(servers.map((s) => s.name).sort()).toEqual([
      "cluster-cp-0",
      "cluster-cp-1",
      "cluster-cp-2",
      "cluster-worker-0",
      "cluster-worker-1",
      "cluster-worker-2",
    ]);
    const cluster = plan.resources.find((r) => r.type === "aiorch:hetzner:Cluster")!;
    expect(servers.every((s) => s.parent === cluster.urn)).toBe(true);
    expect(servers[0]?.inputs.userData).toBe("[secret]");
    expect([...new Set(plan.forecast.rows.map((r) => `${r.model}/${r.provider}`))]).toEqual([
      "llama-3.1-8b/runpod-serverless",
      "llama-3.1-8b/datacrunch",
      "bge-m3/runpod-serverless",
    ]);
    // four usage patterns each, the stack's keep-alive against always-on
    expect(plan.forecast.rows).toHaveLength(12);
    for (const row of plan.forecast.rows) expect(row.costUsd).toBeLessThanOrEqual(row.alwaysOnCostUsd + 0.01);
    expect(plan.policy.violations).toEqual([]);
    // one managed RunPod endpoint per model RunPod serves, its key a secret
    const endpoints = plan.resources.filter((r) => r.type === "pulumi-nodejs:dynamic/runpod:Endpoint");
    expect(endpoints.map((e) => e.inputs.model).sort()).toEqual(["bge-m3", "llama-3.1-8b"]);
    expect(endpoints.every((e) => e.inputs.apiKey === "[secret]")).toBe(true);
    expect(endpoints.find((e) => e.inputs.model === "llama-3.1-8b")?.inputs).toMatchObject({
      gpuPoolIds: ["ADA_24", "AMPERE_80"],
      // the weight cache's volume lives in EU-RO-1, and an endpoint mounts it only there
      dataCenterIds: ["EU-RO-1"],
      workersMin: 0,
      workersMax: 4,
    });
    const volumes = plan.resources.filter((r) => r.type === "pulumi-nodejs:dynamic/runpod:NetworkVolume");
    expect(volumes.map((v) => v.inputs)).toEqual([
      expect.objectContaining({ dataCenterId: "EU-RO-1", sizeGb: 200, apiKey: "[secret]" }),
    ]);
  });

  it("secrets set with `pulumi config set --secret` show as [secret] and their ciphertext never prints", () => {
    const dir = project({
      "Pulumi.s.yaml": stackYaml({
        "ai-orchestrator:vastaiApiKey": "{ secure: v1:CIPHERTEXTvast }",
        "ai-orchestrator:kubeconfig": "{ secure: v1:CIPHERTEXTkube }",
      }),
    });
    const result = aiorch(["plan", "--json", "--stack", "s"], dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout + result.stderr).not.toMatch(/CIPHERTEXT|offline-secret/);
    const plan = JSON.parse(result.stdout) as PlanJson;
    const credentials = plan.resources.find((r) => r.name === "runtime-credentials")!;
    expect(credentials.inputs.stringData).toEqual({ VASTAI_API_KEY: "[secret]" });
    expect(plan.warnings).toEqual([]); // every credential this stack needs is set
  });

  it("mode existing creates no Hetzner resources and takes the kubeconfig secret", () => {
    const dir = project({ "Pulumi.e.yaml": stackYaml() });
    const { code, plan } = planJson(["--stack", "e"], dir);
    expect(code).toBe(0);
    expect([...types(plan)].filter((t) => t.startsWith("hcloud:"))).toEqual([]);
    const provider = plan.resources.find((r) => r.type === "pulumi:providers:kubernetes")!;
    expect(provider.inputs.kubeconfig).toBe("[secret]");
    expect(plan.warnings.map((w) => w.key)).toContain("ai-orchestrator:kubeconfig");
  });

  it.each([
    [
      "unknown GPU",
      { models: "[{ name: m, kind: chat, source: o/m, gpu: RTX_5090, providers: [vastai] }]" },
      'ai-orchestrator:models[0].gpu: "RTX_5090" is not a known GPU',
    ],
    [
      "unknown provider",
      { models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [lambda] }]" },
      'ai-orchestrator:models[0].providers[0]: "lambda" is not a known provider',
    ],
    [
      "negative budget",
      { budget: "{ monthlyUsd: -5 }" },
      "ai-orchestrator:budget.monthlyUsd: must be a positive amount",
    ],
    [
      "missing model name",
      { models: "[{ kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai] }]" },
      "ai-orchestrator:models[0].name: is required",
    ],
  ])("%s: exit 2 and the message names the key", (_label, overrides, expected) => {
    const dir = project({ "Pulumi.bad.yaml": stackYaml(overrides) });
    const result = aiorch(["plan", "--stack", "bad"], dir);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(expected);
  });

  it("malformed YAML: exit 2 with file, line and column", () => {
    const dir = project({
      "Pulumi.bad.yaml": "config:\n  ai-orchestrator:models: [1,\n  ai-orchestrator:gateway: 2\n",
    });
    const result = aiorch(["plan", "--stack", "bad"], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Pulumi\.bad\.yaml:\d+:\d+: malformed YAML/);
  });

  it("an unknown stack or a bad flag is a usage error", () => {
    const missing = aiorch(["plan", "--stack", "staging"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no stack "staging".*stacks here: .*dev.*prod/);
    const flag = aiorch(["plan", "--stak", "dev"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--stak/);
    expect(aiorch(["frobnicate"]).code).toBe(2);
  });

  it("a program that writes a secret into a ConfigMap fails the plan with exit 1", () => {
    const dir = project(
      {
        "Pulumi.leak.yaml": stackYaml({ "ai-orchestrator:vastaiApiKey": "{ secure: v1:CIPHER }" }),
        "index.ts": [
          'import * as k8s from "@pulumi/kubernetes";',
          'import * as pulumi from "@pulumi/pulumi";',
          'const key = new pulumi.Config("ai-orchestrator").requireSecret("vastaiApiKey");',
          'new k8s.core.v1.ConfigMap("leaky", { data: { apiKey: pulumi.unsecret(key) } });',
        ].join("\n"),
      },
      { linkProgram: false },
    );
    const result = aiorch(["plan", "--stack", "leak"], dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /\[mandatory\] secrets-not-plaintext: ConfigMap "leaky" data\.apiKey holds a secret config value/,
    );
    expect(result.stdout).not.toMatch(/offline-secret|CIPHER/);
  });
});

describe("aiorch plan: policy verdict", () => {
  const confidentialOn = (providers: string, provider: string, gpu: string) =>
    stackYaml({
      dataClass: "confidential",
      providers,
      models: `[{ name: secret-llm, kind: chat, source: o/m, gpu: [${gpu}], providers: [${provider}] }]`,
    });

  it.each([
    ["vastai", confidentialOn("{ vastai: {} }", "vastai", "RTX_3090"), "vastai is a marketplace provider"],
    [
      "RunPod community cloud",
      confidentialOn("{ runpod-serverless: { cloud: community } }", "runpod-serverless", "RTX_4090"),
      "runpod-serverless:community is a marketplace provider",
    ],
  ])(
    "a confidential model on %s: exit 1 with the policy id, the model and the fix",
    (_label, yaml, reason) => {
      const dir = project({ "Pulumi.c.yaml": yaml });
      const result = aiorch(["plan", "--stack", "c"], dir);
      expect(result.code, result.stderr).toBe(1);
      const line = result.stdout.split("\n").find((l) => l.includes("approved-gpu-providers"));
      expect(line).toBeDefined();
      expect(line).toContain("[mandatory] approved-gpu-providers: ai-orchestrator:models[0].providers[0]");
      expect(line).toContain('model "secret-llm" holds confidential data');
      expect(line).toContain(reason);
      expect(line).toMatch(/Fix: .+/);
    },
  );

  it("--json carries the violations; an advisory one alone keeps exit 0", () => {
    const dir = project({
      "Pulumi.w.yaml": stackYaml({
        models:
          "[{ name: warm, kind: chat, source: o/m, revision: 0e9e39f249a16976918f6564b8830bc894c89659, gpu: [RTX_3090], providers: [vastai], minWorkers: 1 }]",
      }),
    });
    const { code, plan } = planJson(["--stack", "w"], dir);
    expect(code).toBe(0);
    expect(plan.policy.violations).toEqual([
      expect.objectContaining({
        policy: "scale-to-zero",
        level: "advisory",
        message: expect.stringMatching(/minWorkers is 1/),
      }),
    ]);
  });

  it("--policy-config tightens the pack the way pulumi's --policy-pack-config does", () => {
    const dir = project({
      "policy.json": JSON.stringify({
        "approved-gpu-providers": { approved: { confidential: ["datacrunch"] } },
      }),
    });
    const result = aiorch([
      "plan",
      "--stack",
      "prod",
      "--dir",
      ROOT,
      "--policy-config",
      `${dir}/policy.json`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /runpod-serverless:secure is a certified provider; confidential data may only go to datacrunch/,
    );
  });
});

describe("aiorch plan: security summary", () => {
  it("a confidential stack shows each protection layer; turning them off fails the plan", () => {
    const prod = aiorch(["plan", "--stack", "prod"]);
    expect(prod.stdout).toMatch(/SECURITY \(the stack serves confidential data\)/);
    expect(prod.stdout).toMatch(/✓ mTLS to Redis: TLS only/);
    expect(prod.stdout).toMatch(/✓ queued data encrypted: AES-256-GCM/);
    expect(prod.stdout).toMatch(/✓ policies: every mandatory policy passes/);
    const dir = project({
      "Pulumi.c.yaml": stackYaml({
        dataClass: "confidential",
        providers: "{ datacrunch: {} }",
        models: "[{ name: m, kind: chat, source: o/m, gpu: [A100_80GB], providers: [datacrunch] }]",
        security: "{ redisTls: false, encryptQueued: false }",
      }),
    });
    const off = aiorch(["plan", "--stack", "c"], dir);
    expect(off.code).toBe(1);
    expect(off.stdout).toMatch(/✗ mTLS to Redis: Redis accepts plain TCP/);
    expect(off.stdout).toMatch(/✗ queued data encrypted: queued bodies are stored in plain text/);
    expect(off.stdout).toMatch(
      /\[mandatory\] confidential-protections: ai-orchestrator:security\.redisTls is off/,
    );
  });

  it("a public stack has no security section", () => {
    expect(aiorch(["plan"]).stdout).not.toContain("SECURITY");
  });
});

describe("aiorch plan: model versions", () => {
  it("shows each variant's share and refuses an unpinned revision in a confidential stack", () => {
    const pinned = "0123456789abcdef0123456789abcdef01234567";
    const dir = project({
      "Pulumi.v.yaml": stackYaml({
        dataClass: "confidential",
        providers: "{ datacrunch: {} }",
        models: `[{ name: m, kind: chat, source: o/m, revision: ${pinned}, gpu: [A100_80GB], providers: [datacrunch], variants: [{ name: stable, weight: 90 }, { name: canary, source: o/m-next, revision: main, weight: 10 }] }]`,
      }),
    });
    const result = aiorch(["plan", "--stack", "v"], dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/stable\s+90%\s+o\/m@0123456789ab/);
    expect(result.stdout).toMatch(/canary\s+10%\s+o\/m-next@main/);
    expect(result.stdout).toMatch(
      /\[mandatory\] pinned-model-revision: ai-orchestrator:models\[0\]\.variants\[1\]\.revision is "main"/,
    );
  });
});

describe("aiorch config", () => {
  it("prints exactly what the stack's ConfigMap holds, and the runtime parses it", () => {
    const config = aiorch(["config", "--stack", "prod"]);
    expect(config.code, config.stderr).toBe(0);
    const runtime = parseRuntimeConfig(JSON.parse(config.stdout));
    expect(runtime.stack).toBe("prod");
    const { plan } = planJson(["--stack", "prod"]);
    const configMap = plan.resources.find((r) => r.name === "runtime-config")!;
    expect((configMap.inputs.data as Record<string, string>)["runtime.json"]).toBe(config.stdout);
  });
});
