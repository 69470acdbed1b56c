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
