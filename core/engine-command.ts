/**
 * Engine command lines shared by the controller (workers it starts on instance providers) and the stack (RunPod
 * load-balancing endpoints it declares), so both start an engine the same way. Pure.
 */

/** What vLLM-Omni's `vllm serve … --omni` needs to serve one diffusion model. */
export interface VllmOmniServe {
  /** Hugging Face repository of the weights. */
  readonly source: string;
  readonly revision?: string;
  /** The name the engine answers to (`model` in requests). */
  readonly servedName: string;
  readonly port: number;
  /** Omitted where something in front of the engine authenticates instead (RunPod's load balancer). */
  readonly apiKey?: string;
  readonly engineArgs: readonly string[];
}

/** The program vLLM-Omni installs (pyproject.toml `[project.scripts] vllm = "vllm_omni.entrypoints.cli.main:main"`). */
export const VLLM_OMNI_PROGRAM = "vllm";

/**
 * Arguments to `vllm` that serve a diffusion model with vLLM-Omni. The docs launch it as
 * `vllm serve Qwen/Qwen-Image --omni --port 8000` (serving/image_generation_api.md): the model is the positional
 * `model_tag` (vllm_omni/entrypoints/cli/serve.py); the rest are vLLM's own serve flags, which vLLM-Omni forwards
 * to a diffusion model since vllm-project/vllm-omni#985. A diffusion model has no tensor parallelism or context
 * length to pass.
 */
export function vllmOmniServeArgs(serve: VllmOmniServe): string[] {
  return [
    "serve",
    serve.source,
    "--omni",
    ...(serve.revision ? ["--revision", serve.revision] : []),
    "--served-model-name",
    serve.servedName,
    "--host",
    "0.0.0.0",
    "--port",
    String(serve.port),
    ...(serve.apiKey ? ["--api-key", serve.apiKey] : []),
    ...serve.engineArgs,
  ];
}

/**
 * Optional Python extras an engine needs for a kind of model that its published image leaves out. vLLM's image
 * ships without them "to avoid licensing issues", and its docs add one as `uv pip install --system
 * vllm[audio]==<the image's version>` (docs.vllm.ai, deployment/docker.md "Using Docker"): speech-to-text models
 * (Whisper) need the `audio` extra (librosa, soundfile) to read uploads.
 */
export function engineExtrasFor(kind: string, engine: string): readonly string[] {
  return engine === "vllm" && kind === "audio" ? ["audio"] : [];
}

/**
 * Shell lines (for `sh -c`) that install vLLM's extras at the version already installed in the image, so a
 * provider's own vLLM image gets matching ones; `uv` is in vLLM's image (docker/Dockerfile: `pip install uv`).
 */
export function vllmExtrasInstall(extras: readonly string[]): string[] {
  if (extras.length === 0) return [];
  for (const extra of extras)
    if (!/^[a-z0-9_-]+$/.test(extra)) throw new Error(`not a Python extra name: ${JSON.stringify(extra)}`);
  return [
    `v=$(python3 -c 'from importlib.metadata import version; print(version("vllm"))')`,
    `uv pip install --system "vllm[${extras.join(",")}]==$v"`,
  ];
}
