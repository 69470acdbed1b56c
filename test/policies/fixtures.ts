/** Resources shaped the way the policy engine passes them (plain inputs), for calling policies directly. */
import { loadStackConfig, parseStackFile, RUNTIME_CONFIG_FILE, renderRuntimeConfig } from "../../core/config";
import { stackYaml } from "../../devkit/stack-yaml";
import { type OfflineViolation, type PackConfig, runPoliciesOffline } from "../../policies/offline";
import type { AiorchPolicy } from "../../policies/policies";

export interface TestResource {
  urn: string;
  type: string;
  name: string;
  props: Record<string, unknown>;
}

let counter = 0;
export function resource(type: string, name: string, props: Record<string, unknown>): TestResource {
  counter += 1;
  return { urn: `urn:pulumi:test::ai-orchestrator::${type}::${name}-${counter}`, type, name, props };
}

/** The runtime ConfigMap the stack renders for this config (same labels and file name as the component's). */
export function runtimeConfigMap(overrides: Record<string, string> = {}): TestResource {
  const loaded = loadStackConfig(parseStackFile(stackYaml(overrides), "Pulumi.test.yaml"));
  return resource("kubernetes:core/v1:ConfigMap", "runtime-config", {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      namespace: "ai-orchestrator",
      labels: {
        "app.kubernetes.io/part-of": "ai-orchestrator",
        "app.kubernetes.io/component": "runtime-config",
      },
    },
    data: { [RUNTIME_CONFIG_FILE]: JSON.stringify(renderRuntimeConfig(loaded, "test"), null, 2) },
  });
}

export function violations(
  policy: AiorchPolicy,
  resources: TestResource[],
  config: PackConfig = {},
): OfflineViolation[] {
  return runPoliciesOffline([policy], resources, config);
}

export const messages = (
  policy: AiorchPolicy,
  resources: TestResource[],
  config: PackConfig = {},
): string[] => violations(policy, resources, config).map((v) => v.message);

export interface ContainerSpec {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
}

export const HARDENED = {
  securityContext: {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  },
  resources: { limits: { cpu: "500m", memory: "256Mi" } },
};

export function deployment(
  name: string,
  containers: ContainerSpec[],
  options: { namespace?: string; labels?: Record<string, string>; kind?: "Deployment" | "StatefulSet" } = {},
): TestResource {
  const labels = options.labels ?? { app: name };
  const kind = options.kind ?? "Deployment";
  return resource(`kubernetes:apps/v1:${kind}`, name, {
    apiVersion: "apps/v1",
    kind,
    metadata: { name, namespace: options.namespace ?? "ai-orchestrator" },
    spec: {
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers } },
    },
  });
}

export function networkPolicy(
  name: string,
  spec: Record<string, unknown>,
  namespace = "ai-orchestrator",
): TestResource {
  return resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", name, {
    metadata: { name, namespace },
    spec,
  });
}
