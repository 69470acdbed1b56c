/**
 * Shared HTTP for the provider adapters: JSON requests over undici with a timeout, error classification,
 * and retries with exponential backoff + full jitter that honour Retry-After within a bounded total.
 *
 * Nothing that leaves this module (error messages, retry events) contains a credential: configured secrets
 * are replaced by "[redacted]", as are `api_key=`-style parameters and bearer tokens echoed by a provider.
 */
import { type Dispatcher, request } from "undici";
import type { ConfigurableProviderId } from "../../core/catalog";
import {
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  errorFields,
  excerpt,
  isRecord,
  nextRetryDelayMs,
  type ProviderErrorKind,
  parseRateLimitReset,
  parseRetryAfter,
  type RetryPolicy,
  redact,
  shapeOf,
  str,
} from "../../core/provider-http";
import { ProviderError } from "./types";

// The pure rules live in core/ (shared with the RunPod dynamic providers); adapters import them from here too.
export {
  backoffMs,
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  errorFields,
  excerpt,
  isRecord,
  num,
  parseRetryAfter,
  type RetryPolicy,
  redact,
  shapeOf,
  str,
} from "../../core/provider-http";

/** Options every adapter accepts for its HTTP client; tests inject time, randomness and sleep. */
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
        const delayMs = nextRetryDelayMs({
          failedAttempt: attempt,
          elapsedMs: this.now() - started,
          ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
          policy: this.policy,
          random: this.random,
        });
        if (delayMs === undefined) throw err.withAttempts(attempt);
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
    // Retry-After, else the reset of an exhausted RFC 9331 RateLimit window (RunPod REST v2 sends both)
    const retryAfterMs =
      status === 429 || status === 503
        ? (parseRetryAfter(header(resHeaders, "retry-after"), this.now()) ??
          (status === 429 ? parseRateLimitReset(header(resHeaders, "ratelimit")) : undefined))
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
