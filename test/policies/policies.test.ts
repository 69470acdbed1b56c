import { describe, expect, it } from "vitest";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../../core/config";
import { decideProvision, refusalText } from "../../core/trust";
import { stackYaml } from "../../devkit/stack-yaml";
import {
  allPolicies,
  approvedGpuProviders,
  budgetRequired,
  confidentialProtections,
  gatewayTls,
  gdprRegion,
  gpuAllowlist,
  networkPolicies,
  noInsecureTunnels,
  pinnedModelRevision,
  podHardening,
  redisAuth,
  scaleToZero,
  secretsNotPlaintext,
} from "../../policies/policies";
import {
  deployment,
  HARDENED,
  messages,
  networkPolicy,
  resource,
  runtimeConfigMap,
  violations,
} from "./fixtures";

/** A stack whose one model uses one provider offering. */
const OFFERINGS = {
  "runpod-serverless:secure": {
    providers: "{ runpod-serverless: { cloud: secure } }",
    provider: "runpod-serverless",
    gpu: "RTX_4090",
  },
  "runpod-serverless:community": {
    providers: "{ runpod-serverless: { cloud: community } }",
    provider: "runpod-serverless",
    gpu: "RTX_4090",
  },
  "runpod-pod:community": {
    providers: "{ runpod-pod: { cloud: community } }",
    provider: "runpod-pod",
    gpu: "RTX_4090",
  },
  datacrunch: { providers: "{ datacrunch: {} }", provider: "datacrunch", gpu: "A100_80GB" },
  vastai: { providers: "{ vastai: {} }", provider: "vastai", gpu: "RTX_3090" },
  local: { providers: "{ local: { url: 'http://127.0.0.1:11434/v1' } }", provider: "local", gpu: "RTX_4090" },
} as const;
type OfferingKey = keyof typeof OFFERINGS;

function stackWith(dataClass: string, offering: OfferingKey, extra: Record<string, string> = {}) {
  const o = OFFERINGS[offering];
  return {
    dataClass,
    providers: o.providers,
    models: `[{ name: m, kind: chat, source: o/m, gpu: [${o.gpu}], providers: [${o.provider}] }]`,
    ...extra,
  };
}

describe("the pack", () => {
  it("has each policy with its id, a description and the default level the issue sets", () => {
    const levels = Object.fromEntries(allPolicies().map((p) => [p.name, p.enforcementLevel]));
    expect(levels).toEqual({
      "approved-gpu-providers": "mandatory",
      "gdpr-region": "mandatory",
      "scale-to-zero": "advisory",
      "budget-required": "mandatory",
      "gpu-allowlist": "mandatory",
      "gateway-tls": "mandatory",
      "redis-auth": "mandatory",
      "secrets-not-plaintext": "mandatory",
      "pod-hardening": "advisory",
      "network-policies": "advisory",
      "no-insecure-tunnels": "mandatory",
      "confidential-protections": "mandatory",
      "pinned-model-revision": "mandatory",
      "model-revision-advisory": "advisory",
    });
    for (const policy of allPolicies()) expect(policy.description.length).toBeGreaterThan(30);
  });

  it("a level in pack config overrides the default, and disabled skips the policy", () => {
    const cm = runtimeConfigMap(stackWith("confidential", "vastai"));
    expect(violations(approvedGpuProviders(), [cm], { "approved-gpu-providers": "advisory" })[0]?.level).toBe(
      "advisory",
    );
    expect(violations(approvedGpuProviders(), [cm], { "approved-gpu-providers": "disabled" })).toEqual([]);
  });
});

describe("approved-gpu-providers: every data class × provider tier", () => {
  // certified: RunPod secure, DataCrunch; marketplace: RunPod community, Vast.ai; self-hosted: local
  const expected: Record<string, Record<OfferingKey, boolean>> = {
    confidential: {
      "runpod-serverless:secure": true,
      datacrunch: true,
      "runpod-serverless:community": false,
      "runpod-pod:community": false,
      vastai: false,
      local: false,
    },
    internal: {
      "runpod-serverless:secure": true,
      datacrunch: true,
      "runpod-serverless:community": false,
      "runpod-pod:community": false,
      vastai: false,
      local: true,
    },
    public: {
      "runpod-serverless:secure": true,
      datacrunch: true,
      "runpod-serverless:community": true,
      "runpod-pod:community": true,
      vastai: true,
      local: true,
    },
  };
  const cases = Object.entries(expected).flatMap(([dataClass, byOffering]) =>
    Object.entries(byOffering).map(
      ([offering, allowed]) => [dataClass, offering as OfferingKey, allowed] as const,
    ),
  );

  it.each(cases)("%s data on %s: allowed=%s", (dataClass, offering, allowed) => {
    const found = messages(approvedGpuProviders(), [runtimeConfigMap(stackWith(dataClass, offering))]);
    if (allowed) expect(found).toEqual([]);
    else {
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(
        new RegExp(
          `^ai-orchestrator:models\\[0\\]\\.providers\\[0\\] \\(${OFFERINGS[offering].provider}\\): model "m" holds ${dataClass} data`,
        ),
      );
      expect(found[0]).toContain("Fix: ");
    }
  });

  it("a model's own data class overrides the stack's", () => {
    const stack = stackWith("public", "vastai", {
      models:
        "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], dataClass: confidential }]",
    });
    expect(messages(approvedGpuProviders(), [runtimeConfigMap(stack)])).toHaveLength(1);
  });

  it("RunPod community: the fix says to switch the cloud to secure", () => {
    const [message] = messages(approvedGpuProviders(), [
      runtimeConfigMap(stackWith("confidential", "runpod-serverless:community")),
    ]);
    expect(message).toContain("set ai-orchestrator:providers.runpod-serverless.cloud to secure");
  });

  it("pack config can tighten the lists", () => {
    const cm = runtimeConfigMap(stackWith("confidential", "runpod-serverless:secure"));
    const found = messages(approvedGpuProviders(), [cm], {
      "approved-gpu-providers": { approved: { confidential: ["datacrunch"] } },
    });
    expect(found[0]).toMatch(
      /confidential data may only go to datacrunch$|confidential data may only go to datacrunch\./,
    );
  });

  it("a stack can tighten its own lists", () => {
    const cm = runtimeConfigMap(
      stackWith("public", "vastai", { trust: "{ approved: { public: [datacrunch] } }" }),
    );
    expect(messages(approvedGpuProviders(), [cm])).toHaveLength(1);
  });

  it("a named exception lets one model through, unless the organisation does not honour exceptions", () => {
    const cm = runtimeConfigMap(
      stackWith("confidential", "vastai", {
        trust:
          "{ exceptions: [{ name: SEC-42, model: m, provider: vastai, reason: 'synthetic data only, reviewed by security' } ] }",
      }),
    );
    expect(messages(approvedGpuProviders(), [cm])).toEqual([]);
    const refused = messages(approvedGpuProviders(), [cm], {
      "approved-gpu-providers": { allowExceptions: false },
    });
    expect(refused[0]).toMatch(/not honoured by this organisation's policy/);
  });

  it("ignores ConfigMaps that are not the runtime config", () => {
    const other = resource("kubernetes:core/v1:ConfigMap", "other", { data: { "runtime.json": "{}" } });
    expect(messages(approvedGpuProviders(), [other])).toEqual([]);
  });

  it("reports a runtime config that does not parse", () => {
    const cm = runtimeConfigMap();
    (cm.props.data as Record<string, string>)["runtime.json"] = '{"version": 2}';
    expect(messages(approvedGpuProviders(), [cm])[0]).toMatch(/does not parse/);
  });
});

describe("approved-gpu-providers: RunPod serverless endpoints", () => {
  const endpoint = (dataClass: string, dataCenterIds: string[]) =>
    resource("pulumi-nodejs:dynamic/runpod:Endpoint", "runpod-llm", {
      name: "llm",
      model: "llm",
      dataClass,
      dataCenterIds,
      gpuPoolIds: ["ADA_24"],
    });

  it("a confidential endpoint must be pinned to secure-cloud data centres", () => {
    const [message] = messages(approvedGpuProviders(), [endpoint("confidential", [])]);
    expect(message).toMatch(
      /Endpoint "runpod-llm" \(model llm, confidential\) may run on community hosts: dataCenterIds is empty/,
    );
    expect(message).toContain(
      "pin ai-orchestrator:providers.runpod-serverless.dataCenters to secure data centres",
    );
    expect(messages(approvedGpuProviders(), [endpoint("confidential", ["EU-RO-1", "EU-XX-1"])])).toHaveLength(
      1,
    );
    expect(messages(approvedGpuProviders(), [endpoint("confidential", ["EU-RO-1", "US-TX-3"])])).toEqual([]);
  });

  it("public data may use any RunPod host", () => {
    expect(messages(approvedGpuProviders(), [endpoint("public", [])])).toEqual([]);
  });
});

describe("the controller refuses what the pack refuses, with the same reason", () => {
  it.each(["vastai", "runpod-serverless:community"] as const)("confidential on %s", (offering) => {
    const stack = stackWith("confidential", offering);
    const runtime = renderRuntimeConfig(loadStackConfig(parseStackFile(stackYaml(stack), "x.yaml")), "test");
    const decision = decideProvision(runtime, "m", OFFERINGS[offering].provider);
    expect(decision.allowed).toBe(false);
    const [policyMessage] = messages(approvedGpuProviders(), [runtimeConfigMap(stack)]);
    expect(policyMessage).toContain(refusalText(decision));
  });
});

describe("gdpr-region", () => {
  const gdprStack = (dataCenters: string, dataClass = "confidential") =>
    runtimeConfigMap({
      dataClass,
      gdpr: "true",
      providers: `{ runpod-serverless: { dataCenters: ${dataCenters} } }`,
      models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_4090], providers: [runpod-serverless] }]",
    });

  it("passes EU/EEA data centres", () => {
    expect(messages(gdprRegion(), [gdprStack("[EU-RO-1, EU-SE-1]")])).toEqual([]);
  });

  it("refuses a data centre outside the EU/EEA and names it", () => {
    const [message] = messages(gdprRegion(), [gdprStack("[EU-RO-1, US-TX-3]")]);
    expect(message).toMatch(/data centre US-TX-3 is outside the EU\/EEA\. Fix: remove US-TX-3/);
  });

  it("refuses a provider not pinned to any data centre", () => {
    expect(messages(gdprRegion(), [gdprStack("[]")])[0]).toMatch(
      /not pinned to EU\/EEA data centres\. Fix: set .*dataCenters to EU\/EEA ones: EU-RO-1/,
    );
  });

  it("does not apply to non-confidential data or stacks without GDPR, unless the organisation requires it", () => {
    expect(messages(gdprRegion(), [gdprStack("[]", "internal")])).toEqual([]);
    const noGdpr = runtimeConfigMap(stackWith("confidential", "runpod-serverless:secure"));
    expect(messages(gdprRegion(), [noGdpr])).toEqual([]);
    expect(messages(gdprRegion(), [noGdpr], { "gdpr-region": { requireGdpr: true } })).toHaveLength(1);
  });

  it("DataCrunch locations are all EU/EEA", () => {
    const cm = runtimeConfigMap({ ...stackWith("confidential", "datacrunch"), gdpr: "true" });
    expect(messages(gdprRegion(), [cm])).toEqual([]);
  });
});

describe("scale-to-zero", () => {
  it("flags a model that keeps workers with their monthly cost, unless marked always-on", () => {
    const warm = runtimeConfigMap({
      models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], minWorkers: 1 }]",
    });
    const found = violations(scaleToZero(), [warm]);
    expect(found[0]?.level).toBe("advisory");
    expect(found[0]?.message).toMatch(
      /minWorkers is 1: .* \(at least \$146\.00\/month on vastai\)\. Fix: set minWorkers: 0/,
    );
    const alwaysOn = runtimeConfigMap({
      models:
        "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], minWorkers: 1, alwaysOn: true }]",
    });
    expect(messages(scaleToZero(), [alwaysOn])).toEqual([]);
    expect(messages(scaleToZero(), [runtimeConfigMap()])).toEqual([]);
  });
});

describe("budget-required", () => {
  it("requires a stack budget", () => {
    expect(messages(budgetRequired(), [runtimeConfigMap({ budget: "" })])[0]).toMatch(
      /ai-orchestrator:budget is not set.*Fix: set ai-orchestrator:budget\.monthlyUsd/,
    );
    expect(messages(budgetRequired(), [runtimeConfigMap()])).toEqual([]);
  });

  it("refuses a model budget above the stack's", () => {
    const cm = runtimeConfigMap({
      budget: "{ monthlyUsd: 100 }",
      models:
        "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], monthlyBudgetUsd: 150 }]",
    });
    expect(messages(budgetRequired(), [cm])[0]).toMatch(
      /models\[0\]\.monthlyBudgetUsd is 150, above the stack's 100/,
    );
  });
});

describe("gpu-allowlist", () => {
  it("allows catalog GPUs and 8 workers by default", () => {
    expect(messages(gpuAllowlist(), [runtimeConfigMap()])).toEqual([]);
  });

  it("refuses a GPU off the configured list and workers above the cap", () => {
    const cm = runtimeConfigMap({
      models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 5 }]",
    });
    const found = messages(gpuAllowlist(), [cm], {
      "gpu-allowlist": { allowedGpus: ["RTX_4090"], maxWorkersCap: 4 },
    });
    expect(found).toEqual([
      expect.stringMatching(/models\[0\]\.gpu\[0\] is RTX_3090, not on the GPU allow-list \(RTX_4090\)/),
      expect.stringMatching(/models\[0\]\.maxWorkers is 5, above the cap of 4/),
    ]);
  });
});

describe("gateway-tls", () => {
  const ingress = (spec: Record<string, unknown>, annotations: Record<string, string> = {}) =>
    resource("kubernetes:networking.k8s.io/v1:Ingress", "gateway", { metadata: { annotations }, spec });
  const rules = [{ host: "ai.example.com", http: { paths: [] } }];

  it("passes an Ingress whose TLS covers its hosts", () => {
    expect(
      messages(gatewayTls(), [ingress({ rules, tls: [{ hosts: ["ai.example.com"], secretName: "tls" }] })]),
    ).toEqual([]);
  });

  it("refuses an Ingress without TLS or with a host it does not cover", () => {
    expect(messages(gatewayTls(), [ingress({ rules })])[0]).toMatch(
      /Ingress "gateway" serves ai\.example\.com without TLS/,
    );
    const partial = ingress({
      rules: [...rules, { host: "b.example.com" }],
      tls: [{ hosts: ["ai.example.com"] }],
    });
    expect(messages(gatewayTls(), [partial])[0]).toMatch(/serves b\.example\.com without TLS/);
  });

  it("refuses switching the HTTPS redirect off", () => {
    const off = ingress(
      { rules, tls: [{ hosts: ["ai.example.com"] }] },
      { "nginx.ingress.kubernetes.io/ssl-redirect": "false" },
    );
    expect(messages(gatewayTls(), [off])[0]).toMatch(/ssl-redirect/);
  });

  it("refuses a TLS Ingress that Traefik would also serve on plain HTTP; passes websecure only", () => {
    const spec = { ingressClassName: "traefik", rules, tls: [{ hosts: ["ai.example.com"] }] };
    expect(messages(gatewayTls(), [ingress(spec)])[0]).toMatch(
      /served by Traefik on plain HTTP.*router\.entrypoints: websecure/,
    );
    const both = ingress(spec, { "traefik.ingress.kubernetes.io/router.entrypoints": "web,websecure" });
    expect(messages(gatewayTls(), [both])).toHaveLength(1);
    const httpsOnly = ingress(spec, { "traefik.ingress.kubernetes.io/router.entrypoints": "websecure" });
    expect(messages(gatewayTls(), [httpsOnly])).toEqual([]);
  });

  it("refuses a public plain-HTTP Service, passes ClusterIP", () => {
    const lb = resource("kubernetes:core/v1:Service", "gw", {
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    expect(messages(gatewayTls(), [lb])[0]).toMatch(/LoadBalancer exposing port 80 without TLS/);
    const internal = resource("kubernetes:core/v1:Service", "gw", { spec: { ports: [{ port: 80 }] } });
    expect(messages(gatewayTls(), [internal])).toEqual([]);
  });
});

describe("redis-auth", () => {
  const redisLabels = { app: "redis" };
  const secretEnv = [
    { name: "REDIS_PASSWORD", valueFrom: { secretKeyRef: { name: "redis", key: "password" } } },
  ];
  const guarded = networkPolicy("redis-ingress", {
    podSelector: { matchLabels: redisLabels },
    policyTypes: ["Ingress"],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "gateway" } } }], ports: [{ port: 6379 }] }],
  });
  const redis = (containers: Parameters<typeof deployment>[1]) =>
    deployment("redis", containers, { labels: redisLabels, kind: "StatefulSet" });

  it("passes Redis with a password from a Secret, reachable only from pods of the namespace", () => {
    const ok = redis([
      { name: "redis", image: "redis:7", args: ["--requirepass", "$(REDIS_PASSWORD)"], env: secretEnv },
    ]);
    const service = resource("kubernetes:core/v1:Service", "redis", {
      metadata: { namespace: "ai-orchestrator" },
      spec: { selector: redisLabels, ports: [{ port: 6379 }] },
    });
    expect(messages(redisAuth(), [ok, service, guarded])).toEqual([]);
  });

  it("refuses Redis without a password, or with a literal one", () => {
    expect(messages(redisAuth(), [redis([{ name: "redis", image: "redis:7" }]), guarded])[0]).toMatch(
      /runs Redis without a password from a Secret/,
    );
    const literal = redis([
      {
        name: "redis",
        image: "redis:7",
        args: ["--requirepass", "$(REDIS_PASSWORD)"],
        env: [{ name: "REDIS_PASSWORD", value: "hunter2hunter2" }],
      },
    ]);
    expect(messages(redisAuth(), [literal, guarded])).toHaveLength(1);
  });

  it("refuses Redis without a NetworkPolicy, or one open to other namespaces", () => {
    const ok = redis([
      { name: "redis", image: "redis:7", args: ["--requirepass", "$(REDIS_PASSWORD)"], env: secretEnv },
    ]);
    expect(messages(redisAuth(), [ok])[0]).toMatch(/no NetworkPolicy restricts ingress to Redis/);
    const open = networkPolicy("redis-open", {
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ namespaceSelector: {} }] }],
    });
    expect(messages(redisAuth(), [ok, open])[0]).toMatch(/admits traffic from outside its namespace/);
  });

  it("refuses a LoadBalancer Service in front of Redis", () => {
    const ok = redis([
      { name: "redis", image: "redis:7", args: ["--requirepass", "$(REDIS_PASSWORD)"], env: secretEnv },
    ]);
    const lb = resource("kubernetes:core/v1:Service", "redis-public", {
      metadata: { namespace: "ai-orchestrator" },
      spec: { type: "LoadBalancer", selector: redisLabels, ports: [{ port: 6379 }] },
    });
    expect(messages(redisAuth(), [ok, lb, guarded])[0]).toMatch(/exposes Redis as LoadBalancer/);
  });
});

describe("secrets-not-plaintext", () => {
  const runpodKey = `rpa_${"A1b2C3d4".repeat(4)}`;

  it("refuses a credential in a ConfigMap without printing it", () => {
    const cm = resource("kubernetes:core/v1:ConfigMap", "settings", {
      data: { "app.env": `RUNPOD=${runpodKey}` },
    });
    const [message] = messages(secretsNotPlaintext(), [cm]);
    expect(message).toMatch(
      /ConfigMap "settings" data\.app\.env holds a RunPod API key\. Fix: move it to a Kubernetes Secret/,
    );
    expect(message).not.toContain(runpodKey);
  });

  it("refuses env literals that are credentials by value or by name; secretKeyRef passes", () => {
    const d = deployment("controller", [
      {
        name: "controller",
        env: [
          { name: "VASTAI_API_KEY", value: "0123456789abcdef" },
          { name: "HF", value: `hf_${"x".repeat(34)}` },
          { name: "RUNPOD_API_KEY", valueFrom: { secretKeyRef: { name: "creds", key: "runpod" } } },
          { name: "LOG_LEVEL", value: "info" },
        ],
      },
    ]);
    const found = messages(secretsNotPlaintext(), [d]);
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(
      /env VASTAI_API_KEY is a literal holding a credential \(by its name\)\. Fix: use valueFrom\.secretKeyRef/,
    );
    expect(found[1]).toMatch(/env HF is a literal holding a Hugging Face token/);
  });

  it("refuses credentials in annotations and labels", () => {
    const d = resource("kubernetes:core/v1:Service", "svc", {
      metadata: { annotations: { token: `sk-${"a".repeat(40)}` } },
    });
    expect(messages(secretsNotPlaintext(), [d])[0]).toMatch(/annotation token holds an API key/);
  });

  it("a Secret may hold credentials", () => {
    const s = resource("kubernetes:core/v1:Secret", "creds", { stringData: { key: runpodKey } });
    expect(messages(secretsNotPlaintext(), [s])).toEqual([]);
  });
});

describe("pod-hardening", () => {
  it("lists what a container lacks", () => {
    const [message] = messages(podHardening(), [
      deployment("gw", [{ name: "gateway", image: "node:22-alpine" }]),
    ]);
    expect(message).toMatch(/container "gateway" lacks runAsNonRoot: true, allowPrivilegeEscalation: false/);
    expect(message).toContain("resources.limits.memory");
  });

  it("passes a hardened container", () => {
    expect(
      messages(podHardening(), [
        deployment("gw", [{ name: "gateway", image: "node:22-alpine", ...HARDENED }]),
      ]),
    ).toEqual([]);
  });
});

describe("network-policies", () => {
  const gw = deployment("gateway", [{ name: "gateway" }], { labels: { app: "gateway" } });

  it("flags a workload no NetworkPolicy selects", () => {
    expect(messages(networkPolicies(), [gw])[0]).toMatch(
      /Deployment "gateway" in namespace ai-orchestrator is not selected by any NetworkPolicy/,
    );
    const elsewhere = networkPolicy("deny", { podSelector: {} }, "other");
    expect(messages(networkPolicies(), [gw, elsewhere])).toHaveLength(1);
  });

  it("a default-deny or a matching policy covers it", () => {
    expect(messages(networkPolicies(), [gw, networkPolicy("deny", { podSelector: {} })])).toEqual([]);
    const match = networkPolicy("gw", {
      podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["gateway", "x"] }] },
    });
    expect(messages(networkPolicies(), [gw, match])).toEqual([]);
  });
});

describe("no-insecure-tunnels", () => {
  it("refuses SSH with host-key checking off in args, env and server user data", () => {
    const d = deployment("tunnel", [
      { name: "ssh", args: ["ssh", "-o", "StrictHostKeyChecking=no", "worker"] },
      { name: "env", env: [{ name: "SSH_OPTS", value: "-o UserKnownHostsFile=/dev/null" }] },
    ]);
    expect(messages(noInsecureTunnels(), [d])).toEqual([
      expect.stringMatching(/container "ssh" args disables SSH host-key checking\. Fix: pin the host key/),
      expect.stringMatching(/container "env" env SSH_OPTS disables SSH host-key checking/),
    ]);
    const server = resource("hcloud:index/server:Server", "node", {
      userData: "ssh -oStrictHostKeyChecking=no x",
    });
    expect(messages(noInsecureTunnels(), [server])).toHaveLength(1);
  });

  it("passes pinned SSH", () => {
    const d = deployment("tunnel", [
      { name: "ssh", args: ["ssh", "-o", "StrictHostKeyChecking=yes", "worker"] },
    ]);
    expect(messages(noInsecureTunnels(), [d])).toEqual([]);
  });
});

describe("confidential-protections", () => {
  it("a confidential stack must keep Redis mTLS and queue encryption on", () => {
    const off = runtimeConfigMap({
      ...stackWith("confidential", "datacrunch"),
      security: "{ redisTls: false, encryptQueued: false }",
    });
    const [message] = messages(confidentialProtections(), [off]);
    expect(message).toMatch(/security\.redisTls is off but models m hold confidential data/);
    expect(message).toContain(
      "ai-orchestrator:security.redisTls: true and ai-orchestrator:security.encryptQueued: true",
    );
    expect(
      messages(confidentialProtections(), [runtimeConfigMap(stackWith("confidential", "datacrunch"))]),
    ).toEqual([]);
  });

  it("does not apply to stacks without confidential data", () => {
    const off = runtimeConfigMap({
      ...stackWith("public", "vastai"),
      security: "{ redisTls: false, encryptQueued: false }",
    });
    expect(messages(confidentialProtections(), [off])).toEqual([]);
  });
});

describe("pinned-model-revision", () => {
  const withRevision = (dataClass: string, extra: string) =>
    runtimeConfigMap({
      ...stackWith(dataClass, "datacrunch"),
      models: `[{ name: m, kind: chat, source: o/m, gpu: [A100_80GB], providers: [datacrunch]${extra} }]`,
    });
  const pinned = "0123456789abcdef0123456789abcdef01234567";

  it("a confidential model must pin its weights to a commit; a branch is refused", () => {
    expect(
      messages(pinnedModelRevision("mandatory", "confidential"), [
        withRevision("confidential", ", revision: main"),
      ])[0],
    ).toMatch(
      /models\[0\]\.revision is "main", not a commit: model "m" serves whatever its repository holds/,
    );
    expect(
      messages(pinnedModelRevision("mandatory", "confidential"), [withRevision("confidential", "")])[0],
    ).toMatch(/is not set/);
    expect(
      messages(pinnedModelRevision("mandatory", "confidential"), [
        withRevision("confidential", `, revision: ${pinned}`),
      ]),
    ).toEqual([]);
  });

  it("every variant of a rollout is checked, with its own key", () => {
    const rollout = withRevision(
      "confidential",
      `, revision: ${pinned}, variants: [{ name: v1, weight: 90 }, { name: v2, source: o/m2, revision: v2-branch, weight: 10 }]`,
    );
    expect(messages(pinnedModelRevision("mandatory", "confidential"), [rollout])).toEqual([
      expect.stringMatching(
        /^ai-orchestrator:models\[0\]\.variants\[1\]\.revision is "v2-branch", not a commit: variant "v2" of model "m"/,
      ),
    ]);
  });

  it("for other data classes it is advice, not a refusal", () => {
    const found = violations(pinnedModelRevision("advisory", "other"), [withRevision("public", "")]);
    expect(found[0]?.level).toBe("advisory");
    expect(messages(pinnedModelRevision("advisory", "other"), [withRevision("confidential", "")])).toEqual(
      [],
    );
  });
});
