import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildProviders, REGISTRY } from "../../../controller/providers";
import { CONFIGURABLE_PROVIDER_IDS, PROVIDERS } from "../../../core/catalog";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../../../core/config";
import { stackYaml } from "../../../devkit/stack-yaml";

const config = renderRuntimeConfig(
  loadStackConfig(
    parseStackFile(
      stackYaml({
        dataClass: "public",
        providers:
          "{ runpod-serverless: {}, runpod-pod: {}, vastai: {}, datacrunch: {}, local: { url: http://127.0.0.1:11434/v1 } }",
        models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_4090], providers: [vastai] }]",
      }),
      "t.yaml",
    ),
  ),
  "test",
);

describe("the provider registry", () => {
  it("has an entry for exactly the providers the catalog says have an adapter", () => {
    const withAdapter = Object.values(PROVIDERS)
      .filter((p) => p.hasAdapter)
      .map((p) => p.id)
      .sort();
    expect(Object.keys(REGISTRY).sort()).toEqual(withAdapter);
    expect([...CONFIGURABLE_PROVIDER_IDS].sort()).toEqual(withAdapter);
  });

  it("builds each configured provider from its credentials: adapters, and RunPod serverless as a managed backend", () => {
    const logs: string[] = [];
    const built = buildProviders(
      config,
      {
        RUNPOD_API_KEY: "rpa_x1234",
        VASTAI_API_KEY: "vast_x1234",
        DATACRUNCH_CLIENT_ID: "id",
        DATACRUNCH_CLIENT_SECRET: "secret_x1234",
      },
      (line) => logs.push(line),
    );
    expect(Object.keys(built.adapters).sort()).toEqual(["datacrunch", "local", "runpod-pod", "vastai"]);
    expect(Object.keys(built.managed)).toEqual(["runpod-serverless"]);
    expect(logs).toEqual([]);
  });

  it("leaves out a provider whose credentials are missing, saying so, and builds the rest", () => {
    const logs: string[] = [];
    const built = buildProviders(config, { VASTAI_API_KEY: "vast_SECRET_1234" }, (line) => logs.push(line));
    expect(Object.keys(built.adapters).sort()).toEqual(["local", "vastai"]);
    expect(built.managed).toEqual({});
    expect(logs.join("\n")).toMatch(/runpod-pod disabled: .*RUNPOD_API_KEY is empty/);
    expect(logs.join("\n")).toMatch(/datacrunch disabled/);
  });

  it("controller/main.ts holds no per-provider code", () => {
    const main = readFileSync(join(__dirname, "../../../controller/main.ts"), "utf8");
    expect(main).not.toMatch(/providers\/(runpod|vastai|datacrunch|local)/);
    for (const id of CONFIGURABLE_PROVIDER_IDS) expect(main).not.toContain(`"${id}"`);
    expect(main).not.toMatch(/RUNPOD_|VASTAI_|DATACRUNCH_/);
  });
});
