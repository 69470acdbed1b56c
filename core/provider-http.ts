/**
 * What every piece of code that talks to a provider's HTTP API shares, whatever client it uses: the failure
 * taxonomy and how an answer is classified into it, the retry policy (exponential backoff with full jitter that
 * honours Retry-After and RFC 9331 `RateLimit` resets within a bounded total), and redaction of credentials from
 * anything reported. Pure functions and constants only — no client, no state — so the controller's adapters
 * (`controller/providers/http.ts`, undici) and the RunPod dynamic providers (`components/runpod-api.ts`, fetch,
 * serialized by value into Pulumi's state) use the same rules.
 */

// ── failure taxonomy ──────────────────────────────────────────────────────────────────────────────────────

/**
 * auth: credentials missing, wrong or lacking a permission — not retried, a human must act.
 * capacity: the provider has no machine for the request (offer gone, no_capacity) — fail over to the next offer.
 * rate_limit: 429 — retried after Retry-After or backoff.
 * transient: 5xx, reset, timeout, unparseable answer — retried with backoff.
 * invalid: the provider says the request breaks its contract (RunPod 422 lists each violation) — a configuration
 *   or adapter error: the same request will fail every time, so it is reported once and not repeated.
 * fatal: any other refusal (insufficient funds, a forbidden action) — not retried.
 */
export type ProviderErrorKind = "auth" | "capacity" | "rate_limit" | "transient" | "invalid" | "fatal";

export const RETRYABLE_KINDS: readonly ProviderErrorKind[] = ["rate_limit", "transient"];

// ── retry policy ──────────────────────────────────────────────────────────────────────────────────────────

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Backoff cap for the first retry; doubles per retry. */
  readonly baseDelayMs: number;
  /** Largest backoff between two attempts (a Retry-After may ask for more, within maxTotalMs). */
  readonly maxDelayMs: number;
  /** Give up rather than start a wait that would end later than this after the first attempt. */
  readonly maxTotalMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 20_000,
  maxTotalMs: 90_000,
};

/** Full-jitter exponential backoff for the retry after `failedAttempt` (1-based). */
export function backoffMs(failedAttempt: number, policy: RetryPolicy, random: () => number): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempt - 1));
  return Math.floor(random() * cap);
}

/** Retry-After as milliseconds from now: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * Without a Retry-After: how long until every exhausted window of an RFC 9331 `RateLimit` header resets (RunPod
 * REST v2 sends `"minute";r=0;t=12, "hour";r=2800;t=1812` → 12 000 ms). Undefined when absent, unreadable or
 * nothing is exhausted.
 */
export function parseRateLimitReset(value: string | string[] | undefined | null): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw === null) return undefined;
  let waitSeconds: number | undefined;
  for (const member of raw.split(",")) {
    const params = new Map(
      member
        .split(";")
        .slice(1)
        .map((p) => p.trim().split("=", 2) as [string, string | undefined]),
    );
    const remaining = Number(params.get("r"));
    const resetSeconds = Number(params.get("t"));
    if (params.has("r") && remaining <= 0 && Number.isFinite(resetSeconds) && resetSeconds >= 0)
      waitSeconds = Math.max(waitSeconds ?? 0, resetSeconds);
  }
  return waitSeconds === undefined ? undefined : waitSeconds * 1000;
}

/**
 * The wait before the next attempt after `failedAttempt` (1-based) failed, or undefined to give up: attempts
 * used up, or the wait would end later than `policy.maxTotalMs` after the first attempt. Never shorter than a
 * wait the provider asked for (`retryAfterMs`).
 */
export function nextRetryDelayMs(options: {
  readonly failedAttempt: number;
  readonly elapsedMs: number;
  readonly retryAfterMs?: number;
  readonly policy: RetryPolicy;
  readonly random: () => number;
}): number | undefined {
  const { failedAttempt, elapsedMs, retryAfterMs, policy, random } = options;
  if (failedAttempt >= policy.maxAttempts) return undefined;
  const delayMs = Math.max(retryAfterMs ?? 0, backoffMs(failedAttempt, policy, random));
  return elapsedMs + delayMs > policy.maxTotalMs ? undefined : delayMs;
}

// ── classification ────────────────────────────────────────────────────────────────────────────────────────

/** Provider error codes whose meaning is unambiguous whatever the HTTP status. */
const CODE_KINDS: Readonly<Record<string, ProviderErrorKind>> = {
  unauthorized_request: "auth",
  unauthorized: "auth",
  invalid_token: "auth",
  invalid_client: "auth",
  no_capacity: "capacity",
  no_such_ask: "capacity",
  insufficient_capacity: "capacity",
  rate_limited: "rate_limit",
  too_many_requests: "rate_limit",
  server_error: "transient",
  service_unavailable: "transient",
};

const CAPACITY_TEXT =
  /\bno[ _]capacity\b|no longer (?:any instances )?available|no instances available|\b(?:instance|offer|ask|gpu|machine|host|type)s?\b.{0,80}?\b(?:is|are) (?:no longer |not )available|insufficient[ _]capacity|out of capacity|no_such_ask/i;

export interface FailureFacts {
  readonly status?: number;
  readonly code?: string;
  readonly message?: string;
}

/**
 * 429 → rate_limit; 401 → auth; 422 → invalid (the body breaks the published contract); a provider code that says it (no_capacity, unauthorized_request …);
 * capacity wording (RunPod "no longer any instances available", Vast "not available") → capacity;
 * 403 → auth; 5xx and 408 → transient; any other 4xx → fatal.
 */
export function classifyFailure(facts: FailureFacts): ProviderErrorKind {
  const { status, code, message } = facts;
  if (status === 429) return "rate_limit";
  if (status === 401) return "auth";
  if (status === 422) return "invalid";
  const byCode = code ? CODE_KINDS[code.toLowerCase()] : undefined;
  if (byCode) return byCode;
  if (message && CAPACITY_TEXT.test(message)) return "capacity";
  if (code && /capacity/i.test(code)) return "capacity";
  if (status === 403 && !code) return "auth";
  if (status === undefined) return "transient";
  if (status >= 500 || status === 408 || status === 425) return "transient";
  return "fatal";
}

// ── redaction and body reading ────────────────────────────────────────────────────────────────────────────

/** `api_key=…`, `"HF_TOKEN":"…"`, `client_secret: …`: a credential-named parameter (with any `X_` prefix) and its value. */
const SECRET_PARAMS =
  /\b((?:[A-Za-z0-9]+[_-])*(?:api[_-]?key|apikey|access_token|refresh_token|client_secret|client_id|password|token|secret))(["']?\s*[=:]\s*["']?)([^\s&"',;}]+)/gi;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+/gi;
/** A PEM private key block of any kind, also when an echo cut it off before its END line. */
const PRIVATE_KEY_PEM = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g;

/**
 * Remove credentials: the given secret values, `api_key=…`-style pairs, bearer tokens, `--api-key X`, PEM
 * private keys.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join("[redacted]");
  }
  return out
    .replace(PRIVATE_KEY_PEM, "[redacted private key]")
    .replace(SECRET_PARAMS, "$1$2[redacted]")
    .replace(BEARER, "$1 [redacted]")
    .replace(/(--api-key)(\s+|=)(\S+)/g, "$1$2[redacted]");
}

/**
 * A short, printable, credential-free excerpt of a response body. Redacted before it is cut (a long secret —
 * a TLS key — cut in half would no longer match) and again after (patterns the cut may have completed).
 */
export function excerpt(text: string, secrets: readonly string[] = [], max = 200): string {
  const printable = redact(text, secrets)
    .replace(/[^\x20-\x7E]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  const cut = printable.length > max ? `${printable.slice(0, max)}…` : printable;
  return redact(cut, secrets) || "(empty body)";
}

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A string field, or a number rendered as one (ids come as either). */
export function str(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return undefined;
}

/** A finite number, also from a numeric string (prices often arrive as "0.74"). */
export function num(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)))
    return Number(value);
  return undefined;
}

/** The error code and message a provider put in a JSON error body, across the shapes seen. */
export function errorFields(json: unknown): { code?: string; message?: string } {
  if (!isRecord(json)) return {};
  const first = Array.isArray(json.errors) && isRecord(json.errors[0]) ? json.errors[0] : undefined;
  const code =
    str(json.code) ??
    (typeof json.error === "string" && /^[a-z_]+$/.test(json.error) ? json.error : undefined);
  // RFC 9457 problem documents (RunPod REST v2) list validation failures in `errors` beside `detail`.
  const problems = Array.isArray(json.errors) ? json.errors.filter((e) => typeof e === "string") : [];
  const detail = str(json.detail);
  const message =
    str(json.message) ??
    str(json.msg) ??
    (detail !== undefined && problems.length > 0 ? `${detail} (${problems.join("; ")})` : detail) ??
    str(first?.message) ??
    str(json.error_description) ??
    (typeof json.error === "string" ? json.error : undefined) ??
    str(json.title);
  return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
}

/** What a value looks like, without its values: `object {id, env, status}`, `array(3)`, `string`. */
export function shapeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `array(${value.length})`;
  if (isRecord(value)) {
    const keys = Object.keys(value).slice(0, 8);
    const more = Object.keys(value).length > keys.length ? ", …" : "";
    return `object {${keys.map((k) => k.replace(/[^\w.-]/g, "").slice(0, 30)).join(", ")}${more}}`;
  }
  return typeof value;
}
