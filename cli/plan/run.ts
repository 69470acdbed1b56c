/**
 * `aiorch plan`: validate the stack config, evaluate the real program under mocks, judge the planned
 * resources, forecast the cost. Everything offline — no CLI, no credentials, no network.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
} from "../../core/config";
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
  }[];
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
    note: "a simulated month per usage pattern through the controller's own scaling policy (keep-alive auto), against one worker always on",
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
  const forecast = planForecast(renderRuntimeConfig(files.loaded, stack));
  return {
    project: files.project,
    stack,
    resources: evaluation.resources,
    outputs: evaluation.outputs,
    warnings: files.loaded.warnings,
    policy: { violations: judge(evaluation.resources, packConfig) },
    forecast,
  };
}
