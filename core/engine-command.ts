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
