/**
 * `aiorch plan`: validate the stack config, evaluate the real program under mocks, judge the planned
 * resources, forecast the cost. Everything offline — no CLI, no credentials, no network.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hetznerAddonCharts, type K3sHelmChart } from "../../components/k3s-cloud-init";
import {
  type ConfigProblem,
  type LoadedStackConfig,
  loadStackConfig,
  OFFLINE_SECRET_PREFIX,
  offlineSecretPlaceholder,
  parseProjectFile,
  parseStackFile,
  type RawConfigValue,
  type RuntimeConfig,
  renderRuntimeConfig,
  type StackConfig,
} from "../../core/config";
import { K3S_TRAEFIK, type Prerequisite, platformPlan } from "../../core/platform";
import type { OfflineViolation, PackConfig } from "../../policies/offline";
import type { PlannedResource } from "./mock-engine";

/** Thrown for a bad command line or a missing stack file: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type PolicyViolation = OfflineViolation;

export interface PlanReport {
  readonly project: string;
  readonly stack: string;
  readonly resources: readonly PlannedResource[];
  readonly outputs: Record<string, unknown>;
  readonly warnings: readonly ConfigProblem[];
  readonly policy: { readonly violations: readonly PolicyViolation[] };
  readonly forecast: PlanForecast;
  /** What each model serves: weights (source @ revision) and, in a rollout, the variants' shares. */
  readonly models: readonly ModelSummary[];
  /** For stacks with confidential data: each protection layer and whether the plan has it. */
  readonly security?: readonly SecurityCheck[];
  /** Cluster add-ons the stack installs, and what it expects the cluster to run already. */
  readonly platform: PlatformSummary;
}

export interface PlatformSummary {
  readonly installs: readonly { addOn: string; version: string; namespace: string; how: string }[];
  /** The k3s HelmCharts a created cluster's first server installs, as written (a secret's userData holds them). */
  readonly k3sCharts: readonly K3sHelmChart[];
  readonly prerequisites: readonly Prerequisite[];
}

/**
 * What the stack brings into its cluster: the Helm releases the program declares (read off the planned resources),
 * and on a cluster it creates, what k3s installs from the first server's manifests (Hetzner CCM and CSI, Traefik).
 */
export function platformSummary(resources: readonly PlannedResource[], config: StackConfig): PlatformSummary {
  const plan = platformPlan(config);
  const installs: PlatformSummary["installs"][number][] = [];
  const k3sCharts: K3sHelmChart[] = [];
  if (config.cluster.mode === "create") {
    // the same objects the first server's cloud-init writes into k3s' manifests directory
    k3sCharts.push(...hetznerAddonCharts({ loadBalancerLocation: config.cluster.location }));
    for (const chart of k3sCharts)
      installs.push({
        addOn: chart.spec.chart,
        version: chart.spec.version,
        namespace: chart.spec.targetNamespace,
        how: `k3s HelmChart${chart.spec.bootstrap ? ", bootstrap" : ""}`,
      });
    if (plan.ingress.installed === "k3s-traefik")
      installs.push({
        addOn: "traefik (IngressClass traefik)",
        version: `bundled with k3s ${config.cluster.k3sVersion}`,
        namespace: K3S_TRAEFIK.namespace,
        how: "k3s",
      });
  }
  for (const r of resources) {
    if (r.type !== "kubernetes:helm.sh/v3:Release") continue;
    installs.push({
      addOn: String(r.inputs.chart),
      version: String(r.inputs.version),
      namespace: String(r.inputs.namespace),
      how: "Helm release",
    });
  }
  for (const r of resources) {
    if (r.type === "kubernetes:cert-manager.io/v1:ClusterIssuer")
      installs.push({
        addOn: `ClusterIssuer ${String((r.inputs.metadata as { name?: unknown } | undefined)?.name)}`,
        version: "cert-manager.io/v1",
        namespace: "(cluster)",
        how: "ACME HTTP-01",
      });
  }
  return { installs, k3sCharts, prerequisites: plan.prerequisites };
}

export interface ModelSummary {
  readonly name: string;
  readonly kind: string;
  readonly dataClass: string;
  readonly providers: readonly string[];
  readonly variants: readonly { name: string; source: string; revision: string | null; sharePct: number }[];
}

/** Models with their variants' declared shares (the model alone is one variant, 100%). */
export function modelSummaries(runtime: RuntimeConfig): ModelSummary[] {
  return runtime.models.map((m) => {
    const variants = m.variants ?? [{ name: "default", source: m.source, revision: m.revision, weight: 1 }];
    const total = variants.reduce((sum, v) => sum + v.weight, 0);
    return {
      name: m.name,
      kind: m.kind,
      dataClass: m.dataClass,
      providers: m.providers,
      variants: variants.map((v) => ({
        name: v.name,
        source: v.source ?? m.source,
        revision: v.revision ?? m.revision ?? null,
        sharePct: Math.round((1000 * v.weight) / total) / 10,
      })),
    };
  });
}

export interface SecurityCheck {
  readonly layer: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** The protections a confidential stack relies on, read off the planned resources (not off the config). */
export function securitySummary(
  resources: readonly PlannedResource[],
  violations: readonly PolicyViolation[],
  runtime: RuntimeConfig,
): SecurityCheck[] | undefined {
  if (!runtime.models.some((m) => m.dataClass === "confidential")) return undefined;
  const redis = resources.find(
    (r) => r.type === "kubernetes:apps/v1:StatefulSet" && r.name.startsWith("redis"),
  );
  const redisArgs = JSON.stringify(
    (redis?.rawInputs.spec as { template?: unknown } | undefined)?.template ?? {},
  );
  const mtls = redisArgs.includes('"--tls-auth-clients","yes"') && redisArgs.includes('"--port","0"');
  const encryption = resources.some((r) => r.type === "aiorch:k8s:QueueEncryption");
  const gatewayGetsKeys = resources.some(
    (r) =>
      r.type === "kubernetes:apps/v1:Deployment" &&
      JSON.stringify(r.rawInputs).includes("AIORCH_ENCRYPTION_KEYS"),
  );
  const defaultDeny = resources.some(
    (r) => r.type === "kubernetes:networking.k8s.io/v1:NetworkPolicy" && r.name.endsWith("default-deny"),
  );
  const mandatory = violations.filter((v) => v.level === "mandatory");
  return [
    {
      layer: "isolation",
      ok: defaultDeny,
      detail: defaultDeny
        ? "namespace default-deny, each path opened by its own NetworkPolicy"
        : "no default-deny NetworkPolicy",
    },
    {
      layer: "mTLS to Redis",
      ok: mtls,
      detail: mtls
        ? "TLS only, client certificates from the stack's CA (renewed 30 days before their 90-day expiry)"
        : "Redis accepts plain TCP",
    },
    {
      layer: "queued data encrypted",
      ok: encryption && gatewayGetsKeys,
      detail:
        encryption && gatewayGetsKeys
          ? `AES-256-GCM, key k${runtime.security.encryptionKeyVersion} generated by the stack, held in a Secret`
          : "queued bodies are stored in plain text",
    },
    {
      layer: "workers",
      ok: true,
      detail: "rented workers: per-worker token and a TLS certificate the controller pins",
    },
    {
      layer: "policies",
      ok: mandatory.length === 0,
      detail:
        mandatory.length === 0
          ? "every mandatory policy passes"
          : `${mandatory.length} mandatory violation(s): ${[...new Set(mandatory.map((v) => v.policy))].join(", ")}`,
    },
  ];
}

/** The plan's cost forecast: the simulator's run of the stack's own keep-alive against always-on. */
export interface PlanForecast {
  readonly method: "simulation";
  readonly note: string;
  readonly seed: number;
  /** One row per model × provider × usage pattern: the stack's keep-alive ("auto" = adaptive) and always-on. */
  readonly rows: readonly {
    readonly model: string;
    readonly provider: string;
    readonly gpu: string;
    readonly pattern: string;
    readonly activeHours: number;
    readonly costUsd: number;
    readonly alwaysOnCostUsd: number;
    readonly activeCostUsd: number;
    readonly savingsVsAlwaysOnPct: number;
    readonly coldStarts: number;
    readonly waitP95Seconds: number;
    readonly timedOut: number;
    /** (cost + waiting and dropped requests, priced) / the lower bound of sim/bound.ts; null when it is $0. */
    readonly ratioToBound: number | null;
  }[];
  /** Which keep-alive the rows simulate and which reference their ratio is to. */
  readonly policy: string;
  readonly bound: string;
  readonly unpriced: readonly string[];
  readonly assumptions: readonly string[];
}

export interface StackFiles {
  readonly project: string;
  readonly loaded: LoadedStackConfig;
  readonly raw: Record<string, RawConfigValue>;
}

/** Read and validate `Pulumi.yaml` and `Pulumi.<stack>.yaml`; throws UsageError or StackConfigError. */
export function readStack(projectDir: string, stack: string): StackFiles {
  const projectFile = join(projectDir, "Pulumi.yaml");
  if (!existsSync(projectFile))
    throw new UsageError(`no Pulumi.yaml in ${projectDir}; run aiorch from the project folder`);
  const project = parseProjectFile(readFileSync(projectFile, "utf8"));
  const stackFileName = `Pulumi.${stack}.yaml`;
  const stackFile = join(projectDir, stackFileName);
  if (!existsSync(stackFile)) {
    const known = readdirSync(projectDir)
      .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined);
    throw new UsageError(
      `no stack "${stack}": ${stackFileName} does not exist; stacks here: ${known.join(", ") || "(none)"}`,
    );
  }
  const raw = parseStackFile(readFileSync(stackFile, "utf8"), stackFileName);
  return { project, loaded: loadStackConfig(raw, project), raw };
}

/** The runtime config of a stack, exactly as its ConfigMap will hold it. */
export function stackRuntimeConfig(projectDir: string, stack: string): RuntimeConfig {
  return renderRuntimeConfig(readStack(projectDir, stack).loaded, stack);
}

/** Config as the Pulumi engine hands it to a program: strings, objects as JSON, secrets as placeholders. */
function engineConfig(files: StackFiles): { config: Record<string, string>; secretKeys: string[] } {
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, { value, secret }] of Object.entries(files.raw)) {
    if (secret) secretKeys.push(key);
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  // A credential the stack needs but lacks is a warning offline; the program still gets a placeholder.
  for (const key of files.loaded.missingSecrets) {
    config[key] = offlineSecretPlaceholder(key);
    secretKeys.push(key);
  }
  return { config, secretKeys };
}

/** Non-secret inputs that carry a secret's placeholder: a credential written where anyone can read it. */
export function findSecretLeaks(resources: readonly PlannedResource[]): PolicyViolation[] {
  const leaks: PolicyViolation[] = [];
  const visit = (value: unknown, path: string, resource: PlannedResource) => {
    if (typeof value === "string" && value.includes(OFFLINE_SECRET_PREFIX)) {
      leaks.push({
        policy: "secrets-not-plaintext",
        level: "mandatory",
        subject: resource.urn,
        message: `${resource.type} "${resource.name}" input ${path} holds a secret in plain text; pass it as a pulumi.secret or through a Kubernetes Secret`,
      });
    } else if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) visit(v, `${path}[${i}]`, resource);
    } else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) visit(v, path ? `${path}.${k}` : k, resource);
    }
  };
  for (const resource of resources) visit(resource.inputs, "", resource);
  return leaks;
}

/** Run the policy pack on the planned resources, plus the offline-only leak check; one report per finding. */
function judge(resources: readonly PlannedResource[], packConfig: PackConfig): PolicyViolation[] {
  const { runPoliciesOffline } = require("../../policies/offline") as typeof import("../../policies/offline");
  const { allPolicies } = require("../../policies/policies") as typeof import("../../policies/policies");
  const violations = runPoliciesOffline(
    allPolicies(),
    resources.map((r) => ({ urn: r.urn, type: r.type, name: r.name, parent: r.parent, props: r.rawInputs })),
    packConfig,
  );
  const seen = new Set(violations.map((v) => `${v.policy} ${v.subject}`));
  for (const leak of findSecretLeaks(resources)) {
    if (!seen.has(`${leak.policy} ${leak.subject}`)) violations.push(leak);
  }
  return violations;
}

/** Read a `--policy-config` file: the JSON `pulumi up --policy-pack-config` takes. */
export function readPackConfig(path: string | undefined): PackConfig {
  if (!path) return {};
  if (!existsSync(path)) throw new UsageError(`--policy-config ${path}: no such file`);
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
      throw new Error("not a JSON object");
    return parsed as PackConfig;
  } catch (error) {
    throw new UsageError(`--policy-config ${path}: ${(error as Error).message}`);
  }
}

/** Simulate a month of each usage pattern through the real scaling policy (deterministic: seed 1). */
export function planForecast(runtime: RuntimeConfig): PlanForecast {
  const { forecastForStack } = require("../../sim/forecast") as typeof import("../../sim/forecast");
  const result = forecastForStack(runtime, { policies: ["adaptive", "always-on"], seed: 1 });
  const alwaysOn = new Map(
    result.results
      .filter((r) => r.policy === "always-on")
      .map((r) => [`${r.model}|${r.provider}|${r.pattern}`, r.costUsd]),
  );
  return {
    method: "simulation",
    note: "a simulated month per usage pattern through the controller's own scaling policy and keep-alive (auto), against one worker always on",
    policy:
      "keep-alive auto (aiorch simulate's 'adaptive'): break-even on the observed cold start plus the waits of the requests queued behind a restart, drawn at random per idle spell until the model's idle-gap history suffices, then its optimum or a pre-warm (controller/keep-alive.ts)",
    bound:
      "×bound: the run's cost plus its waiting (a request-second at the worker's price) and dropped requests, over the lower bound of sim/bound.ts (nobody waits, the same cold-start draws, the cheapest idle gaps bridged)",
    seed: result.seed,
    rows: result.results
      .filter((r) => r.policy === "adaptive")
      .map((r) => ({
        model: r.model,
        provider: r.provider,
        gpu: r.gpu,
        pattern: r.pattern,
        activeHours: r.activeHours,
        costUsd: r.costUsd,
        alwaysOnCostUsd: alwaysOn.get(`${r.model}|${r.provider}|${r.pattern}`) ?? r.costUsd,
        activeCostUsd: r.activeCostUsd,
        savingsVsAlwaysOnPct: r.savingsVsAlwaysOnPct,
        coldStarts: r.coldStarts,
        waitP95Seconds: r.waitP95Seconds,
        timedOut: r.timedOut,
        ratioToBound: r.costRatioToBound,
      })),
    unpriced: result.unpriced,
    assumptions: result.assumptions,
  };
}

/** Build the whole plan. Loads Pulumi: call once per process. */
export async function buildPlan(
  projectDir: string,
  stack: string,
  packConfig: PackConfig = {},
): Promise<PlanReport> {
  const files = readStack(projectDir, stack);
  const { config, secretKeys } = engineConfig(files);
  // Pulumi loads only here: one runtime per process, and `aiorch config` should not pay for it.
  const { evaluateProgram } = require("./mock-engine") as typeof import("./mock-engine");
  const evaluation = await evaluateProgram({
    project: files.project,
    stack,
    config,
    secretKeys,
    runProgram: () => require(join(projectDir, "index.ts")) as Record<string, unknown>,
  });
  const runtime = renderRuntimeConfig(files.loaded, stack);
  const forecast = planForecast(runtime);
  const violations = judge(evaluation.resources, packConfig);
  return {
    project: files.project,
    stack,
    resources: evaluation.resources,
    outputs: evaluation.outputs,
    warnings: files.loaded.warnings,
    policy: { violations },
    forecast,
    models: modelSummaries(runtime),
    security: securitySummary(evaluation.resources, violations, runtime),
    platform: platformSummary(evaluation.resources, files.loaded.config),
  };
}
