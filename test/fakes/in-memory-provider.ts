/**
 * An in-memory `ProviderAdapter` for loop tests, after Karpenter's `fake/cloudprovider.go`: no HTTP, no
 * timers. It records every call, serves configurable offers, walks each instance through `provisioning →
 * booting → running` on the clock it is given (the controller's `now`), and throws errors of the adapters'
 * taxonomy (`ProviderError` kinds) where a test injects them.
 *
 * Rules: it keeps the contract of `ProviderAdapter` (types.ts) — `provision` is idempotent by worker id,
 * `listOwned` answers by owner label, `terminate` of an unknown or gone instance succeeds — so a loop test
 * that passes against it says something about the controller, not about the fake. The HTTP contract fakes
 * beside it (vastai-api.ts, …) stay the reference for what each real API says.
 */
import {
  type InstanceInfo,
  type InstanceStatus,
  type Offer,
  type OfferRequest,
  type OfferSearch,
  type ProviderAdapter,
  ProviderError,
  type ProviderErrorKind,
  type SkippedOffer,
  type WorkerSpec,
} from "../../controller/providers/types";
import type { ConfigurableProviderId } from "../../core/catalog";

export type FakeOperation = "offers" | "provision" | "describe" | "listOwned" | "terminate";

/** One call the controller made, in order. */
export interface FakeCall {
  readonly operation: FakeOperation;
  readonly atMs: number;
  readonly workerId?: string;
  readonly providerId?: string;
  readonly offerId?: string;
}

export interface FakeInstance {
  readonly providerId: string;
  readonly workerId?: string;
  readonly ownerLabel: string;
  readonly offer?: Offer;
  readonly usdPerHour: number;
  readonly createdAtMs: number;
  /** Set by `terminate` (or `kill`): from then on the instance is terminating, then terminated. */
  endedAtMs?: number;
  /** A status that overrides the walk (`kill`, `setStatus`). */
  forced?: InstanceStatus;
}

export interface InMemoryProviderOptions {
  readonly id?: ConfigurableProviderId;
  /** The clock instances walk on; pass the controller's `now`. */
  readonly now: () => number;
  readonly offers?: readonly Offer[];
  readonly skipped?: readonly SkippedOffer[];
  /** How long an instance stays in each state before the next. @default { provisioningMs: 2000, bootingMs: 10000 } */
  readonly walk?: { readonly provisioningMs: number; readonly bootingMs: number };
  /** How long a terminated instance reports `terminating` before `terminated`. @default 0 */
  readonly terminateDelayMs?: number;
  /** The engine address a running instance reports (no /v1). @default http://10.0.0.<n>:8000 */
  readonly baseUrlOf?: (instance: FakeInstance) => string | undefined;
  /** Called at each call, after it is recorded and before it is answered (a test may look at Redis then). */
  readonly onCall?: (call: FakeCall, spec?: WorkerSpec) => void | Promise<void>;
}

/** An error of the adapters' taxonomy, as a real adapter would throw it. */
export function fakeProviderError(
  kind: ProviderErrorKind,
  operation: FakeOperation,
  detail = `injected ${kind} error`,
  extra: { status?: number; code?: string; provider?: ConfigurableProviderId } = {},
): ProviderError {
  return new ProviderError({
    kind,
    provider: extra.provider ?? "vastai",
    operation,
    detail,
    ...(extra.status !== undefined ? { status: extra.status } : {}),
    ...(extra.code !== undefined ? { code: extra.code } : {}),
  });
}

export class InMemoryProvider implements ProviderAdapter {
  readonly id: ConfigurableProviderId;
  readonly calls: FakeCall[] = [];
  /** Every provision call with its spec and offer (the spec carries secrets: tests only). */
  readonly provisions: { spec: WorkerSpec; offer: Offer }[] = [];
  private offerList: Offer[];
  private skippedList: SkippedOffer[];
  private readonly instances = new Map<string, FakeInstance>();
  private readonly nextErrors = new Map<FakeOperation, Error[]>();
  private readonly offerErrors = new Map<string, Error>();
  /** Provisions that create the instance and then never answer (the controller "dies" in the call). */
  private hangs = 0;
  private nextId = 1;

  constructor(private readonly options: InMemoryProviderOptions) {
    this.id = options.id ?? "vastai";
    this.offerList = [
      ...(options.offers ?? [{ provider: this.id, gpu: "RTX_3090", usdPerHour: 0.2, offerId: "o1" }]),
    ];
    this.skippedList = [...(options.skipped ?? [])];
  }

  // ── test controls ─────────────────────────────────────────────────────────────────────────────────────

  setOffers(offers: readonly Offer[], skipped: readonly SkippedOffer[] = []): void {
    this.offerList = [...offers];
    this.skippedList = [...skipped];
  }

  /** The next `times` calls of `operation` throw `error` (queued after errors already injected). */
  failNext(operation: FakeOperation, error: Error, times = 1): void {
    const queue = this.nextErrors.get(operation) ?? [];
    for (let i = 0; i < times; i++) queue.push(error);
    this.nextErrors.set(operation, queue);
  }

  /** Every provision on this offer throws `error` (a sold-out offer), until `clearFaults`. */
  failOffer(offerId: string, error: Error): void {
    this.offerErrors.set(offerId, error);
  }

  /** The next provision creates its instance, then never answers: as when the controller dies during the call. */
  hangNextProvision(): void {
    this.hangs += 1;
  }

  clearFaults(): void {
    this.nextErrors.clear();
    this.offerErrors.clear();
    this.hangs = 0;
  }

  /** An instance the provider runs that the controller may or may not know (an orphan, a crash survivor). */
  seedInstance(init: {
    workerId?: string;
    ownerLabel: string;
    usdPerHour?: number;
    createdAtMs?: number;
    offer?: Offer;
  }): FakeInstance {
    const instance: FakeInstance = {
      providerId: `i-${this.nextId++}`,
      ownerLabel: init.ownerLabel,
      usdPerHour: init.usdPerHour ?? 0.2,
      createdAtMs: init.createdAtMs ?? this.options.now(),
      ...(init.workerId !== undefined ? { workerId: init.workerId } : {}),
      ...(init.offer !== undefined ? { offer: init.offer } : {}),
    };
    this.instances.set(instance.providerId, instance);
    return instance;
  }

  /** The provider loses the instance (a reclaimed spot host): it reports `terminated` from now on. */
  kill(providerId: string): void {
    const instance = this.instances.get(providerId);
    if (instance) instance.forced = "terminated";
  }

  /** Instances not (yet) terminated. */
  live(): FakeInstance[] {
    return [...this.instances.values()].filter((i) => this.statusOf(i) !== "terminated");
  }

  callsOf(operation: FakeOperation): FakeCall[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  // ── the contract ──────────────────────────────────────────────────────────────────────────────────────

  async offers(request: OfferRequest): Promise<OfferSearch> {
    await this.record({ operation: "offers", atMs: this.options.now() });
    this.throwInjected("offers");
    return {
      offers: this.offerList
        .filter((o) => request.gpu.includes(o.gpu))
        .sort((a, b) => a.usdPerHour - b.usdPerHour),
      skipped: [...this.skippedList],
    };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    const call: FakeCall = {
      operation: "provision",
      atMs: this.options.now(),
      workerId: spec.workerId,
      ...(offer.offerId !== undefined ? { offerId: offer.offerId } : {}),
    };
    this.provisions.push({ spec, offer });
    await this.record(call, spec);
    this.throwInjected("provision");
    const soldOut = offer.offerId !== undefined ? this.offerErrors.get(offer.offerId) : undefined;
    if (soldOut) throw soldOut;
    // idempotent by worker id: a create that "failed" but did create is adopted, never doubled
    const existing = [...this.instances.values()].find(
      (i) => i.workerId === spec.workerId && this.statusOf(i) !== "terminated",
    );
    const instance =
      existing ??
      this.seedInstance({
        workerId: spec.workerId,
        ownerLabel: spec.ownerLabel,
        usdPerHour: offer.usdPerHour,
        offer,
      });
    if (this.hangs > 0) {
      this.hangs -= 1;
      return new Promise<InstanceInfo>(() => undefined);
    }
    return this.info(instance);
  }

  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    await this.record({ operation: "describe", atMs: this.options.now(), providerId });
    this.throwInjected("describe");
    const instance = this.instances.get(providerId);
    return instance ? this.info(instance) : undefined;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    await this.record({ operation: "listOwned", atMs: this.options.now() });
    this.throwInjected("listOwned");
    return [...this.instances.values()].filter((i) => i.ownerLabel === ownerLabel).map((i) => this.info(i));
  }

  async terminate(providerId: string): Promise<void> {
    await this.record({ operation: "terminate", atMs: this.options.now(), providerId });
    this.throwInjected("terminate");
    const instance = this.instances.get(providerId);
    if (instance && instance.endedAtMs === undefined) instance.endedAtMs = this.options.now();
  }

  // ── inside ────────────────────────────────────────────────────────────────────────────────────────────

  private async record(call: FakeCall, spec?: WorkerSpec): Promise<void> {
    this.calls.push(call);
    await this.options.onCall?.(call, spec);
  }

  private throwInjected(operation: FakeOperation): void {
    const error = this.nextErrors.get(operation)?.shift();
    if (error) throw error;
  }

  private statusOf(instance: FakeInstance): InstanceStatus {
    if (instance.forced) return instance.forced;
    const now = this.options.now();
    if (instance.endedAtMs !== undefined)
      return now - instance.endedAtMs >= (this.options.terminateDelayMs ?? 0) ? "terminated" : "terminating";
    const walk = this.options.walk ?? { provisioningMs: 2_000, bootingMs: 10_000 };
    const age = now - instance.createdAtMs;
    if (age < walk.provisioningMs) return "provisioning";
    if (age < walk.provisioningMs + walk.bootingMs) return "booting";
    return "running";
  }

  private info(instance: FakeInstance): InstanceInfo {
    const status = this.statusOf(instance);
    const n = Number(instance.providerId.replace(/\D/g, "")) % 250;
    const baseUrl =
      status === "running"
        ? this.options.baseUrlOf
          ? this.options.baseUrlOf(instance)
          : `http://10.0.0.${n}:8000`
        : undefined;
    return {
      providerId: instance.providerId,
      ownerLabel: instance.ownerLabel,
      status,
      usdPerHour: instance.usdPerHour,
      createdAtMs: instance.createdAtMs,
      detail: `fake ${status}`,
      ...(instance.workerId !== undefined ? { workerId: instance.workerId } : {}),
      ...(baseUrl !== undefined ? { baseUrl } : {}),
    };
  }
}
