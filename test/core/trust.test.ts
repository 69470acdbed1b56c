import { describe, expect, it } from "vitest";
import { loadStackConfig, parseStackFile, renderRuntimeConfig, StackConfigError } from "../../core/config";
import {
  assertProvisionAllowed,
  decideProvision,
  defaultApprovedOfferings,
  OFFERING_IDS,
  ProviderRefusedError,
  refusalText,
} from "../../core/trust";
import { stackYaml } from "../../devkit/stack-yaml";

const runtimeOf = (overrides: Record<string, string>) =>
  renderRuntimeConfig(loadStackConfig(parseStackFile(stackYaml(overrides), "t.yaml")), "t");

const confidential = {
  dataClass: "confidential",
  gdpr: "true",
  providers: "{ vastai: {}, runpod-serverless: { dataCenters: [EU-RO-1, US-TX-3] }, datacrunch: {} }",
  models:
    "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090, RTX_4090, A100_80GB], providers: [vastai, runpod-serverless, datacrunch] }]",
};

describe("offerings", () => {
  it("name RunPod's clouds apart and other providers plainly", () => {
    expect(OFFERING_IDS).toEqual(
      expect.arrayContaining([
        "runpod-serverless:secure",
        "runpod-serverless:community",
        "vastai",
        "datacrunch",
        "local",
      ]),
    );
    expect(defaultApprovedOfferings("confidential")).toEqual(
      expect.arrayContaining(["runpod-serverless:secure", "runpod-pod:secure", "datacrunch", "coreweave"]),
    );
    expect(defaultApprovedOfferings("confidential")).not.toContain("vastai");
  });
});

describe("the controller's provisioning gate", () => {
  const runtime = runtimeOf(confidential);

  it("refuses a marketplace provider for confidential data", () => {
    const decision = decideProvision(runtime, "m", "vastai");
    expect(decision.allowed).toBe(false);
    expect(decision.reason).toMatch(/model "m" holds confidential data but vastai is a marketplace provider/);
    expect(() => assertProvisionAllowed(runtime, "m", "vastai")).toThrow(ProviderRefusedError);
    expect(() => assertProvisionAllowed(runtime, "m", "vastai")).toThrow(refusalText(decision));
  });

  it("refuses a certified provider pinned partly outside the EU when GDPR is required", () => {
    const decision = decideProvision(runtime, "m", "runpod-serverless");
    expect(decision.allowed).toBe(false);
    expect(decision.reason).toMatch(/US-TX-3 is outside the EU\/EEA/);
  });

  it("allows a certified EU provider", () => {
    expect(decideProvision(runtime, "m", "datacrunch").allowed).toBe(true);
    expect(() => assertProvisionAllowed(runtime, "m", "datacrunch")).not.toThrow();
  });

  it("refuses providers the model does not list and models the config does not know", () => {
    const publicRuntime = runtimeOf({});
    expect(decideProvision(publicRuntime, "m", "datacrunch").reason).toMatch(/does not list datacrunch/);
    expect(decideProvision(publicRuntime, "ghost", "vastai").reason).toMatch(
      /model "ghost" is not in the runtime config/,
    );
  });

  it("honours a named exception from the stack config", () => {
    const excepted = runtimeOf({
      ...confidential,
      gdpr: "false",
      trust:
        "{ exceptions: [{ name: EX-1, model: m, provider: vastai, reason: 'synthetic benchmark data only' }] }",
    });
    const decision = decideProvision(excepted, "m", "vastai");
    expect(decision).toMatchObject({ allowed: true, exception: "EX-1" });
  });
});

describe("trust config", () => {
  const problems = (overrides: Record<string, string>) => {
    try {
      runtimeOf(overrides);
    } catch (error) {
      if (error instanceof StackConfigError) return error.problems.map((p) => `${p.key}: ${p.message}`);
    }
    return [];
  };

  it("cannot widen confidential by listing a marketplace provider", () => {
    expect(problems({ trust: "{ approved: { confidential: [datacrunch, vastai] } }" })).toEqual([
      expect.stringMatching(
        /^ai-orchestrator:trust\.approved\.confidential\[1\]: "vastai" is not certified; .*trust\.exceptions/,
      ),
    ]);
  });

  it("an exception must name a model of the stack and give a reason", () => {
    expect(
      problems({
        trust:
          "{ exceptions: [{ name: EX-1, model: ghost, provider: vastai, reason: 'because we can do it' }] }",
      }),
    ).toEqual(['ai-orchestrator:trust.exceptions[0].model: "ghost" is not a model of this stack']);
    expect(
      problems({ trust: "{ exceptions: [{ name: EX-1, model: m, provider: vastai, reason: why }] }" })[0],
    ).toMatch(/reason: needs a real reason/);
  });
});
