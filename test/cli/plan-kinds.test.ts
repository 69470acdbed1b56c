/**
 * `aiorch plan` refuses a model whose kind its engine cannot serve, or whose providers leave it no route, before
 * anything is planned (issue 24).
 */
import { afterAll, describe, expect, it } from "vitest";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "./helpers";

const projects: string[] = [];
afterAll(() => {
  for (const dir of projects) removeProject(dir);
});

describe("aiorch plan: kind and engine", () => {
  it.each([
    [
      "an image model on vLLM (only vLLM-Omni serves /v1/images/generations)",
      "[{ name: pics, kind: image, source: o/sdxl, gpu: [RTX_4090], providers: [vastai] }]",
      /ai-orchestrator:models\[0\]\.engine: vllm 0\.10\.1\.1 serves none of the routes of an image model \(\/v1\/images\/generations\); set engine to vllm-omni/,
    ],
    [
      "a chat model on vLLM-Omni (it serves image generation only)",
      "[{ name: c, kind: chat, engine: vllm-omni, source: o/c, gpu: [RTX_4090], providers: [vastai] }]",
      /ai-orchestrator:models\[0\]\.engine: vllm-omni 0\.16\.0 serves none of the routes of a chat model/,
    ],
    [
      "an audio (speech-to-text) model on Ollama",
      "[{ name: stt, kind: audio, engine: ollama, source: o/whisper, gpu: [RTX_3090], providers: [vastai] }]",
      /ai-orchestrator:models\[0\]\.engine: ollama 0\.11\.4 serves none of the routes of an audio model \(\/v1\/audio\/transcriptions\); set engine to vllm/,
    ],
    [
      "an embedding model on TGI",
      "[{ name: e, kind: embedding, engine: tgi, source: o/e, gpu: [RTX_3090], providers: [vastai] }]",
      /ai-orchestrator:models\[0\]\.engine: tgi 3\.3\.4 serves none of the routes of an embedding model \(\/v1\/embeddings, \/v1\/rerank, \/v1\/score\); set engine to vllm or ollama/,
    ],
  ])("%s: exit 2, nothing planned, the message names the key", (_label, models, expected) => {
    const dir = tempProject({ "Pulumi.bad.yaml": stackYaml({ models }) });
    projects.push(dir);
    const result = aiorch(["plan", "--stack", "bad"], dir);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(expected);
  });

  it("an audio model on RunPod serverless (its queue path passes JSON jobs, not uploads): exit 2, naming the provider", () => {
    const models =
      "[{ name: stt, kind: audio, source: openai/whisper-large-v3, gpu: [RTX_4090], providers: [vastai, runpod-serverless] }]";
    const providers = '{ vastai: {}, "runpod-serverless": {} }';
    const dir = tempProject({ "Pulumi.bad.yaml": stackYaml({ models, providers }) });
    projects.push(dir);
    const result = aiorch(["plan", "--stack", "bad"], dir);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(
      /ai-orchestrator:models\[0\]\.providers\[1\]: "runpod-serverless" runs this model on worker-vllm v2\.25\.2 \(image runpod\/worker-v1-vllm:v2\.25\.2\), which does not serve \/v1\/audio\/transcriptions .*serve it from another provider \(runpod-pod, vastai, datacrunch or local\)/,
    );
  });
});
