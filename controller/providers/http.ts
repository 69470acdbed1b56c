/**
 * Shared HTTP for the provider adapters: JSON requests over undici with a timeout, error classification,
 * and retries with exponential backoff + full jitter that honour Retry-After within a bounded total.
 *
 * Nothing that leaves this module (error messages, retry events) contains a credential: configured secrets
 * are replaced by "[redacted]", as are `api_key=`-style parameters and bearer tokens echoed by a provider.
 */
import { type Dispatcher, request } from "undici";
import type { ConfigurableProviderId } from "../../core/catalog";
import { ProviderError, type ProviderErrorKind } from "./types";

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

export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export interface RetryEvent {
  readonly provider: ConfigurableProviderId;
  readonly operation: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly kind: ProviderErrorKind;
  /** The failure, credential-free. */
  readonly message: string;
}

/** Options every adapter accepts for its HTTP client; tests inject time, randomness and sleep. */
export interface HttpRuntimeOptions {
  /** Per-request timeout (headers and body). @default 15 000 */
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  /** Uniform in [0, 1); full jitter draws the wait from [0, backoff). */
  readonly random?: () => number;
  /** undici dispatcher (Agent/Pool); the global one when absent. */
  readonly dispatcher?: Dispatcher;
  /** Called before each retry wait (for logs and metrics). */
  readonly onRetry?: (event: RetryEvent) => void;
  readonly maxResponseBytes?: number;
}

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
 * 429 → rate_limit; 401 → auth; a provider code that says it (no_capacity, unauthorized_request …);
 * capacity wording (RunPod "no longer any instances available", Vast "not available") → capacity;
 * 403 → auth; 5xx and 408 → transient; any other 4xx → fatal.
 */
export function classifyFailure(facts: FailureFacts): ProviderErrorKind {
  const { status, code, message } = facts;
  if (status === 429) return "rate_limit";
  if (status === 401) return "auth";
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

const SECRET_PARAMS =
  /\b(api[_-]?key|apikey|access_token|refresh_token|client_secret|client_id|password|token|secret)(["']?\s*[=:]\s*["']?)([^\s&"',;}]+)/gi;
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
  const message =
    str(json.message) ??
    str(json.msg) ??
    str(json.detail) ??
    str(first?.message) ??
    str(json.error_description) ??
    (typeof json.error === "string" ? json.error : undefined) ??
    str(json.title);
  return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
}

async function readBody(body: Dispatcher.ResponseData["body"], maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > maxBytes) {
      body.destroy();
      throw Object.assign(new Error(`response body larger than ${maxBytes} bytes`), {
        code: "EBODYTOOLARGE",
      });
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

// ── the client ────────────────────────────────────────────────────────────────────────────────────────────

/** Supplies auth headers; `invalidate` drops a cached token so the next request authenticates afresh. */
export interface AuthSource {
  headers(): Promise<Record<string, string>>;
  invalidate?(): void;
}

export interface ProviderHttpOptions extends HttpRuntimeOptions {
  readonly provider: ConfigurableProviderId;
  /** API base without trailing slash, e.g. https://console.vast.ai/api/v0 */
  readonly baseUrl: string;
  readonly auth?: AuthSource;
  /** Current secret values to scrub from anything this client reports (keys, tokens). */
  readonly secrets?: () => readonly string[];
}

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface HttpRequest {
  readonly operation: string;
  readonly method: HttpMethod;
  /** Path below the base URL, starting with "/". */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  /** JSON request body. */
  readonly json?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** Send the auth headers. @default true */
  readonly auth?: boolean;
  /** "json": a 2xx must carry parseable JSON; "text": any body; "none": the body is ignored. @default "json" */
  readonly expect?: "json" | "text" | "none";
  /** Non-2xx statuses the caller handles itself (e.g. 404 on describe). */
  readonly okStatuses?: readonly number[];
  /** Extra secret values for this request (worker token, env), scrubbed from anything reported. */
  readonly secrets?: readonly string[];
  /** Retry rate_limit/transient failures. Off for non-idempotent calls that the caller guards itself. @default true */
  readonly retry?: boolean;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** Parsed JSON, or undefined when the body is empty or not JSON. */
  readonly json: unknown;
}

export class ProviderHttp {
  readonly provider: ConfigurableProviderId;
  readonly policy: RetryPolicy;
  readonly now: () => number;
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly dispatcher?: Dispatcher;
  private readonly onRetry?: (event: RetryEvent) => void;
  private readonly maxResponseBytes: number;
  private readonly auth?: AuthSource;
  private readonly configuredSecrets: () => readonly string[];
  /** Secrets seen in requests (worker tokens, env values), scrubbed from every later report too. */
  private readonly remembered = new Set<string>();

  constructor(options: ProviderHttpOptions) {
    this.provider = options.provider;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    if (options.dispatcher) this.dispatcher = options.dispatcher;
    if (options.onRetry) this.onRetry = options.onRetry;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (options.auth) this.auth = options.auth;
    this.configuredSecrets = options.secrets ?? (() => []);
  }

  /**
   * Remember secret values (a worker's token and env) so that nothing this client reports can contain them,
   * whichever request the provider echoes them in. Bounded: the oldest are forgotten first.
   */
  rememberSecrets(values: readonly string[]): void {
    for (const v of values) {
      if (v.length < 4) continue;
      this.remembered.delete(v);
      this.remembered.add(v);
    }
    while (this.remembered.size > MAX_REMEMBERED_SECRETS) {
      const oldest = this.remembered.values().next().value;
      if (oldest === undefined) break;
      this.remembered.delete(oldest);
    }
  }

  private secrets(): string[] {
    return [...this.configuredSecrets(), ...this.remembered];
  }

  /** Send with retries (unless `retry: false`). */
  send(req: HttpRequest): Promise<HttpResponse> {
    return req.retry === false ? this.once(req) : this.retrying(req.operation, () => this.once(req));
  }

  /** JSON body of a successful response, or a transient error when there is none. */
  async json(req: HttpRequest): Promise<unknown> {
    return (await this.send({ ...req, expect: "json" })).json;
  }

  /**
   * Run `fn` until it succeeds, retrying ProviderErrors of kind rate_limit/transient with full-jitter backoff,
   * never waiting less than a Retry-After, and giving up when attempts or the total time budget run out.
   */
  async retrying<T>(operation: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    const started = this.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        if (!(err instanceof ProviderError) || !err.retryable) throw err;
        if (attempt >= this.policy.maxAttempts) throw err.withAttempts(attempt);
        const delayMs = Math.max(err.retryAfterMs ?? 0, backoffMs(attempt, this.policy, this.random));
        if (this.now() - started + delayMs > this.policy.maxTotalMs) throw err.withAttempts(attempt);
        this.onRetry?.({
          provider: this.provider,
          operation,
          attempt,
          delayMs,
          kind: err.kind,
          message: err.message,
        });
        await this.sleep(delayMs);
      }
    }
  }

  /** One request; a 401 with a refreshable auth source re-authenticates once. */
  async once(req: HttpRequest): Promise<HttpResponse> {
    try {
      return await this.attempt(req);
    } catch (err) {
      const canReauth = req.auth !== false && this.auth?.invalidate !== undefined;
      // A 401 from the API (not from the token endpoint itself) may be an expired token: authenticate again once.
      if (
        err instanceof ProviderError &&
        err.status === 401 &&
        err.operation === req.operation &&
        canReauth
      ) {
        this.auth?.invalidate?.();
        return this.attempt(req);
      }
      throw err;
    }
  }

  /** Scrub every configured secret (plus `extra`) and credential-shaped text from a string. */
  redact(text: string, extra: readonly string[] = []): string {
    return redact(text, [...this.secrets(), ...extra]);
  }

  error(
    operation: string,
    kind: ProviderErrorKind,
    detail: string,
    more: { status?: number; code?: string; retryAfterMs?: number; secrets?: readonly string[] } = {},
  ): ProviderError {
    return new ProviderError({
      kind,
      provider: this.provider,
      operation,
      detail: this.redact(detail, more.secrets),
      ...(more.status !== undefined ? { status: more.status } : {}),
      ...(more.code !== undefined ? { code: more.code } : {}),
      ...(more.retryAfterMs !== undefined ? { retryAfterMs: more.retryAfterMs } : {}),
    });
  }

  /** The error for an answer that is not what the API promises (garbage, missing fields): transient. */
  unexpected(operation: string, what: string, body?: unknown): ProviderError {
    const seen = body === undefined ? "" : `: got ${shapeOf(body)}`;
    return this.error(operation, "transient", `unexpected response, ${what}${seen}`);
  }

  private url(path: string, query?: HttpRequest["query"]): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  private async attempt(req: HttpRequest): Promise<HttpResponse> {
    const secrets = [...(req.secrets ?? [])];
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": "ai-orchestrator-controller",
      ...(req.auth !== false && this.auth ? await this.auth.headers() : {}),
      ...req.headers,
    };
    let body: string | undefined;
    if (req.json !== undefined) {
      body = JSON.stringify(req.json);
      headers["content-type"] = "application/json";
    }
    const signal = AbortSignal.timeout(this.timeoutMs);
    let status: number;
    let resHeaders: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const res = await request(this.url(req.path, req.query), {
        method: req.method,
        headers,
        body,
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
      status = res.statusCode;
      resHeaders = res.headers;
      text = await readBody(res.body, this.maxResponseBytes);
    } catch (err) {
      throw this.networkError(req.operation, err, signal.aborted, secrets);
    }

    let json: unknown;
    let parsed = false;
    if (text.trim() !== "") {
      try {
        json = JSON.parse(text);
        parsed = true;
      } catch {
        // not JSON: plain-text errors (Vast.ai 429), text ids (Verda create) and garbage land here
      }
    }
    const ok = (status >= 200 && status < 300) || (req.okStatuses ?? []).includes(status);
    if (ok) {
      const expect = req.expect ?? "json";
      if (expect === "json" && !parsed && status >= 200 && status < 300) {
        throw this.error(
          req.operation,
          "transient",
          `HTTP ${status} with a body that is not JSON: ${excerpt(text, [...this.secrets(), ...secrets], 120)}`,
          { status, secrets },
        );
      }
      return { status, headers: resHeaders, text, json };
    }
    const fields = errorFields(json);
    // A JSON error without a message field is described by its shape only: values may hold secrets (env).
    const message = fields.message ?? (parsed ? shapeOf(json) : text);
    const kind = classifyFailure({ status, ...fields, message });
    const retryAfterMs =
      status === 429 || status === 503
        ? parseRetryAfter(header(resHeaders, "retry-after"), this.now())
        : undefined;
    const detail = `${fields.code ? `${fields.code}: ` : ""}${excerpt(message, [...this.secrets(), ...secrets])}`;
    throw this.error(req.operation, kind, detail, {
      status,
      ...(fields.code ? { code: fields.code } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      secrets,
    });
  }

  private networkError(
    operation: string,
    err: unknown,
    timedOut: boolean,
    secrets: readonly string[],
  ): ProviderError {
    if (err instanceof ProviderError) return err;
    if (timedOut) return this.error(operation, "transient", `no answer within ${this.timeoutMs} ms`);
    const code = isRecord(err) ? str(err.code) : undefined;
    const message = err instanceof Error ? err.message : String(err);
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT")
      return this.error(operation, "transient", `no answer within ${this.timeoutMs} ms`);
    if (!code && err instanceof TypeError)
      return this.error(operation, "fatal", `request could not be built: ${message}`, { secrets });
    return this.error(operation, "transient", `network error${code ? ` ${code}` : ""}: ${message}`, {
      secrets,
      ...(code ? { code } : {}),
    });
  }
}

const MAX_REMEMBERED_SECRETS = 4096;

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

/** The base URL for a provider: the configured apiBase, else the catalog's default. */
export function apiBaseOf(
  configured: string | undefined,
  fallback: string | undefined,
  provider: string,
): string {
  const base = configured ?? fallback;
  if (!base) throw new Error(`${provider}: no apiBase configured and the catalog has no default`);
  return base.replace(/\/+$/, "");
}
