/**
 * Where the controller says what it did: log lines, the capped decision list `aiorch status` shows, the audit
 * trail, and the provider-error counter. Every collaborator writes through one journal.
 *
 * Rules: best effort — a journal write never fails a tick (the action it records already happened or was
 * refused); it holds no state of its own beyond what it was built with.
 */
import type { Redis } from "ioredis";
import { type AuditAction, AuditTrail } from "../core/audit-trail";
import type { ConfigurableProviderId } from "../core/catalog";
import type { RedisKeys } from "../core/redis-keys";
import type { ControllerMetrics } from "./metrics";
import type { ScaleDecisionEntry } from "./model-types";
import { isProviderError } from "./providers/types";

/** How many scale decisions `aiorch status` can show (a capped list in Redis). */
const DECISIONS_KEPT = 200;
/** How many provider errors the MCP `provider_errors` tool can show (a capped list in Redis). */
const PROVIDER_ERRORS_KEPT = 200;

export interface JournalDeps {
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly metrics: Pick<ControllerMetrics, "providerErrors">;
  readonly now: () => number;
  readonly log: (line: string) => void;
  /** Who the audit trail names as the actor (`controller:<leader holder>`). */
  readonly actor: string;
}

export class ControllerJournal {
  private readonly auditTrail: AuditTrail;

  constructor(private readonly deps: JournalDeps) {
    this.auditTrail = new AuditTrail(deps.redis, deps.keys, deps.now);
  }

  log(line: string): void {
    this.deps.log(line);
  }

  /** Append to the capped decision list `aiorch status` shows; best effort, never fails a tick. */
  async note(entry: Omit<ScaleDecisionEntry, "atMs">): Promise<void> {
    const key = this.deps.keys.scaleDecisions;
    await this.deps.redis
      .multi()
      .lpush(key, JSON.stringify({ atMs: this.deps.now(), ...entry }))
      .ltrim(key, 0, DECISIONS_KEPT - 1)
      .exec()
      .catch(() => undefined);
  }

  /** An audit trail entry by this controller; best effort (the action itself already happened or was refused). */
  audit(action: AuditAction, target: string, reason: string): void {
    this.auditTrail
      .append({ actor: this.deps.actor, action, target, reason })
      .catch((error: Error) => this.log(`controller: audit trail: ${error.message}`));
  }

  /** A provider call failed: counted by the error's kind (unknown errors count as transient) and logged. */
  providerError(provider: ConfigurableProviderId, error: unknown, what: string): void {
    const kind = isProviderError(error) ? error.kind : "transient";
    this.deps.metrics.providerErrors.inc({ provider, kind });
    const message = (error as Error).message;
    this.log(`controller: ${what} on ${provider} failed: ${message}`);
    // kept for `provider_errors` (MCP); adapters' messages never carry a credential (providers/types.ts)
    const key = this.deps.keys.providerErrors;
    this.deps.redis
      .multi()
      .lpush(
        key,
        JSON.stringify({ atMs: this.deps.now(), provider, kind, what, message: message.slice(0, 300) }),
      )
      .ltrim(key, 0, PROVIDER_ERRORS_KEPT - 1)
      .exec()
      .catch(() => undefined);
  }
}
