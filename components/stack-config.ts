/**
 * Reads the stack's config from the Pulumi runtime and validates it with the schema in `core/`, so a bad
 * config stops the program before any resource is registered.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  type LoadedStackConfig,
  loadStackConfig,
  type RawConfigValue,
  type RuntimeConfig,
  refuseToDeploy,
  renderRuntimeConfig,
} from "../core/config";

// `isConfigSecret` is part of the runtime but missing from its typings; it reads PULUMI_CONFIG_SECRET_KEYS.
const runtime = pulumi.runtime as typeof pulumi.runtime & { isConfigSecret?: (key: string) => boolean };

export interface StackSettings {
  readonly loaded: LoadedStackConfig;
  readonly runtimeConfig: RuntimeConfig;
}

/**
 * The validated config of the running stack. Throws `StackConfigError` naming each bad key — and, when the program
 * runs against a real engine (`pulumi preview`/`up`, not the offline plan's mocks), each placeholder the offline plan
 * only warns about (documentation address ranges), before any resource is registered.
 */
export function readStackSettings(): StackSettings {
  const raw: Record<string, RawConfigValue> = {};
  for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
    raw[key] = { value, secret: runtime.isConfigSecret?.(key) ?? false };
  }
  const loaded = loadStackConfig(raw, pulumi.getProject());
  if (pulumi.runtime.hasEngine()) refuseToDeploy(loaded);
  for (const warning of loaded.warnings) pulumi.log.warn(`${warning.key}: ${warning.message}`);
  return { loaded, runtimeConfig: renderRuntimeConfig(loaded, pulumi.getStack()) };
}
