/**
 * What a RunPod serverless endpoint runs for one serving unit, by engine: worker-vllm behind RunPod's job queue for
 * vLLM models, vLLM-Omni behind a load-balancing endpoint for diffusion models (worker-vllm is a queue handler over
 * vLLM's text routes and cannot start vLLM-Omni). Pure: tested as a plain function; `index.ts` passes the result to
 * `RunPodServerlessEndpoint`.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { ModelConfig } from "../core/config";
import { ENGINE_IMAGES } from "../core/config/schema";
import { VLLM_OMNI_PROGRAM, vllmOmniServeArgs } from "../core/engine-command";
import { shellJoin } from "../core/shell";
import type { EndpointType, ScalerType } from "./runpod-endpoint";

/** The port vLLM-Omni serves on inside a load-balanced worker (RunPod's `PORT`; its default, 80, needs root). */
export const RUNPOD_LB_ENGINE_PORT = 8000;

/**
 * The path RunPod's load balancer polls (`HEALTH_CHECK_PATH`, default `/ping`): vLLM's `GET /health`, which vLLM-Omni
 * serves since its server is vLLM's app (`vllm_omni/entrypoints/openai/api_server.py`: `build_openai_app`) —
 * 200 once the engine is up. Until the server listens, RunPod sees no answer and keeps the worker initializing.
 */
export const RUNPOD_LB_HEALTH_PATH = "/health";

/** RunPod's cold-start limit without `RUNPOD_INIT_TIMEOUT`: 7 minutes (serverless/development/optimization.mdx). */
const RUNPOD_DEFAULT_INIT_SECONDS = 420;

/** A unit as the settings need it: the model's fields and the name clients use. */
export type RunPodUnit = Pick<
  ModelConfig,
  | "source"
  | "revision"
  | "engine"
  | "engineArgs"
  | "gpuCount"
  | "maxModelLen"
  | "targetConcurrency"
  | "queueTimeoutSeconds"
> & { readonly publicName: string };

export interface RunPodWorkerSettings {
  readonly endpointType: EndpointType;
  /** Undefined: the provider's `image` setting (or the component's default, worker-vllm). */
  readonly image?: string;
  readonly args?: string;
  readonly ports?: readonly string[];
  readonly env: Record<string, pulumi.Input<string>>;
  /** Set where the engine needs it (a load-balancing endpoint scales on requests); else the provider's setting. */
  readonly scalerType?: ScalerType;
  readonly scalerValue?: number;
}

/** The endpoint settings for one unit; `hfToken` (a secret) reaches the worker's env when given. */
export function runpodWorkerSettings(
  unit: RunPodUnit,
  hfToken: pulumi.Output<string> | undefined,
): RunPodWorkerSettings {
  const token: Record<string, pulumi.Input<string>> = hfToken ? { HF_TOKEN: hfToken } : {};
  if (unit.engine === "vllm-omni") {
    // The start command in RunPod's JSON form (runpod/docs `pods/templates/manage-templates.mdx`, "Container start
    // command"; v2 `ContainerConfig.args` is shared by templates, pods and endpoints), so the launch does not depend
    // on the image's entrypoint. No --api-key: RunPod's load balancer takes the RunPod key as bearer and is the only
    // way in (overview.mdx); the engine would refuse that key.
    const cmd = vllmOmniServeArgs({
      source: unit.source,
      revision: unit.revision,
      servedName: unit.publicName,
      port: RUNPOD_LB_ENGINE_PORT,
      engineArgs: unit.engineArgs,
    });
    return {
      endpointType: "LOAD_BALANCER",
      image: ENGINE_IMAGES["vllm-omni"],
      args: JSON.stringify({ entrypoint: [VLLM_OMNI_PROGRAM], cmd }),
      // "If using a custom port, add it to your endpoint's environment variables and expose it" (overview.mdx)
      ports: [`${RUNPOD_LB_ENGINE_PORT}/http`],
      env: {
        PORT: String(RUNPOD_LB_ENGINE_PORT),
        PORT_HEALTH: String(RUNPOD_LB_ENGINE_PORT),
        HEALTH_CHECK_PATH: RUNPOD_LB_HEALTH_PATH,
        // "If cold start exceeds 7 minutes, the worker is marked unhealthy. Extend with RUNPOD_INIT_TIMEOUT"
        // (runpod/docs serverless/development/optimization.mdx): a diffusion model's first download can take
        // longer; allow as long as a request may wait for it
        RUNPOD_INIT_TIMEOUT: String(
          Math.max(RUNPOD_DEFAULT_INIT_SECONDS, Math.ceil(unit.queueTimeoutSeconds)),
        ),
        ...token,
      },
      // v2 `RequestCountScaling`: "Required for load-balancing endpoints"; a worker per targetConcurrency requests
      scalerType: "REQUEST_COUNT",
      scalerValue: unit.targetConcurrency,
    };
  }
  return {
    endpointType: "QUEUE",
    // worker-vllm's env (its README; external-contracts.md "worker-vllm env")
    env: {
      MODEL_NAME: unit.source,
      ...(unit.revision ? { MODEL_REVISION: unit.revision } : {}),
      // every variant answers under the model's public name, so clients never see the rollout
      OPENAI_SERVED_MODEL_NAME_OVERRIDE: unit.publicName,
      // worker-vllm shlex-splits it: quoted, so an argument with a space or a quote stays one argument
      ...(unit.engineArgs.length > 0 ? { VLLM_EXTRA_ARGS: shellJoin(unit.engineArgs) } : {}),
      // vLLM shards the model over the worker's GPUs (worker-vllm README: TENSOR_PARALLEL_SIZE, default 1)
      ...(unit.gpuCount > 1 ? { TENSOR_PARALLEL_SIZE: String(unit.gpuCount) } : {}),
      ...(unit.maxModelLen ? { MAX_MODEL_LEN: String(unit.maxModelLen) } : {}),
      ...token,
    },
  };
}
