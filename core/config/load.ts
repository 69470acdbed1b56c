/**
 * Loads a stack's config from the form both readers have — the parsed `Pulumi.<stack>.yaml` (objects) and the
 * Pulumi runtime (JSON strings) — into a validated `StackConfig`, or a `StackConfigError` naming every bad key.
 */
import { CONFIGURABLE_PROVIDER_IDS, GPU_IDS, type GpuId, PROVIDERS } from "../catalog";
import {
  modelServedRoutes,
  orList,
  PROVIDER_PATHS,
  type ProviderPath,
  providerPathLabel,
  providerRouteGaps,
} from "../engine-routes";
import { defaultApprovedOfferings } from "../trust";
import {
  type ConfigProblem,
  describeIssue,
  problemsFromIssues,
  StackConfigError,
  show,
  unknownFieldMessage,
} from "./errors";
import {
  ALERT_RECEIVER_SECRETS,
  FOREIGN_SECRET_KEYS,
  type ModelConfig,
  SECRET_CONFIG_KEYS,
  type SecretConfigKey,
  type StackConfig,
  stackConfigSchema,
} from "./schema";

export const PROJECT_NAME = "ai-orchestrator";

/** One config value as Pulumi holds it: the value (or a placeholder for a secret) and whether it is secret. */
export interface RawConfigValue {
  readonly value: unknown;
  readonly secret: boolean;
}

export interface LoadedStackConfig {
  readonly project: string;
  readonly config: StackConfig;
  /** Secret keys (`ai-orchestrator:runpodApiKey`, `hcloud:token`) that are set. */
  readonly secretsSet: ReadonlySet<string>;
  /** Secret keys the stack needs but lacks: `pulumi up` would fail; an offline plan uses placeholders. */
  readonly missingSecrets: readonly string[];
  /** Things a real `pulumi up` would trip over but an offline plan can go on without. */
  readonly warnings: readonly ConfigProblem[];
}

/** Top-level keys that hold a plain string; every other key holds a mapping or a list. */
const SCALAR_KEYS = new Set(["namespace", "dataClass", "gdpr"]);
const BOOLEAN_KEYS = new Set(["gdpr"]);
const PLAIN_KEYS = Object.keys(stackConfigSchema.shape);

/** Pulumi hands structured values to programs as JSON text and scalars as strings; undo that. */
function decodeValue(shortKey: string, value: unknown, key: string, problems: ConfigProblem[]): unknown {
  if (typeof value !== "string") return value;
  if (!SCALAR_KEYS.has(shortKey)) {
    try {
      return JSON.parse(value);
    } catch {
      problems.push({ key, message: `expected a YAML mapping or list, got the string ${show(value)}` });
      return undefined;
    }
  }
  if (BOOLEAN_KEYS.has(shortKey)) {
    if (value === "true" || value === "false") return value === "true";
  }
  return value;
}

/**
 * Validate a stack's config.
 * @param raw every config key of the stack (`ai-orchestrator:models`, `hcloud:token`, …) with its value
 * @throws StackConfigError naming each bad key and the fix
 */
export function loadStackConfig(
  raw: Readonly<Record<string, RawConfigValue>>,
  project: string = PROJECT_NAME,
): LoadedStackConfig {
  const problems: ConfigProblem[] = [];
  const secretsSet = new Set<string>();
  const input: Record<string, unknown> = {};
  const knownKeys = [...PLAIN_KEYS, ...SECRET_CONFIG_KEYS];

  for (const [key, { value, secret }] of Object.entries(raw)) {
    const isSecretKey =
      (FOREIGN_SECRET_KEYS as readonly string[]).includes(key) ||
      (key.startsWith(`${project}:`) &&
        (SECRET_CONFIG_KEYS as readonly string[]).includes(key.slice(project.length + 1)));
    if (isSecretKey) {
      if (!secret) {
        problems.push({
          key,
          message: `is a credential but is stored in plain text; remove it and run \`pulumi config set --secret ${key} <value>\``,
        });
      } else secretsSet.add(key);
      continue;
    }
    if (!key.startsWith(`${project}:`)) continue; // other packages' settings (kubernetes:…, hcloud:endpoint)
    const shortKey = key.slice(project.length + 1);
    if (!PLAIN_KEYS.includes(shortKey)) {
      problems.push({ key, message: unknownFieldMessage(shortKey, knownKeys, "config key") });
      continue;
    }
    input[shortKey] = decodeValue(shortKey, value, key, problems);
  }

  const keyOf = (path: string) => `${project}:${path}`;
  const parsed = stackConfigSchema.safeParse(input, { reportInput: true, error: describeIssue });
  if (!parsed.success) {
    problems.push(...problemsFromIssues(parsed.error.issues, stackConfigSchema, input, keyOf));
  }
  if (problems.length > 0 || !parsed.success) throw new StackConfigError(problems);

  const config = parsed.data;
  problems.push(...crossCheck(config, input).map((p) => ({ key: keyOf(p.key), message: p.message })));
  if (problems.length > 0) throw new StackConfigError(problems);

  const missingSecrets = [...neededSecrets(config, project)].filter(([key]) => !secretsSet.has(key));
  return {
    project,
    config,
    secretsSet,
    missingSecrets: missingSecrets.map(([key]) => key),
    warnings: [
      ...missingSecrets.map(([key, why]) => missingSecretWarning(key, why, project)),
      ...unusedProviders(config, project),
      ...documentationRangeWarnings(config, project),
      ...providerRouteWarnings(config, project),
    ],
  };
}

/** Rules that span fields: references between models and providers, and what the catalog can serve. */
function crossCheck(config: StackConfig, input: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const rawModels = Array.isArray(input.models) ? (input.models as Record<string, unknown>[]) : [];
  const listKey = (i: number, field: "gpu" | "providers", j: number) =>
    Array.isArray(rawModels[i]?.[field]) ? `models[${i}].${field}[${j}]` : `models[${i}].${field}`;
  const names = new Map<string, number>();

  config.models.forEach((model, i) => {
    const first = names.get(model.name);
    if (first !== undefined) {
      problems.push({
        key: `models[${i}].name`,
        message: `"${model.name}" is already used by models[${first}]; names must be unique`,
      });
    } else names.set(model.name, i);

    const configured = model.providers.filter((p) => config.providers[p] !== undefined);
    model.providers.forEach((p, j) => {
      if (config.providers[p] === undefined) {
        problems.push({
          key: listKey(i, "providers", j),
          message: `"${p}" is not configured; add it under ai-orchestrator:providers or remove it from this model`,
        });
        return;
      }
      const offered = GPU_IDS.filter((g) => PROVIDERS[p].gpus[g]);
      if (!model.gpu.some((g) => PROVIDERS[p].gpus[g])) {
        problems.push({
          key: listKey(i, "providers", j),
          message: `"${p}" offers none of this model's GPUs (${model.gpu.join(", ")}); it offers ${offered.join(", ")}`,
        });
      }
    });
    problems.push(...providerRouteProblems(model, (j) => listKey(i, "providers", j)));
    model.gpu.forEach((g: GpuId, j) => {
      if (configured.length > 0 && !configured.some((p) => PROVIDERS[p].gpus[g])) {
        problems.push({
          key: listKey(i, "gpu", j),
          message: `"${g}" is not offered by any of this model's providers (${configured.join(", ")}); pick another GPU or add a provider that has it`,
        });
      }
    });
  });

  for (const id of ["runpod-serverless", "runpod-pod"] as const) {
    const settings = config.providers[id];
    if (settings?.cloud !== "secure") continue;
    const known = PROVIDERS[id].clouds.secure!.regions.map((r) => r.id);
    settings.dataCenters.forEach((dc, j) => {
      if (!known.includes(dc)) {
        problems.push({
          key: `providers.${id}.dataCenters[${j}]`,
          message: `"${dc}" is not a known RunPod secure data centre; known: ${known.join(", ")}`,
        });
      }
    });
  }
  problems.push(...checkTrust(config));
  problems.push(...checkPlatform(config));
  return problems;
}

/** Providers that pass every route of this engine: where to move a model a provider's path leaves short. */
const providersPassing = (engine: ModelConfig["engine"], paths: readonly ProviderPath[]): string =>
  orList(
    CONFIGURABLE_PROVIDER_IDS.filter(
      (p) => !paths.some((path) => path.provider === p && path.engines.includes(engine)),
    ),
  );

/**
 * A model its providers together leave none of its kind's routes (a provider that runs something other than the
 * engine's server, `PROVIDER_PATHS` in core/engine-routes.ts): an error on each provider that leaves routes out.
 */
function providerRouteProblems(model: ModelConfig, keyOf: (j: number) => string): ConfigProblem[] {
  if (modelServedRoutes(model).length > 0) return [];
  return providerRouteGaps(model.kind, model.engine, model.providers).map((gap) => ({
    key: keyOf(gap.index),
    message:
      `"${gap.provider}" runs this model on ${gap.path.runs} (image ${gap.path.image}), which does not serve ` +
      `${orList(gap.lacks)} (${gap.path.why}), so this ${model.kind} model would answer nothing; ` +
      `serve it from another provider (${providersPassing(model.engine, PROVIDER_PATHS)})`,
  }));
}

/**
 * Models some of whose providers leave out routes the others serve: the model does not answer those routes at all
 * (a request would fail whenever it lands on such a provider), so the plan names them.
 */
export function providerRouteWarnings(
  config: StackConfig,
  project: string,
  paths: readonly ProviderPath[] = PROVIDER_PATHS,
): ConfigProblem[] {
  return config.models.flatMap((model, i) => {
    const answered = modelServedRoutes(model, paths);
    if (answered.length === 0) return []; // refused by providerRouteProblems
    return providerRouteGaps(model.kind, model.engine, model.providers, paths).map((gap) => ({
      key: `${project}:models[${i}].providers[${gap.index}]`,
      message:
        `${providerPathLabel(gap.path)} does not serve ${orList(gap.lacks)} (${gap.path.why}), so the model ` +
        `"${model.name}" will not answer ${gap.lacks.length > 1 ? "them" : "it"} (only ${answered.join(", ")}); ` +
        `to serve ${gap.lacks.length > 1 ? "them" : "it"}, give the model only providers that do (${providersPassing(model.engine, paths)})`,
    }));
  });
}

/** Add-ons only a created cluster can get, the admin SSH key given once, alert receivers only with monitoring. */
function checkPlatform(config: StackConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (!config.monitoring.enabled && config.monitoring.notify)
    problems.push({
      key: "monitoring.notify",
      message:
        "sends the alerts of the stack's PrometheusRule, which monitoring.enabled: false leaves out; set monitoring.enabled: true or remove notify",
    });
  if (config.cluster.mode === "existing" && config.platform.ingress === "k3s-traefik")
    problems.push({
      key: "platform.ingress",
      message:
        '"k3s-traefik" is the Traefik a cluster the stack creates runs; with cluster.mode existing set "existing" and name your controller in gateway.ingressClassName and gateway.ingressNamespace',
    });
  if (config.cluster.mode === "create" && config.cluster.sshPublicKey && config.cluster.sshKeyName)
    problems.push({
      key: "cluster.sshKeyName",
      message:
        "set either sshPublicKey (uploaded as a new Hetzner key) or sshKeyName (a key already in the project), not both",
    });
  return problems;
}

/** Trust lists may tighten; confidential may only be widened by a named exception for a named model. */
function checkTrust(config: StackConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const certified = defaultApprovedOfferings("confidential");
  (config.trust.approved.confidential ?? []).forEach((id, j) => {
    if (!certified.includes(id)) {
      problems.push({
        key: `trust.approved.confidential[${j}]`,
        message: `"${id}" is not certified; confidential data may only go to ${certified.join(", ")} — loosening needs a named entry under trust.exceptions`,
      });
    }
  });
  const models = new Set(config.models.map((m) => m.name));
  const names = new Set<string>();
  config.trust.exceptions.forEach((e, j) => {
    if (!models.has(e.model)) {
      problems.push({
        key: `trust.exceptions[${j}].model`,
        message: `"${e.model}" is not a model of this stack`,
      });
    }
    if (names.has(e.name))
      problems.push({ key: `trust.exceptions[${j}].name`, message: `"${e.name}" is used twice` });
    names.add(e.name);
  });
  return problems;
}

/** Secret keys the stack's providers and cluster mode need, with the reason. */
function neededSecrets(config: StackConfig, project: string): Map<string, string> {
  const needed = new Map<string, string>();
  for (const id of Object.keys(config.providers) as (keyof StackConfig["providers"])[]) {
    if (config.providers[id] === undefined) continue;
    for (const key of PROVIDERS[id].credentialKeys) needed.set(`${project}:${key}`, `provider ${id}`);
  }
  if (config.cluster.mode === "existing") needed.set(`${project}:kubeconfig`, "cluster mode existing");
  else needed.set("hcloud:token", "cluster mode create (the Hetzner API token)");
  if (config.backup) {
    needed.set(`${project}:backupAccessKeyId`, "backup (the object storage access key)");
    needed.set(`${project}:backupSecretAccessKey`, "backup (the object storage secret key)");
  }
  const notify = config.monitoring.enabled ? config.monitoring.notify : undefined;
  if (notify?.slack)
    needed.set(
      `${project}:${ALERT_RECEIVER_SECRETS.slack}`,
      "monitoring.notify.slack (the Slack incoming-webhook URL)",
    );
  if (notify?.webhook)
    needed.set(
      `${project}:${ALERT_RECEIVER_SECRETS.webhook}`,
      "monitoring.notify.webhook (the URL alerts are POSTed to)",
    );
  return needed;
}

function missingSecretWarning(key: string, why: string, project: string): ConfigProblem {
  const shortKey = key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key;
  return {
    key,
    message: `is not set but ${why} needs it; run \`pulumi config set --secret ${shortKey} <value>\` (pulumi up would fail)`,
  };
}

/** RFC 5737 (IPv4) and RFC 3849 (IPv6) documentation ranges: no real host has an address in them. */
const DOCUMENTATION_RANGES_V4 = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"] as const;

const ipv4ToInt = (ip: string): number => ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);

/** Whether a CIDR (v4 or v6) overlaps a documentation range. */
export function isDocumentationRange(cidr: string): boolean {
  const [address = "", prefixText = ""] = cidr.split("/");
  if (address.includes(":")) return /^2001:0?db8(:|$)/i.test(address);
  const prefix = Number(prefixText);
  const mask = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
  return DOCUMENTATION_RANGES_V4.some((range) => {
    const [base = "", bitsText = ""] = range.split("/");
    const bits = Math.min(prefix, Number(bitsText)); // two networks overlap where the shorter prefix agrees
    return (ipv4ToInt(address) & mask(bits)) >>> 0 === (ipv4ToInt(base) & mask(bits)) >>> 0;
  });
}

/**
 * SSH and API sources in documentation ranges: the shipped stacks carry them as placeholders, so they plan
 * offline, but from them nobody connects — with `cluster.mode: create` Pulumi reads the kubeconfig over SSH from
 * where `pulumi up` runs, and would time out. A warning here; the program refuses them when it runs for real.
 */
export function documentationRangeWarnings(config: StackConfig, project: string): ConfigProblem[] {
  if (config.cluster.mode !== "create") return [];
  const cluster = config.cluster;
  return (["sshAllowedCidrs", "apiAllowedCidrs"] as const).flatMap((field) =>
    cluster[field].flatMap((cidr, i) =>
      isDocumentationRange(cidr)
        ? [
            {
              key: `${project}:cluster.${field}[${i}]`,
              message: `"${cidr}" is a documentation address range (RFC 5737/3849): no one connects from it, so ${
                field === "sshAllowedCidrs"
                  ? "pulumi up cannot read the kubeconfig over SSH"
                  : "nobody reaches the Kubernetes API"
              }; set the address pulumi up runs from, e.g. "$(curl -s https://ifconfig.me)/32" (pulumi up refuses it)`,
            },
          ]
        : [],
    ),
  );
}

/**
 * What an offline plan only warns about but a real deployment must not start with (documentation address ranges
 * as SSH/API sources): throws StackConfigError naming each key and the fix, before anything is created.
 */
export function refuseToDeploy(loaded: LoadedStackConfig): void {
  const blockers = documentationRangeWarnings(loaded.config, loaded.project);
  if (blockers.length > 0) throw new StackConfigError(blockers);
}

function unusedProviders(config: StackConfig, project: string): ConfigProblem[] {
  const used = new Set<string>(config.models.flatMap((m) => m.providers));
  return Object.entries(config.providers)
    .filter(([id, settings]) => settings !== undefined && !used.has(id))
    .map(([id]) => ({ key: `${project}:providers.${id}`, message: "is configured but no model uses it" }));
}

/** The secret key names a stack may set, namespaced. */
export const secretKeysOf = (project: string = PROJECT_NAME): string[] => [
  ...SECRET_CONFIG_KEYS.map((k: SecretConfigKey) => `${project}:${k}`),
  ...FOREIGN_SECRET_KEYS,
];
