/**
 * The runtime config: what the stack's ConfigMap holds and what the gateway and controller parse at start.
 * It is rendered from the validated stack config (secrets excluded) and validated again by the same field
 * schemas on the way in, so a hand-edited or stale ConfigMap fails loudly instead of half-working.
 */
import { z } from "zod";
import { PROVIDERS, type PriceEntry, resolvePrices } from "../catalog";
import { dashboardUid } from "../metrics";
import { describeIssue, problemsFromIssues, StackConfigError } from "./errors";
import type { LoadedStackConfig } from "./load";
import {
  backupSchema,
  budgetSchema,
  dataClassSchema,
  gatewaySchema,
  gpuIdSchema,
  modelSchema,
  providersSchema,
  type StackConfig,
  securitySchema,
  selfHealingSchema,
  trustSchema,
} from "./schema";

export const RUNTIME_CONFIG_VERSION = 1;

/** File name of the runtime config inside its ConfigMap; the gateway and controller read it from there. */
export const RUNTIME_CONFIG_FILE = "runtime.json";
/** `app.kubernetes.io/component` label of that ConfigMap; the policy pack finds the stack's runtime by it. */
export const RUNTIME_CONFIG_COMPONENT = "runtime-config";

const runtimePriceSchema = z.strictObject({
  provider: z.string(),
  gpu: gpuIdSchema,
  usdPerHour: z.number().positive(),
  source: z.string(),
});

export const runtimeConfigSchema = z.strictObject({
  version: z.literal(RUNTIME_CONFIG_VERSION),
  project: z.string().min(1),
  stack: z.string().min(1),
  namespace: z.string().min(1),
  /** Label put on every provider instance the stack creates; reconciliation lists by it. */
  ownerLabel: z.string().min(1),
  dataClass: dataClassSchema,
  gdpr: z.boolean(),
  budget: budgetSchema.nullable(),
  gateway: gatewaySchema,
  redis: z.strictObject({ keyPrefix: z.string().min(1) }),
  providers: providersSchema,
  /** Models with their effective data class filled in. */
  models: z.array(modelSchema.and(z.object({ dataClass: dataClassSchema }))).min(1),
  /** USD per GPU-hour for every provider × GPU the models may use (the cost ledger's source). */
  prices: z.array(runtimePriceSchema),
  /** Trust overrides; the controller applies the same rules as the policy pack. */
  trust: trustSchema,
  /** Which protections the stack turns on (the policy pack requires them for confidential data). */
  security: securitySchema,
  /** Where backups go (no credentials: those are in the backup CronJob's Secret); absent: no backups. */
  backup: backupSchema.optional(),
  /** Self-healing guard rails; absent: the controller only detects (stack config `selfHealing`). */
  selfHealing: selfHealingSchema.optional(),
  /** The stack's Grafana dashboard (monitoring on): its uid, and its address when `monitoring.grafanaUrl` is set. */
  dashboard: z.strictObject({ uid: z.string().min(1), url: z.string().optional() }).optional(),
});
export type RuntimeConfig = z.output<typeof runtimeConfigSchema>;

/** Owner label for provider resources: unique per project and stack, a valid DNS label. */
export function ownerLabelOf(project: string, stack: string): string {
  const label = `${project}-${stack}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return label.slice(0, 63).replace(/-+$/, "");
}

/** Default API bases filled in, so the runtime never consults the catalog for where to call. */
function withApiBases(providers: StackConfig["providers"]): StackConfig["providers"] {
  const out: Record<string, unknown> = {};
  for (const [id, settings] of Object.entries(providers)) {
    if (settings === undefined) continue;
    const apiBase = PROVIDERS[id as keyof typeof PROVIDERS].apiBase;
    const takesDefault =
      id !== "local" && apiBase !== undefined && !(settings as { apiBase?: string }).apiBase;
    out[id] = takesDefault ? { ...settings, apiBase } : settings;
  }
  return out as StackConfig["providers"];
}

/** Render the runtime config for a stack: deterministic, secret-free, ready to be JSON in a ConfigMap. */
export function renderRuntimeConfig(loaded: LoadedStackConfig, stack: string): RuntimeConfig {
  const { config, project } = loaded;
  const models = config.models.map((m) => ({ ...m, dataClass: m.dataClass ?? config.dataClass }));
  const prices = relevantPrices(config, resolvePrices(config.prices));
  return {
    version: RUNTIME_CONFIG_VERSION,
    project,
    stack,
    namespace: config.namespace,
    ownerLabel: ownerLabelOf(project, stack),
    dataClass: config.dataClass,
    gdpr: config.gdpr,
    budget: config.budget ?? null,
    gateway: config.gateway,
    redis: { keyPrefix: config.redis.keyPrefix },
    providers: withApiBases(config.providers),
    models,
    prices,
    trust: config.trust,
    security: config.security,
    ...(config.backup ? { backup: config.backup } : {}),
    ...(config.selfHealing ? { selfHealing: config.selfHealing } : {}),
    ...(config.monitoring.enabled ? { dashboard: dashboardOf(config.monitoring.grafanaUrl, stack) } : {}),
  };
}

function relevantPrices(config: StackConfig, table: readonly PriceEntry[]): RuntimeConfig["prices"] {
  const wanted = new Set(
    config.models.flatMap((m) => m.providers.flatMap((p) => m.gpu.map((g) => `${p}/${g}`))),
  );
  return table
    .filter((p) => wanted.has(`${p.provider}/${p.gpu}`))
    .map((p) => ({ provider: p.provider, gpu: p.gpu, usdPerHour: p.usdPerHour, source: p.source }))
    .sort((a, b) => a.provider.localeCompare(b.provider) || a.gpu.localeCompare(b.gpu));
}

/**
 * Parse the runtime config the gateway or controller was started with.
 * @throws StackConfigError with keys like `runtime:models[0].gpu`
 */
export function parseRuntimeConfig(json: unknown): RuntimeConfig {
  const parsed = runtimeConfigSchema.safeParse(json, { reportInput: true, error: describeIssue });
  if (parsed.success) return parsed.data;
  throw new StackConfigError(
    problemsFromIssues(parsed.error.issues, runtimeConfigSchema, json, (p) => `runtime:${p}`),
  );
}

/** How the runtime connects to Redis, from its environment. */
export interface RedisConnection {
  readonly url: string;
  readonly password?: string;
  /** mTLS material (PEM text) when `REDIS_TLS_CA_FILE` is set; the URL is then `rediss://`. */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
}

/**
 * Where the runtime finds Redis: `REDIS_URL` (default local), `REDIS_PASSWORD` from a Secret, and for mTLS the
 * files `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE` (mounted from the stack's PKI Secret).
 * @param readFile reads a mounted file (injected, so this stays testable without a filesystem)
 */
export function redisConnectionFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = () => {
    throw new Error("no file reader given for the Redis TLS files");
  },
): RedisConnection {
  const url = env.REDIS_URL || "redis://127.0.0.1:6379";
  if (!/^rediss?:\/\//.test(url)) throw new Error(`REDIS_URL "${url}" must start with redis:// or rediss://`);
  const password = env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD } : {};
  if (!env.REDIS_TLS_CA_FILE) {
    if (url.startsWith("rediss://"))
      throw new Error("REDIS_URL is rediss:// but REDIS_TLS_CA_FILE is not set");
    return { url, ...password };
  }
  if (!url.startsWith("rediss://"))
    throw new Error(`REDIS_TLS_CA_FILE is set, so REDIS_URL must be rediss://; got "${url}"`);
  if (Boolean(env.REDIS_TLS_CERT_FILE) !== Boolean(env.REDIS_TLS_KEY_FILE)) {
    throw new Error(
      "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (the client certificate and its key)",
    );
  }
  return {
    url,
    ...password,
    tls: {
      ca: readFile(env.REDIS_TLS_CA_FILE),
      ...(env.REDIS_TLS_CERT_FILE
        ? { cert: readFile(env.REDIS_TLS_CERT_FILE), key: readFile(env.REDIS_TLS_KEY_FILE!) }
        : {}),
    },
  };
}

/** ioredis options for a connection (the caller adds its own retry and pipelining choices). */
export function redisClientOptions(connection: RedisConnection): {
  password?: string;
  tls?: { ca: string; cert?: string; key?: string };
} {
  return {
    ...(connection.password ? { password: connection.password } : {}),
    ...(connection.tls ? { tls: { ...connection.tls } } : {}),
  };
}

/**
 * Name of the RunPod serverless endpoint of a model: the Pulumi program creates it under this name and the
 * controller finds it by this name, so no endpoint id has to travel through the config.
 */
export function runpodEndpointName(project: string, stack: string, model: string): string {
  // `model@variant` → `model--variant`, apart from a plain model named `model-variant`
  return `${project}-${stack}-${model.replace("@", "--").replace(/[^a-zA-Z0-9-]/g, "-")}`;
}

function dashboardOf(grafanaUrl: string | undefined, stack: string): { uid: string; url?: string } {
  const uid = dashboardUid(stack);
  return grafanaUrl ? { uid, url: `${grafanaUrl.replace(/\/+$/, "")}/d/${uid}` } : { uid };
}
