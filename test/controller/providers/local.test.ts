import { describe, expect, it } from "vitest";
import { LocalAdapter } from "../../../controller/providers/local";
import { ProviderError, type WorkerSpec } from "../../../controller/providers/types";
import { localSchema } from "../../../core/config/schema";

const spec: WorkerSpec = {
  workerId: "w-7",
  ownerLabel: "aiorch-dev",
  model: "llama3.1",
  source: "meta-llama/Llama-3.1-8B-Instruct",
  engine: "ollama",
  image: "ollama/ollama:0.11.4",
  gpuCount: 1,
  engineArgs: [],
  port: 11434,
  workerToken: "wtok-SECRET-local",
  env: {},
};

const adapter = (url = "http://workstation.lan:11434/v1/") =>
  new LocalAdapter({ settings: localSchema.parse({ url }) });

describe("local adapter", () => {
  it("offers one zero-cost offer for the model's first GPU", async () => {
    expect((await adapter().offers({ gpu: ["RTX_4090", "L4"], gpuCount: 1 })).offers).toEqual([
      { provider: "local", gpu: "RTX_4090", usdPerHour: 0, offerId: "static" },
    ]);
    expect((await adapter().offers({ gpu: [], gpuCount: 1 })).offers).toEqual([]);
  });

  it("provision returns the configured server as running, without /v1", async () => {
    const a = adapter();
    const [offer] = (await a.offers({ gpu: ["RTX_4090"], gpuCount: 1 })).offers;
    const info = await a.provision(spec, offer!);
    expect(info).toEqual({
      providerId: "local:w-7",
      workerId: "w-7",
      ownerLabel: "aiorch-dev",
      status: "running",
      baseUrl: "http://workstation.lan:11434",
      usdPerHour: 0,
      detail: "static server",
    });
    expect(await a.describe(info.providerId)).toMatchObject({ status: "running", baseUrl: info.baseUrl });
    expect(adapter("https://gpu.example.com/openai").baseUrl).toBe("https://gpu.example.com/openai");
  });

  it("never has anything to reconcile or terminate", async () => {
    const a = adapter();
    expect(await a.listOwned("aiorch-dev")).toEqual([]);
    await expect(a.terminate("local:w-7")).resolves.toBeUndefined();
    expect(await a.describe("12345")).toBeUndefined();
  });

  it("refuses an offer of another provider", async () => {
    const err = await adapter()
      .provision(spec, { provider: "vastai", gpu: "RTX_4090", usdPerHour: 0.3, offerId: "1" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).kind).toBe("fatal");
  });
});
