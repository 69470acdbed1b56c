/**
 * Runs the pack's policies without the Pulumi CLI: every planned resource becomes the argument the policy engine
 * would pass (resource validations see inputs; the stack validation sees every resource). Used by `aiorch plan`
 * and by the tests; it never constructs the PolicyPack (that would start a gRPC server).
 */
import type {
  EnforcementLevel,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  StackValidationArgs,
} from "@pulumi/policy";
import type { AiorchPolicy } from "./policies";

export interface PlannedResourceInput {
  readonly urn: string;
  readonly type: string;
  readonly name: string;
  readonly parent?: string;
  /** Inputs as registered, secrets in the clear (the engine hands policies plain values too). */
  readonly props: Record<string, unknown>;
}

export interface OfflineViolation {
  readonly policy: string;
  readonly level: Exclude<EnforcementLevel, "disabled" | "remediate">;
  readonly subject: string;
  readonly message: string;
}

/** Pack config as `pulumi up --policy-pack-config` takes it: policy name → level or `{ enforcementLevel, …config }`. */
export type PackConfig = Record<
  string,
  EnforcementLevel | ({ enforcementLevel?: EnforcementLevel } & Record<string, unknown>)
>;

const OPTS: PolicyResourceOptions = {
  protect: false,
  ignoreChanges: [],
  aliases: [],
  customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
  additionalSecretOutputs: [],
};

class NotApplicable extends Error {}

type PulumiClass = { __pulumiType?: string };

function policyConfig(
  config: PackConfig,
  name: string,
): { level?: EnforcementLevel; settings: Record<string, unknown> } {
  const entry = config[name] ?? config.all;
  if (entry === undefined) return { settings: {} };
  if (typeof entry === "string") return { level: entry, settings: {} };
  const { enforcementLevel, ...settings } = entry;
  return { level: enforcementLevel, settings };
}

export function runPoliciesOffline(
  policies: readonly AiorchPolicy[],
  resources: readonly PlannedResourceInput[],
  config: PackConfig = {},
): OfflineViolation[] {
  const violations: OfflineViolation[] = [];
  const byUrn = new Map<string, PolicyResource>();
  const policyResources: PolicyResource[] = resources.map((r) => {
    const resource: PolicyResource = {
      type: r.type,
      props: r.props,
      urn: r.urn,
      name: r.name,
      opts: { ...OPTS, parent: r.parent },
      dependencies: [],
      propertyDependencies: {},
      isType: (c) => (c as unknown as PulumiClass).__pulumiType === r.type,
      asType: (c) => ((c as unknown as PulumiClass).__pulumiType === r.type ? (r.props as never) : undefined),
    };
    byUrn.set(r.urn, resource);
    return resource;
  });
  for (const r of resources) {
    const parent = r.parent ? byUrn.get(r.parent) : undefined;
    if (parent) (byUrn.get(r.urn) as { parent?: PolicyResource }).parent = parent;
  }

  for (const policy of policies) {
    const { level: configured, settings } = policyConfig(config, policy.name);
    const level = configured ?? policy.enforcementLevel;
    if (level === "disabled") continue;
    const reportedLevel = level === "mandatory" || level === "remediate" ? "mandatory" : "advisory";
    const getConfig = <T extends object>() => settings as T;
    const notApplicable = (reason?: string): never => {
      throw new NotApplicable(reason);
    };
    if ("validateResource" in policy && policy.validateResource) {
      const validations = ([] as unknown[]).concat(policy.validateResource) as NonNullable<
        Extract<AiorchPolicy, { validateResource?: unknown }>["validateResource"]
      >[];
      for (const resource of policyResources) {
        const args: ResourceValidationArgs = {
          type: resource.type,
          props: resource.props,
          urn: resource.urn,
          name: resource.name,
          opts: resource.opts,
          stackTags: new Map(),
          isType: resource.isType,
          asType: (c) =>
            (c as unknown as PulumiClass).__pulumiType === resource.type
              ? (resource.props as never)
              : undefined,
          getConfig,
          notApplicable,
        };
        for (const validate of validations) {
          try {
            (validate as (a: ResourceValidationArgs, report: (m: string, urn?: string) => void) => void)(
              args,
              (message) =>
                violations.push({
                  policy: policy.name,
                  level: reportedLevel,
                  subject: resource.urn,
                  message,
                }),
            );
          } catch (error) {
            if (!(error instanceof NotApplicable)) throw error;
          }
        }
      }
    }
    if ("validateStack" in policy) {
      const args: StackValidationArgs = {
        resources: policyResources,
        stackTags: new Map(),
        getConfig,
        notApplicable,
      };
      try {
        policy.validateStack(args, (message, urn) =>
          violations.push({ policy: policy.name, level: reportedLevel, subject: urn ?? "stack", message }),
        );
      } catch (error) {
        if (!(error instanceof NotApplicable)) throw error;
      }
    }
  }
  return violations;
}
