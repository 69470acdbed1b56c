/** What a RunPod endpoint runs per engine (components/runpod-worker-settings.ts), as a plain function. */
import { describe, expect, it } from "vitest";
import {
  RUNPOD_LB_ENGINE_PORT,
  RUNPOD_LB_HEALTH_PATH,
  type RunPodUnit,
  runpodWorkerSettings,
} from "../../components/runpod-worker-settings";
import { ENGINE_IMAGES } from "../../core/config/schema";

const unit = (over: Partial<RunPodUnit>): RunPodUnit => ({
  source: "o/m",
  engine: "vllm",
  engineArgs: [],
  gpuCount: 1,
  targetConcurrency: 8,
  queueTimeoutSeconds: 180,
  publicName: "m",
  ...over,
});

describe("runpodWorkerSettings", () => {
  it("a vLLM model: worker-vllm behind the queue, configured by env only (the provider's image and scaler)", () => {
    const s = runpodWorkerSettings(unit({ revision: "abc", maxModelLen: 4096, gpuCount: 2 }), undefined);
    expect(s).toEqual({
      endpointType: "QUEUE",
      env: {
        MODEL_NAME: "o/m",
        MODEL_REVISION: "abc",
        OPENAI_SERVED_MODEL_NAME_OVERRIDE: "m",
        TENSOR_PARALLEL_SIZE: "2",
        MAX_MODEL_LEN: "4096",
      },
    });
  });

  it("a vLLM-Omni model: a load-balancing endpoint starting `vllm serve <model> --omni` on PORT, health on vLLM's /health", () => {
    const s = runpodWorkerSettings(
      unit({
        engine: "vllm-omni",
        source: "Tongyi-MAI/Z-Image-Turbo",
        revision: "r1",
        publicName: "pics",
        targetConcurrency: 1,
        queueTimeoutSeconds: 600,
        engineArgs: ["--enforce-eager"],
      }),
      undefined,
    );
    expect(s.endpointType).toBe("LOAD_BALANCER");
    expect(s.image).toBe(ENGINE_IMAGES["vllm-omni"]);
    // the JSON start command: independent of the image's entrypoint, every argument one argv entry
    expect(JSON.parse(s.args!)).toEqual({
      entrypoint: ["vllm"],
      cmd: [
        "serve",
        "Tongyi-MAI/Z-Image-Turbo",
        "--omni",
        "--revision",
        "r1",
        "--served-model-name",
        "pics",
        "--host",
        "0.0.0.0",
        "--port",
        String(RUNPOD_LB_ENGINE_PORT),
        "--enforce-eager",
      ],
    });
    // RunPod's load balancer authenticates with the RunPod key; the engine must not demand another
    expect(s.args).not.toContain("--api-key");
    expect(s.ports).toEqual([`${RUNPOD_LB_ENGINE_PORT}/http`]);
    expect(s.env).toEqual({
      PORT: String(RUNPOD_LB_ENGINE_PORT),
      PORT_HEALTH: String(RUNPOD_LB_ENGINE_PORT),
      HEALTH_CHECK_PATH: RUNPOD_LB_HEALTH_PATH,
      // past RunPod's 7-minute cold-start limit: as long as a request may wait (queueTimeoutSeconds)
      RUNPOD_INIT_TIMEOUT: "600",
    });
    // RunPod requires REQUEST_COUNT scaling on a load-balancing endpoint; a worker per targetConcurrency requests
    expect([s.scalerType, s.scalerValue]).toEqual(["REQUEST_COUNT", 1]);
  });
});
