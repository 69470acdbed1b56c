/** Engine command lines shared by the controller and the stack (core/engine-command.ts). */
import { describe, expect, it } from "vitest";
import { engineExtrasFor, vllmExtrasInstall } from "../../core/engine-command";

describe("engine extras", () => {
  it("vLLM speech-to-text models get the audio extra; nothing else does", () => {
    expect(engineExtrasFor("audio", "vllm")).toEqual(["audio"]);
    for (const [kind, engine] of [
      ["chat", "vllm"],
      ["embedding", "vllm"],
      ["image", "vllm-omni"],
      ["chat", "ollama"],
    ] as const)
      expect(engineExtrasFor(kind, engine)).toEqual([]);
  });

  it("refuses an extra name that is not one (it goes into a shell line)", () => {
    expect(() => vllmExtrasInstall(["audio; rm -rf /"])).toThrow(/not a Python extra name/);
    expect(vllmExtrasInstall([])).toEqual([]);
  });
});
