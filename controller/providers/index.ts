/**
 * The provider registry: one entry per configurable provider, each building its adapter (`ProviderAdapter`) or
 * managed backend (`ManagedBackend`) from the provider's settings and the credentials named by the catalog
 * (`credentialKeys`, read from the environment under `CREDENTIAL_ENV`). `controller/main.ts` holds no
 * per-provider code.
 *
 * Adding a provider: a catalog entry (`core/catalog.ts`, `hasAdapter: true`), its settings schema
 * (`core/config/schema.ts` `providersSchema`), an adapter file here, a line in `REGISTRY`, and a contract fake in
 * `test/fakes/` written from the provider's published API. A test fails when the catalog and the registry
 * disagree.
 */
import { type ConfigurableProviderId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import { CREDENTIAL_ENV } from "../../core/config/schema";
import { DatacrunchAdapter } from "./datacrunch";
import { LocalAdapter } from "./local";
import { RunpodPodAdapter } from "./runpod-pod";
import { RunPodServerlessBackend } from "./runpod-serverless";
import type { ManagedBackend, ProviderAdapter } from "./types";
import { VastAiAdapter } from "./vastai";

type Env = Readonly<Record<string, string | undefined>>;
type Providers = RuntimeConfig["providers"];

/** What a registry entry is given to build its provider. */
export interface ProviderBuildContext<Id extends ConfigurableProviderId> {
  /** `providers.<id>` of the runtime config, defaults applied. */
  readonly settings: NonNullable<Providers[Id]>;
  readonly config: RuntimeConfig;
  /** A credential by its stack config key (`runpodApiKey`); empty when the environment lacks it. */
  credential(key: keyof typeof CREDENTIAL_ENV): string;
  readonly env: Env;
}

export type BuiltProvider =
  | { readonly kind: "adapter"; readonly adapter: ProviderAdapter }
  | { readonly kind: "managed"; readonly backend: ManagedBackend };

type Registry = {
  readonly [Id in ConfigurableProviderId]: (context: ProviderBuildContext<Id>) => BuiltProvider;
};

const adapter = (a: ProviderAdapter): BuiltProvider => ({ kind: "adapter", adapter: a });

export const REGISTRY: Registry = {
  "runpod-serverless": (c) => ({
    kind: "managed",
    backend: new RunPodServerlessBackend({
      settings: c.settings,
      apiKey: c.credential("runpodApiKey"),
      project: c.config.project,
      stack: c.config.stack,
      // the job API host, for a contract fake in tests (REST v2 follows `apiBase`)
      ...(c.env.RUNPOD_JOB_API_BASE ? { jobApiBase: c.env.RUNPOD_JOB_API_BASE } : {}),
    }),
  }),
  "runpod-pod": (c) =>
    adapter(
      new RunpodPodAdapter({
        settings: c.settings,
        apiKey: c.credential("runpodApiKey"),
        prices: c.config.prices,
      }),
    ),
  vastai: (c) => adapter(new VastAiAdapter({ settings: c.settings, apiKey: c.credential("vastaiApiKey") })),
  datacrunch: (c) =>
    adapter(
      new DatacrunchAdapter({
        settings: c.settings,
        clientId: c.credential("datacrunchClientId"),
        clientSecret: c.credential("datacrunchClientSecret"),
        prices: c.config.prices,
      }),
    ),
  local: (c) => adapter(new LocalAdapter({ settings: c.settings })),
};

export interface BuiltProviders {
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  readonly managed: Partial<Record<ConfigurableProviderId, ManagedBackend>>;
}

/**
 * Every configured provider, built. One whose credentials are missing or wrong is left out with a log line
 * (never the credential): the controller then fails over to the next provider instead of failing every request.
 */
export function buildProviders(config: RuntimeConfig, env: Env, log: (line: string) => void): BuiltProviders {
  const adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>> = {};
  const managed: Partial<Record<ConfigurableProviderId, ManagedBackend>> = {};
  for (const id of Object.keys(REGISTRY) as ConfigurableProviderId[]) {
    const settings = config.providers[id];
    if (settings === undefined) continue;
    const context: ProviderBuildContext<ConfigurableProviderId> = {
      settings,
      config,
      env,
      credential: (key) =>
        PROVIDERS[id].credentialKeys.includes(key) ? (env[CREDENTIAL_ENV[key]] ?? "") : "",
    };
    try {
      const built = (REGISTRY[id] as (c: ProviderBuildContext<ConfigurableProviderId>) => BuiltProvider)(
        context,
      );
      if (built.kind === "adapter") adapters[id] = built.adapter;
      else managed[id] = built.backend;
    } catch (error) {
      log(`controller: provider ${id} disabled: ${(error as Error).message}`);
    }
  }
  return { adapters, managed };
}
