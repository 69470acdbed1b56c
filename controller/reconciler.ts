/**
 * The reconciler: holds what each provider runs under the stack's owner label against the worker registry —
 * adopts an instance whose create outlived a controller crash, fails workers whose instance is gone, and
 * terminates orphans (instances with our owner label that no live worker owns).
 *
 * Owns: when it last ran.
 *
 * Rules (DESIGN.md §4, crash safety): instances are matched by the worker id in their tag; an intent record
 * (`requested`, no instance id) is adopted only by the instance carrying its worker id; a live worker is failed
 * for a missing instance only once it is past STALE_INTENT_MS (a create may still be listing); a provider that
 * cannot be listed is skipped this round, never taken to run nothing. Runs on start and every `reconcileMs`
 * (not while the controller holds after Redis lost its state: controller/redis-loss.ts). An instance whose worker
 * id has no record at all (created after the backup a restore brought back) is booked from its creation time
 * and terminated through the lifecycle (`takeUnrecorded`), so its spend is not lost.
 */
import type { ConfigurableProviderId } from "../core/catalog";
import type { ControllerJournal } from "./journal";
import type { ControllerMetrics } from "./metrics";
import { STALE_INTENT_MS } from "./model-types";
import { type InstanceInfo, type ProviderAdapter, parseInstanceTag } from "./providers/types";
import type { WorkerRecord, WorkerRegistry } from "./registry";

/**
 * The model an instance is booked under when the registry has no record of it (the provider's tag does not name
 * the model): its spend shows in the ledger's totals and per provider, and under this name per model.
 */
export const UNRECORDED_MODEL = "(unrecorded)";

/** What the reconciler needs of the lifecycle: a worker whose instance is gone is failed (and replaced). */
export interface WorkerFailer {
  fail(worker: WorkerRecord, why: string): Promise<WorkerRecord>;
}

export interface OrphanReconcilerDeps {
  readonly ownerLabel: string;
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  readonly registry: Pick<WorkerRegistry, "live" | "transition" | "get" | "create">;
  readonly lifecycle: WorkerFailer;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "providerError">;
  readonly metrics: Pick<ControllerMetrics, "orphans">;
  readonly now: () => number;
  /** @default 60000 */
  readonly reconcileMs?: number;
}

export class OrphanReconciler {
  private lastReconcile = 0;

  constructor(private readonly deps: OrphanReconcilerDeps) {}

  /** Reconcile when `reconcileMs` has passed since the last run (the first tick always runs it). */
  async reconcileIfDue(nowMs: number): Promise<void> {
    if (nowMs - this.lastReconcile < (this.deps.reconcileMs ?? 60_000)) return;
    this.lastReconcile = nowMs;
    await this.reconcile();
  }

  /** Compare what each provider runs under our owner label with the registry: adopt, or terminate orphans. */
  async reconcile(): Promise<void> {
    const { registry, journal, now } = this.deps;
    const live = await registry.live();
    const byId = new Map(live.map((w) => [w.id, w]));
    for (const [provider, adapter] of Object.entries(this.deps.adapters) as [
      ConfigurableProviderId,
      ProviderAdapter,
    ][]) {
      if (provider === "local") continue;
      let instances: InstanceInfo[];
      try {
        instances = await adapter.listOwned(this.deps.ownerLabel);
      } catch (error) {
        journal.providerError(provider, error, "reconcile list");
        continue;
      }
      // Workers the provider no longer runs (a lost spot instance, a failed host) are failed and replaced.
      const seen = new Set(instances.filter((i) => i.status !== "terminated").map((i) => i.providerId));
      for (const worker of live) {
        if (worker.provider !== provider || !worker.providerId || seen.has(worker.providerId)) continue;
        if (
          !["booting", "ready", "draining"].includes(worker.state) ||
          now() - worker.createdAtMs < STALE_INTENT_MS
        )
          continue;
        await this.deps.lifecycle.fail(worker, "the provider no longer runs this instance");
      }
      for (const instance of instances) {
        if (instance.status === "terminated") continue;
        const workerId = instance.workerId ?? parseInstanceTag(instance.ownerLabel ?? "")?.workerId;
        const known = workerId ? byId.get(workerId) : undefined;
        if (known && !known.providerId && known.state === "requested") {
          // the create succeeded but the controller died before writing it down: adopt
          await registry.transition(known, "provisioning", {
            provider,
            providerId: instance.providerId,
            usdPerHour: instance.usdPerHour ?? known.usdPerHour,
            accruedUntilMs: instance.createdAtMs ?? now(),
            detail: "adopted by the reconciler",
          });
          journal.log(
            `controller: reconcile adopted ${instance.providerId} at ${provider} as worker ${known.id}`,
          );
          await journal.note({
            model: known.model,
            action: "adopt",
            worker: known.id,
            reason: `instance ${instance.providerId} at ${provider} was created before a controller restart; adopted`,
          });
          continue;
        }
        if (known && known.providerId === instance.providerId) continue;
        // No record at all (not even a finished one): it was written after the backup Redis was restored from,
        // or expired while the instance ran on. Booked and terminated through the lifecycle, never lost.
        if (workerId && !known && (await registry.get(workerId)) === undefined) {
          await this.takeUnrecorded(provider, workerId, instance);
          continue;
        }
        this.deps.metrics.orphans.inc({ provider });
        journal.log(
          `controller: reconcile found orphan ${instance.providerId} at ${provider} (worker ${workerId ?? "?"}); terminating`,
        );
        await journal.note({
          model: known?.model ?? "?",
          action: "orphan",
          ...(workerId ? { worker: workerId } : {}),
          reason: `instance ${instance.providerId} at ${provider} carries the owner label but no live worker owns it; terminated`,
        });
        try {
          await adapter.terminate(instance.providerId);
        } catch (error) {
          journal.providerError(provider, error, `terminate orphan ${instance.providerId}`);
        }
      }
    }
  }

  /**
   * An instance carrying our owner label and a worker id the registry has no record of. It cannot be adopted as a
   * serving worker: which model it runs, the engine's API key and the pinned certificate were only in the lost
   * record (the provider's tag says owner and worker id, nothing else). So it gets a record in `failed` — billed
   * from the provider's creation time at its price, so the ledger books the time since it started — and the
   * lifecycle terminates it this same tick, booking the rest at the provider's confirmation.
   */
  private async takeUnrecorded(
    provider: ConfigurableProviderId,
    workerId: string,
    instance: InstanceInfo,
  ): Promise<void> {
    const { registry, journal, now } = this.deps;
    const createdAtMs = instance.createdAtMs ?? now();
    const usdPerHour = instance.usdPerHour ?? 0;
    const since = new Date(createdAtMs).toISOString();
    const reason = `instance ${instance.providerId} at ${provider} carries the owner label but the registry has no record of worker ${workerId} (written after the backup Redis was restored from, or expired); its time since ${since} at $${usdPerHour}/h is booked and it is terminated`;
    this.deps.metrics.orphans.inc({ provider });
    journal.log(
      `controller: reconcile found orphan ${instance.providerId} at ${provider} (worker ${workerId}); terminating, its uptime booked`,
    );
    const record = await registry.create({
      id: workerId,
      model: UNRECORDED_MODEL,
      provider,
      providerId: instance.providerId,
      usdPerHour,
      token: "", // never routed: the engine's key was in the lost record
      createdAtMs,
      lastActiveAtMs: now(),
      detail: reason,
    });
    await registry.transition(record, "failed", { detail: reason });
    await journal.note({ model: UNRECORDED_MODEL, action: "orphan", worker: workerId, reason });
  }
}
