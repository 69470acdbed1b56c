/**
 * The ai-orchestrator policy pack's rules, as pure factories. `index.ts` builds the pack from `allPolicies()`;
 * `aiorch plan` runs the same policies offline on the planned resources. Model-level rules read the stack's
 * runtime config from its ConfigMap — exactly what the gateway and controller will act on — and call the trust
 * rules in `core/`, which the controller also calls before every provision.
 */
import type {
  EnforcementLevel,
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import type { PolicyConfigJSONSchema } from "@pulumi/policy/schema";
import { GPU_IDS, HOURS_PER_MONTH } from "../core/catalog";
import {
  DATA_CLASSES,
  type DataClass,
  PINNED_REVISION,
  parseRuntimeConfig,
  RUNTIME_CONFIG_COMPONENT,
  RUNTIME_CONFIG_FILE,
  type RuntimeConfig,
} from "../core/config";
import { K3S_TRAEFIK, TRAEFIK_ENTRYPOINTS_ANNOTATION, TRAEFIK_HTTPS_ENTRYPOINT } from "../core/platform";
import {
  decideProviderUse,
  decideRegion,
  NO_TRUST_OVERRIDES,
  OFFERING_IDS,
  offeringFor,
  placementOf,
  refusalText,
} from "../core/trust";
import { credentialKind, disablesHostKeyChecking, isCredentialName } from "./credentials";
import {
  allContainers,
  isWorkloadType,
  type Json,
  K8S,
  namespaceOf,
  selectorMatches,
  type Workload,
  workloadOf,
} from "./k8s";

export type AiorchPolicy = (ResourceValidationPolicy | StackValidationPolicy) & {
  readonly enforcementLevel: EnforcementLevel;
};
type AiorchResourcePolicy = ResourceValidationPolicy & { readonly enforcementLevel: EnforcementLevel };

const key = (path: string) => `ai-orchestrator:${path}`;
const describe = (args: { type: string; name: string }) => `${args.type.split(":").pop()} "${args.name}"`;

/** The runtime config held by a ConfigMap, or undefined for any other resource. */
function runtimeConfigOf(args: ResourceValidationArgs, report: ReportViolation): RuntimeConfig | undefined {
  if (args.type !== K8S.configMap) return undefined;
  const labels = (args.props.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {};
  const text = (args.props.data as Record<string, unknown> | undefined)?.[RUNTIME_CONFIG_FILE];
  if (labels["app.kubernetes.io/component"] !== RUNTIME_CONFIG_COMPONENT || typeof text !== "string")
    return undefined;
  try {
    return parseRuntimeConfig(JSON.parse(text));
  } catch (error) {
    report(`${describe(args)} holds a runtime config that does not parse: ${(error as Error).message}`);
    return undefined;
  }
}

/** A resource policy over the stack's runtime config. */
function runtimePolicy(
  base: Omit<ResourceValidationPolicy, "validateResource" | "enforcementLevel">,
  enforcementLevel: EnforcementLevel,
  check: (runtime: RuntimeConfig, args: ResourceValidationArgs, report: ReportViolation) => void,
): AiorchResourcePolicy {
  return {
    ...base,
    enforcementLevel,
    validateResource: (args, report) => {
      const runtime = runtimeConfigOf(args, report);
      if (runtime) check(runtime, args, report);
    },
  };
}

const offeringList = (): PolicyConfigJSONSchema => ({
  type: "array",
  items: { type: "string", enum: [...OFFERING_IDS] },
});

export interface ApprovedProvidersConfig {
  /** Per data class, the offerings allowed (tightens the stack's lists; cannot widen confidential). */
  approved?: Partial<Record<DataClass, string[]>>;
  /** Honour the stack's named exceptions. @default true */
  allowExceptions?: boolean;
}

/** Token of the RunPod serverless endpoint resource (a dynamic provider). */
export const RUNPOD_ENDPOINT_TYPE = "pulumi-nodejs:dynamic/runpod:Endpoint";

/**
 * A RunPod serverless endpoint has no cloud setting: it counts as secure cloud only when every data centre it may
 * use is a secure-cloud one. Data a class would refuse on community cloud must be pinned.
 */
function checkRunPodEndpoint(
  args: ResourceValidationArgs,
  report: ReportViolation,
  config: ApprovedProvidersConfig,
): void {
  const props = args.props as { dataClass?: string; model?: string; dataCenterIds?: string[]; name?: string };
  const dataClass = (DATA_CLASSES as readonly string[]).includes(props.dataClass ?? "")
    ? (props.dataClass as DataClass)
    : "confidential";
  const secure = new Set(offeringFor("runpod-serverless", "secure").regions.map((r) => r.id));
  const dcs = props.dataCenterIds ?? [];
  const pinnedSecure = dcs.length > 0 && dcs.every((dc) => secure.has(dc));
  const decision = decideProviderUse(
    {
      model: props.model ?? args.name,
      dataClass,
      provider: "runpod-serverless",
      cloud: pinnedSecure ? "secure" : "community",
    },
    NO_TRUST_OVERRIDES,
    config,
  );
  if (!decision.allowed) {
    report(
      `${describe(args)} (model ${props.model ?? "?"}, ${dataClass}) may run on community hosts: dataCenterIds ${dcs.length > 0 ? dcs.join(", ") : "is empty"}. ${refusalText(decision)}; pin ai-orchestrator:providers.runpod-serverless.dataCenters to secure data centres (${[...secure].join(", ")})`,
    );
  }
}

/** Every model's providers are approved for its data class. */
export function approvedGpuProviders(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  const base = runtimePolicy(
    {
      name: "approved-gpu-providers",
      description:
        "Every model's providers are approved for its data class: confidential and internal data only on certified providers (RunPod secure cloud, DataCrunch/Verda, CoreWeave), public data also on marketplaces.",
      configSchema: {
        properties: {
          approved: {
            type: "object",
            properties: Object.fromEntries(DATA_CLASSES.map((c) => [c, offeringList()])),
          },
          allowExceptions: { type: "boolean", default: true },
        },
      },
    },
    level,
    (runtime, args, report) => {
      const config = { allowExceptions: true, ...args.getConfig<ApprovedProvidersConfig>() };
      runtime.models.forEach((model, i) => {
        model.providers.forEach((provider, j) => {
          const use = {
            model: model.name,
            dataClass: model.dataClass,
            provider,
            cloud: placementOf(runtime, provider).cloud,
          };
          const decision = decideProviderUse(use, runtime.trust, config);
          if (!decision.allowed)
            report(`${key(`models[${i}].providers[${j}]`)} (${provider}): ${refusalText(decision)}`);
        });
      });
    },
  );
  const validateRuntime = base.validateResource as (
    args: ResourceValidationArgs,
    report: ReportViolation,
  ) => void;
  return {
    ...base,
    validateResource: (args, report) => {
      if (args.type === RUNPOD_ENDPOINT_TYPE) {
        checkRunPodEndpoint(args, report, {
          allowExceptions: true,
          ...args.getConfig<ApprovedProvidersConfig>(),
        });
      } else validateRuntime(args, report);
    },
  };
}

/** Confidential data stays in EU/EEA data centres when the stack (or the organisation) requires GDPR. */
export function gdprRegion(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return runtimePolicy(
    {
      name: "gdpr-region",
      description:
        "When GDPR is required, confidential models run only on providers pinned to EU/EEA data centres.",
      configSchema: { properties: { requireGdpr: { type: "boolean", default: false } } },
    },
    level,
    (runtime, args, report) => {
      const gdpr = runtime.gdpr || args.getConfig<{ requireGdpr?: boolean }>().requireGdpr === true;
      runtime.models.forEach((model, i) => {
        model.providers.forEach((provider, j) => {
          const use = { model: model.name, dataClass: model.dataClass };
          const decision = decideRegion(use, placementOf(runtime, provider), gdpr);
          if (!decision.allowed)
            report(`${key(`models[${i}].providers[${j}]`)} (${provider}): ${refusalText(decision)}`);
        });
      });
    },
  );
}

/** Models scale to zero unless they are marked always-on. */
export function scaleToZero(level: EnforcementLevel = "advisory"): AiorchPolicy {
  return runtimePolicy(
    {
      name: "scale-to-zero",
      description:
        "Models scale to zero when idle (minWorkers 0) unless they are deliberately marked alwaysOn.",
    },
    level,
    (runtime, _args, report) => {
      runtime.models.forEach((model, i) => {
        if (model.minWorkers === 0 || model.alwaysOn) return;
        const cheapest = runtime.prices
          .filter((p) => model.providers.includes(p.provider as never) && model.gpu.includes(p.gpu))
          .sort((a, b) => a.usdPerHour - b.usdPerHour)[0];
        const cost = cheapest
          ? ` (at least $${(cheapest.usdPerHour * HOURS_PER_MONTH * model.minWorkers * model.gpuCount).toFixed(2)}/month on ${cheapest.provider})`
          : "";
        report(
          `${key(`models[${i}].minWorkers`)} is ${model.minWorkers}: model "${model.name}" keeps ${model.minWorkers} GPU worker(s) billed around the clock${cost}. Fix: set minWorkers: 0, or alwaysOn: true if that is deliberate`,
        );
      });
    },
  );
}

/** A monthly budget is set and no model's budget exceeds it. */
export function budgetRequired(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return runtimePolicy(
    {
      name: "budget-required",
      description: "The stack sets a monthly GPU budget, and no model's budget exceeds the stack's.",
    },
    level,
    (runtime, _args, report) => {
      if (!runtime.budget) {
        report(
          `${key("budget")} is not set: GPU spend of stack "${runtime.stack}" has no cap. Fix: set ai-orchestrator:budget.monthlyUsd`,
        );
        return;
      }
      const cap = runtime.budget.monthlyUsd;
      runtime.models.forEach((model, i) => {
        if (model.monthlyBudgetUsd !== undefined && model.monthlyBudgetUsd > cap) {
          report(
            `${key(`models[${i}].monthlyBudgetUsd`)} is ${model.monthlyBudgetUsd}, above the stack's ${cap}: model "${model.name}" could never reach its own cap. Fix: lower it to at most ${cap} or raise ai-orchestrator:budget.monthlyUsd`,
          );
        }
      });
    },
  );
}

export interface GpuAllowlistConfig {
  /** GPU ids models may use. @default every GPU in the catalog */
  allowedGpus?: string[];
  /** Highest maxWorkers a model may set. @default 8 */
  maxWorkersCap?: number;
}

/** GPU types on the allow-list; max workers under a cap. */
export function gpuAllowlist(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return runtimePolicy(
    {
      name: "gpu-allowlist",
      description:
        "Models use only GPU types on the allow-list, and no model may scale past the workers cap.",
      configSchema: {
        properties: {
          allowedGpus: {
            type: "array",
            items: { type: "string", enum: [...GPU_IDS] },
            default: [...GPU_IDS],
          },
          maxWorkersCap: { type: "integer", minimum: 1, default: 8 },
        },
      },
    },
    level,
    (runtime, args, report) => {
      const config = {
        allowedGpus: [...GPU_IDS] as string[],
        maxWorkersCap: 8,
        ...args.getConfig<GpuAllowlistConfig>(),
      };
      runtime.models.forEach((model, i) => {
        model.gpu.forEach((gpu, j) => {
          if (!config.allowedGpus.includes(gpu)) {
            report(
              `${key(`models[${i}].gpu[${j}]`)} is ${gpu}, not on the GPU allow-list (${config.allowedGpus.join(", ")}). Fix: choose an allowed GPU or extend allowedGpus in the gpu-allowlist policy config`,
            );
          }
        });
        if (model.maxWorkers > config.maxWorkersCap) {
          report(
            `${key(`models[${i}].maxWorkers`)} is ${model.maxWorkers}, above the cap of ${config.maxWorkersCap}. Fix: lower maxWorkers or raise maxWorkersCap in the gpu-allowlist policy config`,
          );
        }
      });
    },
  );
}

/** The gateway Ingress terminates TLS; nothing is exposed in plain HTTP. */
export function gatewayTls(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return {
    name: "gateway-tls",
    description:
      "Ingresses terminate TLS for every host they route, and no Service exposes plain HTTP publicly.",
    enforcementLevel: level,
    validateResource: (args, report) => {
      if (args.type === K8S.ingress) {
        const spec = (args.props.spec ?? {}) as {
          rules?: { host?: string }[];
          tls?: { hosts?: string[]; secretName?: string }[];
        };
        const covered = new Set((spec.tls ?? []).flatMap((t) => t.hosts ?? []));
        const hosts = (spec.rules ?? []).map((r) => r.host ?? "*");
        const uncovered = hosts.filter((h) => !covered.has(h));
        if ((spec.tls ?? []).length === 0 || uncovered.length > 0) {
          report(
            `${describe(args)} serves ${uncovered.join(", ") || "its hosts"} without TLS. Fix: add spec.tls with those hosts and a certificate secret (ai-orchestrator:gateway.tls.enabled: true)`,
          );
        }
        const annotations =
          (args.props.metadata as { annotations?: Record<string, string> } | undefined)?.annotations ?? {};
        const entryPoints = annotations[TRAEFIK_ENTRYPOINTS_ANNOTATION];
        if (
          (spec as { ingressClassName?: string }).ingressClassName === K3S_TRAEFIK.ingressClassName &&
          (spec.tls ?? []).length > 0 &&
          (entryPoints === undefined ||
            entryPoints.split(",").some((e) => e.trim() !== TRAEFIK_HTTPS_ENTRYPOINT))
        ) {
          // Traefik serves an Ingress on every entry point unless told otherwise: port 80 would answer too
          report(
            `${describe(args)} is served by Traefik on plain HTTP (entry point "web") as well as HTTPS. Fix: annotate ${TRAEFIK_ENTRYPOINTS_ANNOTATION}: ${TRAEFIK_HTTPS_ENTRYPOINT}`,
          );
        }
        if (annotations["nginx.ingress.kubernetes.io/ssl-redirect"] === "false") {
          report(
            `${describe(args)} sets nginx.ingress.kubernetes.io/ssl-redirect: "false". Fix: remove it so HTTP redirects to HTTPS`,
          );
        }
      }
      if (args.type === K8S.service) {
        const spec = (args.props.spec ?? {}) as { type?: string; ports?: { port?: number; name?: string }[] };
        if (spec.type !== "LoadBalancer" && spec.type !== "NodePort") return;
        const plain = (spec.ports ?? []).filter((p) => p.port !== 443);
        if (plain.length > 0) {
          report(
            `${describe(args)} is a ${spec.type} exposing port ${plain.map((p) => p.port).join(", ")} without TLS. Fix: make it ClusterIP and publish it through the TLS Ingress`,
          );
        }
      }
    },
  };
}

const isRedisImage = (image: string | undefined): boolean => /(^|\/)(redis|valkey)(:|@|$)/.test(image ?? "");

function redisWorkloads(
  resources: readonly PolicyResource[],
): { resource: PolicyResource; workload: Workload }[] {
  const out: { resource: PolicyResource; workload: Workload }[] = [];
  for (const resource of resources) {
    const workload = workloadOf(resource.type, resource.props);
    if (workload && allContainers(workload.spec).some((c) => isRedisImage(c.image)))
      out.push({ resource, workload });
  }
  return out;
}

/** Redis requires a password and is reachable only from inside the namespace. */
export function redisAuth(level: EnforcementLevel = "mandatory"): StackValidationPolicy & AiorchPolicy {
  return {
    name: "redis-auth",
    description:
      "Redis requires a password taken from a Secret and is not reachable from outside its namespace.",
    enforcementLevel: level,
    validateStack: (args: StackValidationArgs, report) => {
      for (const { resource, workload } of redisWorkloads(args.resources)) {
        const name = describe(resource);
        for (const container of allContainers(workload.spec).filter((c) => isRedisImage(c.image))) {
          const words = [...(container.command ?? []), ...(container.args ?? [])].join(" ");
          const fromSecret = (container.env ?? []).filter(
            (e) => (e.valueFrom as { secretKeyRef?: unknown } | undefined)?.secretKeyRef !== undefined,
          );
          const passwordFromSecret =
            (/--requirepass/.test(words) &&
              fromSecret.some((e) => words.includes(`$(${e.name})`) || words.includes(`$${e.name}`))) ||
            fromSecret.some((e) => e.name === "REDIS_PASSWORD");
          if (!passwordFromSecret) {
            report(
              `${name} container "${container.name ?? "?"}" runs Redis without a password from a Secret. Fix: pass --requirepass "$(REDIS_PASSWORD)" with REDIS_PASSWORD from a secretKeyRef`,
              resource.urn,
            );
          }
        }
        for (const service of args.resources.filter((r) => r.type === K8S.service)) {
          const spec = (service.props.spec ?? {}) as { type?: string; selector?: Record<string, string> };
          const selects =
            spec.selector &&
            namespaceOf(service.props) === workload.namespace &&
            selectorMatches({ matchLabels: spec.selector }, workload.podLabels);
          if (selects && (spec.type === "LoadBalancer" || spec.type === "NodePort")) {
            report(`${describe(service)} exposes Redis as ${spec.type}. Fix: make it ClusterIP`, service.urn);
          }
        }
        const policies = args.resources.filter(
          (r) =>
            r.type === K8S.networkPolicy &&
            namespaceOf(r.props) === workload.namespace &&
            selectorMatches((r.props.spec as Json | undefined)?.podSelector as never, workload.podLabels) &&
            (
              ((r.props.spec as Json | undefined)?.policyTypes as string[] | undefined) ?? ["Ingress"]
            ).includes("Ingress"),
        );
        const openSources = policies.flatMap((p) =>
          (((p.props.spec as Json).ingress as { from?: Json[] }[] | undefined) ?? []).flatMap((rule) =>
            !rule.from || rule.from.length === 0
              ? ["anywhere"]
              : rule.from.filter((f) => f.namespaceSelector || f.ipBlock).map(() => `${describe(p)}`),
          ),
        );
        if (policies.length === 0) {
          report(
            `${name}: no NetworkPolicy restricts ingress to Redis, so any pod in the cluster can reach it. Fix: add a NetworkPolicy that admits only the gateway and controller pods`,
            resource.urn,
          );
        } else if (openSources.length > 0) {
          report(
            `${name}: Redis admits traffic from outside its namespace (${[...new Set(openSources)].join(", ")}). Fix: restrict the NetworkPolicy's ingress to podSelectors of the gateway and controller`,
            resource.urn,
          );
        }
      }
    },
  };
}

/** Credentials only as secrets: nothing credential-like in ConfigMaps, env literals, labels or annotations. */
export function secretsNotPlaintext(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return {
    name: "secrets-not-plaintext",
    description:
      "Provider API keys, the Redis password and the kubeconfig appear only in Secrets: no credential-looking value in a ConfigMap, an env literal, a label or an annotation.",
    enforcementLevel: level,
    validateResource: (args, report) => {
      if (!args.type.startsWith("kubernetes:")) return;
      const metadata = (args.props.metadata ?? {}) as { labels?: Json; annotations?: Json };
      for (const field of ["labels", "annotations"] as const) {
        for (const [k, v] of Object.entries(metadata[field] ?? {})) {
          const kind = credentialKind(v);
          if (kind)
            report(
              `${describe(args)} ${field.slice(0, -1)} ${k} holds ${kind}. Fix: keep credentials in a Secret`,
            );
        }
      }
      if (args.type === K8S.configMap) {
        for (const [k, v] of Object.entries((args.props.data ?? {}) as Json)) {
          const kind = credentialKind(v);
          if (kind) {
            report(
              `${describe(args)} data.${k} holds ${kind}. Fix: move it to a Kubernetes Secret and mount it or use secretKeyRef`,
            );
          }
        }
      }
      const workload = workloadOf(args.type, args.props);
      for (const container of workload ? allContainers(workload.spec) : []) {
        for (const env of container.env ?? []) {
          if (env.value === undefined || env.value === "") continue;
          const kind =
            credentialKind(env.value) ??
            (isCredentialName(env.name) ? "a credential (by its name)" : undefined);
          if (kind) {
            report(
              `${describe(args)} container "${container.name ?? "?"}" env ${env.name} is a literal holding ${kind}. Fix: use valueFrom.secretKeyRef`,
            );
          }
        }
      }
    },
  };
}

/** Non-root containers with limits, no privilege escalation, read-only root where possible. */
export function podHardening(level: EnforcementLevel = "advisory"): AiorchPolicy {
  return {
    name: "pod-hardening",
    description:
      "Containers run as non-root without privilege escalation or extra capabilities, with CPU and memory limits and a read-only root filesystem where possible.",
    enforcementLevel: level,
    validateResource: (args, report) => {
      const workload = workloadOf(args.type, args.props);
      if (!workload) return;
      const podNonRoot = workload.spec.securityContext?.runAsNonRoot === true;
      for (const c of allContainers(workload.spec)) {
        const sc = c.securityContext ?? {};
        const missing: string[] = [];
        if (!podNonRoot && sc.runAsNonRoot !== true) missing.push("runAsNonRoot: true");
        if (sc.allowPrivilegeEscalation !== false) missing.push("allowPrivilegeEscalation: false");
        if (sc.privileged === true) missing.push("privileged: false");
        if (!(sc.capabilities?.drop ?? []).includes("ALL")) missing.push('capabilities.drop: ["ALL"]');
        if (sc.readOnlyRootFilesystem !== true) missing.push("readOnlyRootFilesystem: true");
        if (c.resources?.limits?.cpu === undefined) missing.push("resources.limits.cpu");
        if (c.resources?.limits?.memory === undefined) missing.push("resources.limits.memory");
        if (missing.length > 0) {
          report(
            `${describe(args)} container "${c.name ?? "?"}" lacks ${missing.join(", ")}. Fix: set them in its securityContext and resources`,
          );
        }
      }
    },
  };
}

/** Every workload is selected by a NetworkPolicy in its namespace. */
export function networkPolicies(level: EnforcementLevel = "advisory"): StackValidationPolicy & AiorchPolicy {
  return {
    name: "network-policies",
    description:
      "Every workload is covered by a NetworkPolicy in its namespace (default-deny plus the paths it needs).",
    enforcementLevel: level,
    validateStack: (args, report) => {
      const policies = args.resources.filter((r) => r.type === K8S.networkPolicy);
      for (const resource of args.resources.filter((r) => isWorkloadType(r.type))) {
        const workload = workloadOf(resource.type, resource.props)!;
        const covered = policies.some(
          (p) =>
            namespaceOf(p.props) === workload.namespace &&
            selectorMatches((p.props.spec as Json | undefined)?.podSelector as never, workload.podLabels),
        );
        if (!covered) {
          report(
            `${describe(resource)} in namespace ${workload.namespace ?? "(default)"} is not selected by any NetworkPolicy. Fix: add a default-deny policy to the namespace and allow only the paths it needs`,
            resource.urn,
          );
        }
      }
    },
  };
}

/** No SSH with host-key checking turned off, anywhere a command runs. */
export function noInsecureTunnels(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return {
    name: "no-insecure-tunnels",
    description:
      "No SSH with host-key checking disabled (StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null) in container commands, env or server user data.",
    enforcementLevel: level,
    validateResource: (args, report) => {
      const fix = "Fix: pin the host key (known_hosts from provisioning) instead of disabling the check";
      const workload = workloadOf(args.type, args.props);
      for (const c of workload ? allContainers(workload.spec) : []) {
        const places: [string, unknown][] = [
          ["command", (c.command ?? []).join(" ")],
          ["args", (c.args ?? []).join(" ")],
          ...(c.env ?? []).map((e): [string, unknown] => [`env ${e.name}`, e.value]),
        ];
        for (const [where, text] of places) {
          if (disablesHostKeyChecking(text))
            report(
              `${describe(args)} container "${c.name ?? "?"}" ${where} disables SSH host-key checking. ${fix}`,
            );
        }
      }
      if (args.type === "hcloud:index/server:Server" && disablesHostKeyChecking(args.props.userData)) {
        report(`${describe(args)} user data disables SSH host-key checking. ${fix}`);
      }
      if (args.type === K8S.configMap) {
        for (const [k, v] of Object.entries((args.props.data ?? {}) as Json)) {
          if (disablesHostKeyChecking(v))
            report(`${describe(args)} data.${k} disables SSH host-key checking. ${fix}`);
        }
      }
    },
  };
}

/** A stack that serves confidential data turns on mTLS to Redis and encryption of what waits in it. */
export function confidentialProtections(level: EnforcementLevel = "mandatory"): AiorchPolicy {
  return runtimePolicy(
    {
      name: "confidential-protections",
      description:
        "A stack serving confidential data runs Redis with mTLS (security.redisTls) and seals queued request bodies and results (security.encryptQueued).",
    },
    level,
    (runtime, _args, report) => {
      const confidential = runtime.models.filter((m) => m.dataClass === "confidential").map((m) => m.name);
      if (confidential.length === 0) return;
      const missing = [
        ...(runtime.security.redisTls ? [] : ["security.redisTls"]),
        ...(runtime.security.encryptQueued ? [] : ["security.encryptQueued"]),
      ];
      if (missing.length > 0) {
        report(
          `${key(missing[0]!)} is off but models ${confidential.join(", ")} hold confidential data: prompts would cross the cluster network or sit in Redis in plain text. Fix: set ${missing.map((m) => `ai-orchestrator:${m}: true`).join(" and ")}`,
        );
      }
    },
  );
}

/** The revisions a model serves: each variant's (falling back to the model's), or the model's own. */
function servedRevisions(
  model: RuntimeConfig["models"][number],
  i: number,
): { path: string; label: string; revision?: string }[] {
  if (!model.variants)
    return [{ path: `models[${i}].revision`, label: `model "${model.name}"`, revision: model.revision }];
  return model.variants.map((v, j) => ({
    path: v.revision !== undefined ? `models[${i}].variants[${j}].revision` : `models[${i}].revision`,
    label: `variant "${v.name}" of model "${model.name}"`,
    revision: v.revision ?? model.revision,
  }));
}

/**
 * Weights pinned to a commit: for confidential models a must (what serves them is exactly what was reviewed),
 * for the others advice (a push to the model repo otherwise changes what answers on the next cold start).
 */
export function pinnedModelRevision(
  level: EnforcementLevel = "mandatory",
  scope: "confidential" | "other" = "confidential",
): AiorchPolicy {
  return runtimePolicy(
    {
      name: scope === "confidential" ? "pinned-model-revision" : "model-revision-advisory",
      description:
        scope === "confidential"
          ? "Confidential models serve weights pinned to a commit hash (revision), for every variant."
          : "Models other than confidential ones should pin their weights to a commit hash too.",
    },
    level,
    (runtime, _args, report) => {
      runtime.models.forEach((model, i) => {
        if ((model.dataClass === "confidential") !== (scope === "confidential")) return;
        for (const served of servedRevisions(model, i)) {
          if (served.revision !== undefined && PINNED_REVISION.test(served.revision)) continue;
          report(
            `${key(served.path)} is ${served.revision === undefined ? "not set" : `"${served.revision}", not a commit`}: ${served.label} serves whatever its repository holds at the next cold start. Fix: set it to the 40-character commit hash of the weights you reviewed`,
          );
        }
      });
    },
  );
}

/** Every policy of the pack with its default enforcement level. */
export function allPolicies(): AiorchPolicy[] {
  return [
    approvedGpuProviders(),
    gdprRegion(),
    scaleToZero(),
    budgetRequired(),
    gpuAllowlist(),
    gatewayTls(),
    redisAuth(),
    secretsNotPlaintext(),
    podHardening(),
    networkPolicies(),
    noInsecureTunnels(),
    confidentialProtections(),
    pinnedModelRevision("mandatory", "confidential"),
    pinnedModelRevision("advisory", "other"),
  ];
}
