/**
 * The planned stacks' Kubernetes objects, checked the way the API server would: every manifest validates
 * against the Kubernetes (and prometheus-operator) schemas, and no secret lands where anyone can read it.
 */

import { beforeAll, describe, expect, it } from "vitest";
import { GATEWAY_NODE_FLAGS, GATEWAY_PROCESS_ENV } from "../../core/process-env";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";

interface PlannedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
interface PlanJson {
  resources: PlannedResource[];
  outputs: Record<string, unknown>;
}

function plan(args: string[], cwd?: string): PlanJson {
  const result = aiorch(["plan", "--json", ...args], cwd);
  if (result.code !== 0 && result.code !== 1)
    throw new Error(`plan failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as PlanJson;
}

/** The @kubernetes-models class for a Pulumi Kubernetes type token. */
function modelClassFor(type: string): { new (data: unknown): { validate(): void } } {
  const [, groupVersion, kind] = /^kubernetes:([^:]+):(\w+)$/.exec(type) ?? [];
  if (!groupVersion || !kind) throw new Error(`not a kubernetes type: ${type}`);
  const path = groupVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${groupVersion}/${kind}`
    : groupVersion.startsWith("cert-manager.io/")
      ? `@kubernetes-models/cert-manager/${groupVersion}/${kind}`
      : `kubernetes-models/${groupVersion.replace(/^core\//, "")}/${kind}`;
  return (require(path) as Record<string, { new (data: unknown): { validate(): void } }>)[kind]!;
}

const stacks: Record<string, PlanJson> = {};
let withSecrets: PlanJson;
let withSecretsRaw: string;

beforeAll(() => {
  stacks.dev = plan(["--stack", "dev"]);
  stacks.prod = plan(["--stack", "prod"]);
  const secrets = {
    "ai-orchestrator:runpodApiKey": "{ secure: v1:CIPHERrunpod }",
    "ai-orchestrator:vastaiApiKey": "{ secure: v1:CIPHERvast }",
    "ai-orchestrator:hfToken": "{ secure: v1:CIPHERhf }",
    "ai-orchestrator:kubeconfig": "{ secure: v1:CIPHERkube }",
  };
  const dir = tempProject({ "Pulumi.s.yaml": stackYaml(secrets) });
  try {
    const result = aiorch(["plan", "--json", "--stack", "s"], dir);
    withSecretsRaw = result.stdout + result.stderr;
    withSecrets = JSON.parse(result.stdout) as PlanJson;
  } finally {
    removeProject(dir);
  }
}, 300_000); // three whole plans: a safety net for hangs, well past their time on a loaded machine

describe.each(["dev", "prod"])("stack %s", (stack) => {
  it("every Kubernetes manifest validates against its schema", () => {
    const manifests = stacks[stack]!.resources.filter(
      (r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm"),
    );
    expect(manifests.length).toBeGreaterThan(8);
    for (const manifest of manifests) {
      const Model = modelClassFor(manifest.type);
      expect(() => new Model(manifest.inputs).validate(), `${manifest.type} ${manifest.name}`).not.toThrow();
    }
  });

  it("declares Redis, the alert rules, the monitors and the dashboard", () => {
    const types = stacks[stack]!.resources.map((r) => r.type);
    expect(types).toContain("kubernetes:apps/v1:StatefulSet");
    expect(types).toContain("kubernetes:monitoring.coreos.com/v1:PrometheusRule");
    expect(types.filter((t) => t === "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")).toHaveLength(2);
    const rule = stacks[stack]!.resources.find((r) => r.type.endsWith(":PrometheusRule"))!;
    expect((rule.inputs.metadata as { labels: Record<string, string> }).labels.release).toBe(
      "kube-prometheus-stack",
    );
    const dashboard = stacks[stack]!.resources.find((r) => r.name === "monitoring-dashboard")!;
    expect((dashboard.inputs.metadata as { labels: Record<string, string> }).labels.grafana_dashboard).toBe(
      "1",
    );
  });

  it("runs the gateway and controller from their bundles, the gateway behind a TLS Ingress", () => {
    const resources = stacks[stack]!.resources;
    const deployments = resources.filter((r) => r.type === "kubernetes:apps/v1:Deployment");
    expect(deployments.map((d) => (d.inputs.metadata as { name: string }).name).sort()).toEqual([
      "controller",
      "gateway",
    ]);
    for (const d of deployments) {
      const template = (
        d.inputs.spec as {
          template: {
            metadata: { annotations: Record<string, string> };
            spec: {
              containers: { image: string; command: string[]; env: { name: string; value?: string }[] }[];
            };
          };
        }
      ).template;
      const container = template.spec.containers[0]!;
      // a tag with its digest: the image cannot move under a running stack
      expect(container.image).toMatch(/^node:22\.\d+\.\d+-bookworm-slim@sha256:[0-9a-f]{64}$/);
      const name = (d.inputs.metadata as { name: string }).name;
      if (name.endsWith("gateway")) {
        // the gateway runs with the memory settings bench:gateway measured
        expect(container.command.slice(0, 1 + GATEWAY_NODE_FLAGS.length)).toEqual([
          "node",
          ...GATEWAY_NODE_FLAGS,
        ]);
        for (const [key, value] of Object.entries(GATEWAY_PROCESS_ENV))
          expect(container.env).toContainEqual({ name: key, value });
      }
      const bundle = resources.find((r) => r.name === `${name}-bundle-code`)!;
      // the pod template carries the bundle's hash, so new code rolls the Deployment
      expect(template.metadata.annotations["aiorch.dev/bundle-sha256"]).toBe(
        (bundle.inputs.metadata as { annotations: Record<string, string> }).annotations[
          "aiorch.dev/bundle-sha256"
        ],
      );
    }
    const ingress = resources.find((r) => r.type === "kubernetes:networking.k8s.io/v1:Ingress")!;
    const spec = ingress.inputs.spec as { tls: { hosts: string[] }[]; rules: { host: string }[] };
    expect(spec.tls[0]!.hosts).toEqual([spec.rules[0]!.host]);
    expect(resources.some((r) => r.type === "kubernetes:policy/v1:PodDisruptionBudget")).toBe(true);
    expect(resources.some((r) => r.type === "kubernetes:core/v1:ServiceAccount")).toBe(true);
    // no Role or binding: the controller has no cluster permissions
    expect(resources.some((r) => r.type.includes("rbac.authorization.k8s.io"))).toBe(false);
  });

  it("Redis persists to a volume and takes its password from the generated Secret", () => {
    const sts = stacks[stack]!.resources.find((r) => r.type === "kubernetes:apps/v1:StatefulSet")!;
    const spec = sts.inputs.spec as {
      template: { spec: { containers: { args: string[]; env: { name: string; valueFrom?: unknown }[] }[] } };
      volumeClaimTemplates: unknown[];
    };
    const container = spec.template.spec.containers[0]!;
    expect(container.args.join(" ")).toContain("--appendonly yes");
    expect(container.args.join(" ")).toContain("--requirepass $(REDIS_PASSWORD)");
    expect(container.env.find((e) => e.name === "REDIS_PASSWORD")?.valueFrom).toMatchObject({
      secretKeyRef: { key: "password" },
    });
    expect(spec.volumeClaimTemplates).toHaveLength(1);
  });
});

describe("no secret where anyone can read it", () => {
  const readable = (r: PlannedResource): [string, unknown][] => {
    const metadata = (r.inputs.metadata ?? {}) as { labels?: object; annotations?: object };
    const places: [string, unknown][] = [
      [`${r.name} labels`, metadata.labels],
      [`${r.name} annotations`, metadata.annotations],
    ];
    if (r.type === "kubernetes:core/v1:ConfigMap") places.push([`${r.name} data`, r.inputs.data]);
    return places;
  };

  it("ConfigMaps, labels and annotations hold no secret; the ciphertext and placeholders never print", () => {
    for (const plan of [withSecrets, stacks.dev!, stacks.prod!]) {
      for (const r of plan.resources) {
        for (const [where, value] of readable(r))
          expect(JSON.stringify(value ?? {}), where).not.toMatch(/\[secret\]|offline-secret/);
      }
    }
    expect(withSecretsRaw).not.toMatch(/CIPHER|offline-secret/);
  });

  it("plain stack outputs hold no secret; the kubeconfig output is a secret", () => {
    for (const plan of [withSecrets, stacks.dev!, stacks.prod!]) {
      const { kubeconfig, ...plain } = plan.outputs;
      expect(kubeconfig).toBe("[secret]");
      expect(JSON.stringify(plain)).not.toMatch(/\[secret\]|offline-secret/);
    }
  });

  it("credentials reach the cluster only as Secrets", () => {
    const secrets = withSecrets.resources.filter((r) => r.type === "kubernetes:core/v1:Secret");
    const credentials = secrets.find((s) => s.name === "runtime-credentials")!;
    expect(credentials.inputs.stringData).toEqual({ VASTAI_API_KEY: "[secret]", HF_TOKEN: "[secret]" });
  });
});
