/**
 * Admission of one request for an API key: the one path inference and async jobs both take, so they cannot differ
 * in budgets or limits.
 *
 * Rules, in order (each refusal is a 429 the client can act on):
 * 1. A model or the stack blocked by the controller at its GPU budget: `budget_exceeded`, no retry.
 * 2. A key at its monthly budget: `insufficient_quota`, no retry. A key below it holds what a request of the model is
 *    expected to cost while it is in flight (`KeyBudgetGuard`); when that does not fit: `budget_held_in_flight`.
 * 3. The key's requests and tokens per minute, `reserved` tokens taken now and settled to the real use later:
 *    `rate_limit_exceeded` with Retry-After.
 * What was taken is given back with `release` (what the request used and cost), on every path.
 *
 * On the hot path everything is read from caches: `admit` then answers without a promise.
 */
import type { RuntimeConfig } from "../core/config";
import type { ApiKeyRecord } from "../core/protocol";
import type { BudgetHold, KeyBudgetGuard } from "./budget";
import { GatewayError } from "./errors";
import { type Admission, type RateLimiter, rateLimitHeaders } from "./limits";
import type { GatewayMetrics } from "./metrics";
import type { SpendView } from "./spend";

export interface AdmissionDeps {
  readonly config: RuntimeConfig;
  readonly spend: SpendView;
  readonly budgets: KeyBudgetGuard;
  readonly limiter: RateLimiter;
  readonly metrics: GatewayMetrics;
  readonly now: () => number;
}

/** What one admitted request took: given back by `release`. */
export interface Admitted {
  /** x-ratelimit-* headers for the answer. */
  readonly headers: Record<string, string>;
  readonly keyId: string;
  readonly reserved: number;
  readonly tpm: number;
  /** The key's budget held for it, when the key has a budget and the request holds it while in flight. */
  readonly budgetHold: BudgetHold | undefined;
}

export interface AdmissionRequest {
  /** The serving unit (`name`) and the model clients name (`publicName`, what budget blocks are keyed by). */
  readonly unit: { readonly name: string; readonly publicName: string };
  /** Tokens to take from the key's tpm now (prompt estimate plus the answer's reserve). */
  readonly reserved: number;
  /** Hold the key's budget until `release` (a request served now; not a job that may run elsewhere, later). */
  readonly holdBudget: boolean;
  /** Added to the rate-limit message (what counts as tokens for this kind of request). */
  readonly limitNote?: string;
}

/** Admit or throw the 429 (see the rules in the header). Synchronous when every read is cached. */
export function admit(
  deps: AdmissionDeps,
  key: ApiKeyRecord,
  request: AdmissionRequest,
): Admitted | Promise<Admitted> {
  const blocks = deps.spend.cachedBudgetBlocks();
  if (blocks === undefined)
    return deps.spend.budgetBlocks().then((read) => afterBlocks(deps, key, request, read));
  return afterBlocks(deps, key, request, blocks);
}

/** Give back what `admit` took: the budget hold (with what the request cost) and the unused tokens. */
export function release(
  deps: Pick<AdmissionDeps, "budgets" | "limiter" | "now">,
  admitted: Pick<Admitted, "keyId" | "reserved" | "tpm" | "budgetHold">,
  use: { tokens: number; costUsd: number; served: boolean },
): void {
  if (admitted.budgetHold) deps.budgets.release(admitted.budgetHold, use.costUsd, use.served, deps.now());
  if (!deps.limiter.settleLocal(admitted.keyId, admitted.tpm, admitted.reserved, use.tokens))
    deps.limiter.settle(admitted.keyId, admitted.tpm, admitted.reserved, use.tokens).catch(() => undefined);
}

function afterBlocks(
  deps: AdmissionDeps,
  key: ApiKeyRecord,
  request: AdmissionRequest,
  blocks: Record<string, string>,
): Admitted | Promise<Admitted> {
  // the controller blocks a model as a whole: its variants share its budget
  const block = blocks[request.unit.publicName] ?? blocks["*"];
  if (block) {
    deps.metrics.rateLimited.inc({ kind: "budget" });
    throw new GatewayError(
      429,
      "insufficient_quota",
      `GPU budget reached: ${block}`,
      "budget_exceeded",
      null,
      {
        "x-should-retry": "false",
      },
    );
  }
  const budget = key.monthlyBudgetUsd;
  if (budget === undefined) return limit(deps, key, request, undefined);
  return deps.spend.keySpendUsd(key.id).then((spent) => {
    if (spent >= budget) {
      deps.metrics.rateLimited.inc({ kind: "budget" });
      throw new GatewayError(
        429,
        "insufficient_quota",
        `This API key reached its monthly budget of $${budget}`,
        "insufficient_quota",
        null,
        { "x-should-retry": "false" },
      );
    }
    if (!request.holdBudget) return limit(deps, key, request, undefined);
    const hold = deps.budgets.hold(key.id, request.unit.name, budget, spent, deps.now());
    if (!hold) {
      deps.metrics.rateLimited.inc({ kind: "budget" });
      throw new GatewayError(
        429,
        "insufficient_quota",
        `What is left of this API key's monthly budget of $${budget} is held by its requests in flight; retry when they finish`,
        "budget_held_in_flight",
        null,
        { "retry-after": "1" },
      );
    }
    return limit(deps, key, request, hold);
  });
}

function limit(
  deps: AdmissionDeps,
  key: ApiKeyRecord,
  request: AdmissionRequest,
  hold: BudgetHold | undefined,
): Admitted | Promise<Admitted> {
  const limits = {
    rpm: key.rpm ?? deps.config.gateway.limits.rpm,
    tpm: key.tpm ?? deps.config.gateway.limits.tpm,
  };
  const decide = (admission: Admission): Admitted => {
    const headers = rateLimitHeaders(admission);
    if (admission.allowed)
      return { headers, keyId: key.id, reserved: request.reserved, tpm: limits.tpm, budgetHold: hold };
    if (hold) deps.budgets.release(hold, 0, false, deps.now());
    deps.metrics.rateLimited.inc({ kind: admission.rpmRemaining < 1 ? "rpm" : "tpm" });
    const retry = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
    throw new GatewayError(
      429,
      "rate_limit_error",
      `Rate limit reached for this API key (${limits.rpm} requests and ${limits.tpm} tokens per minute${request.limitNote ?? ""}); retry in ${retry}s`,
      "rate_limit_exceeded",
      null,
      { ...headers, "retry-after": String(retry), "retry-after-ms": String(admission.retryAfterMs) },
    );
  };
  const local = deps.limiter.admitLocal(key.id, limits, request.reserved);
  if (local) return decide(local);
  return deps.limiter.admit(key.id, limits, request.reserved).then(decide, (error: unknown) => {
    if (hold) deps.budgets.release(hold, 0, false, deps.now());
    throw error;
  });
}
