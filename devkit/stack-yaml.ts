/** Stack files for tests and benchmarks, and the runtime config the real loader renders from one. */
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../core/config";

/** A small valid stack; `overrides` replace or add top-level keys (value "" removes one). */
export function stackYaml(overrides: Record<string, string> = {}): string {
  const keys: Record<string, string> = {
    cluster: "{ mode: existing }",
    dataClass: "public",
    budget: "{ monthlyUsd: 100 }",
    providers: "{ vastai: {} }",
    models: "[{ name: m, kind: chat, source: org/model, gpu: [RTX_3090], providers: [vastai] }]",
    gateway: "{ host: ai.example.com }",
    ...overrides,
  };
  const lines = Object.entries(keys)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `  ${k.includes(":") ? k : `ai-orchestrator:${k}`}: ${v}`);
  return `config:\n${lines.join("\n")}\n`;
}

/** The runtime config of stack `stack` from its YAML, as `aiorch` renders it (`fileName` names it in errors). */
export function runtimeConfigOf(yaml: string, stack: string, fileName = `${stack}.yaml`): RuntimeConfig {
  return renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, fileName)), stack);
}
