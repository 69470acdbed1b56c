/**
 * What the controller is built from: its config, Redis, the provider adapters and managed backends, metrics, and the
 * knobs tests and the benchmark turn (intervals, time, probes, certificates). Apart from `controller.ts` so the loop
 * stays short; every default is stated here.
 */
import type { Redis } from "ioredis";
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import type { CertificatePin, WorkerCertificate } from "../core/x509";
import type { ControllerMetrics } from "./metrics";
import type { ManagedBackend, ProviderAdapter } from "./providers/types";

export interface ControllerDeps {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  /** Instance providers by id (the caller builds them from settings and credentials). */
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  /** Managed backends by id (RunPod serverless): providers that queue and scale their own workers. */
  readonly managed?: Partial<Record<ConfigurableProviderId, ManagedBackend>>;
  readonly metrics: ControllerMetrics;
  /** Engine environment for workers (HF_TOKEN); values are secrets. */
  readonly workerEnv?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  /** Decision interval; demand signals wake the loop at once in between. @default 1000 */
  readonly tickMs?: number;
  /** Reconciliation interval. @default 60000 */
  readonly reconcileMs?: number;
  /** A worker that is not ready this long after its request is failed and replaced. @default 1200000 */
  readonly bootTimeoutMs?: number;
  /** An intent record older than this without an instance is dropped (the create never happened). @default 120000 */
  readonly staleIntentMs?: number;
  /** Draining workers get this long for in-flight requests to finish. @default 120000 */
  readonly drainGraceMs?: number;
  /**
   * Ready workers' OpenAI endpoints are probed this often; a worker that stops answering is failed and replaced
   * (at once when its provider no longer reports it running). @default 3000
   */
  readonly healthCheckMs?: number;
  /**
   * Asks a worker's OpenAI endpoint whether it serves (its token as bearer), trusting only `pin` when the worker
   * has a certificate. @default probeOpenAi
   */
  readonly probe?: (baseUrl: string, token: string, pin?: CertificatePin) => Promise<boolean>;
  /**
   * Issues the certificate and key of a worker outside the cluster (tests may hand out a fixed one).
   * @default createWorkerCertificate
   */
  readonly issueCertificate?: (workerId: string) => WorkerCertificate;
  /** Seeds the keep-alive's randomized break-even (keep-alive-state.ts). @default random per start */
  readonly keepAliveDrawSeed?: number;
  /** Holder id for the leader lock. @default random */
  readonly holder?: string;
  /**
   * Managed endpoints are steered (listed, bounds checked, health read, workers booked) this often, and at once
   * when a budget block changes: their provider's API is rate-limited per account (RunPod: 60 a minute in the
   * spec's example). @default 15000
   */
  readonly managedSteerMs?: number;
}
