/**
 * The MCP server in the cluster (stack config `mcp`), from the planned manifests: off by default; when enabled, a
 * port of the controller's pod and its ClusterIP Service, admitted by the NetworkPolicy only from the stack's
 * namespace and the namespaces listed, never in the Ingress. Every manifest validates (@kubernetes-models).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";

interface PlannedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

function planOf(overrides: Record<string, string>): PlannedResource[] {
  const dir = tempProject({ "Pulumi.s.yaml": stackYaml({ namespace: "ai", ...overrides }) });
  try {
    const result = aiorch(["plan", "--json", "--stack", "s"], dir);
    if (result.code !== 0 && result.code !== 1)
      throw new Error(`plan failed (${result.code}): ${result.stderr}`);
    return (JSON.parse(result.stdout) as { resources: PlannedResource[] }).resources;
  } finally {
    removeProject(dir);
  }
}

/** The @kubernetes-models class for a Pulumi Kubernetes type token (as manifests.test.ts). */
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

const named = (resources: PlannedResource[], type: string, name: string) =>
  resources.find((r) => r.type === type && (r.inputs.metadata as { name?: string })?.name === name)!;
type Container = { ports: { name: string; containerPort: number }[]; command: string[] };
const controllerContainer = (resources: PlannedResource[]) =>
  (
    named(resources, "kubernetes:apps/v1:Deployment", "controller").inputs.spec as {
      template: { spec: { containers: Container[] } };
    }
  ).template.spec.containers[0]!;

let off: PlannedResource[];
let on: PlannedResource[];
beforeAll(() => {
  off = planOf({});
  on = planOf({ mcp: "{ enabled: true, allowFromNamespaces: [assistants] }" });
}, 120_000);

describe("MCP in the cluster", () => {
  it("is off by default: no MCP port on the controller", () => {
    const container = controllerContainer(off);
    expect(container.ports.map((p) => p.name)).toEqual(["metrics"]);
    expect(container.command).not.toContain("--mcp-port");
  });

  it("enabled: a port of the controller's pod and Service, admitted only from in-cluster namespaces, never in the Ingress", () => {
    const container = controllerContainer(on);
    expect(container.ports).toContainEqual({ name: "mcp", containerPort: 8090 });
    expect(container.command.join(" ")).toContain("--mcp-port 8090");
    const service = named(on, "kubernetes:core/v1:Service", "controller").inputs.spec as {
      type: string;
      ports: { name: string; port: number }[];
    };
    expect(service.type).toBe("ClusterIP");
    expect(service.ports).toContainEqual(expect.objectContaining({ name: "mcp", port: 8090 }));
    const policy = named(on, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "controller").inputs.spec as {
      ingress: {
        ports: { port: number }[];
        from: { namespaceSelector?: { matchLabels: Record<string, string> }; ipBlock?: unknown }[];
      }[];
    };
    const mcpRule = policy.ingress.find((rule) => rule.ports.some((p) => p.port === 8090))!;
    expect(mcpRule.from.map((f) => f.namespaceSelector?.matchLabels["kubernetes.io/metadata.name"])).toEqual([
      "ai",
      "assistants",
    ]);
    expect(mcpRule.from.some((f) => f.ipBlock !== undefined)).toBe(false);
    for (const ingress of on.filter((r) => r.type === "kubernetes:networking.k8s.io/v1:Ingress"))
      expect(JSON.stringify(ingress.inputs)).not.toMatch(/"controller"|8090/);
    for (const manifest of on.filter(
      (r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm"),
    )) {
      const Model = modelClassFor(manifest.type);
      expect(() => new Model(manifest.inputs).validate(), `${manifest.type} ${manifest.name}`).not.toThrow();
    }
  });

  it("a bad port names the field and the fix", () => {
    const dir = tempProject({ "Pulumi.s.yaml": stackYaml({ mcp: "{ enabled: true, port: 9090 }" }) });
    try {
      const result = aiorch(["plan", "--stack", "s"], dir);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("ai-orchestrator:mcp.port");
      expect(result.stderr).toContain("pick another, e.g. 8090");
    } finally {
      removeProject(dir);
    }
  }, 180_000);
});
