/**
 * Calls to backends over undici (keep-alive connection pools per origin). Credentials are added here and only
 * here: worker tokens from the route, provider keys from the gateway's environment — never from or to clients.
 *
 * A backend whose route pins a certificate gets its own Agent whose TLS options trust that certificate and
 * nothing else (it is the only CA, and the peer's fingerprint must match). Another certificate fails the
 * handshake — a connect error, so failover and 502 work as for an unreachable backend — before a byte of the
 * request (or the worker token) is sent. A pinned backend never uses the shared pools.
 */
import { X509Certificate } from "node:crypto";
import type { Readable } from "node:stream";
import { Agent, type Dispatcher, errors, Pool } from "undici";
import { pinnedTlsOptions, sameFingerprint } from "../core/x509";
import type { AbortLike } from "./abort";
import { upstreamErrorBody } from "./errors";
import type { Backend } from "./routing";

export type UpstreamErrorKind = "connect" | "timeout" | "aborted" | "too_large";

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

export interface UpstreamResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: Readable & { dump(): Promise<void>; text(): Promise<string> };
}

/** A whole answer, read into memory. */
export interface BufferedResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

/**
 * A backend's error answer (status 300 or more) as it may be relayed to a client: the same status, an OpenAI error
 * body with the backend's message scrubbed and bounded (`upstreamErrorBody`), never the backend's own bytes —
 * those carry paths, addresses and tokens of the worker.
 */
export function upstreamErrorAnswer(response: BufferedResponse): BufferedResponse {
  const body = upstreamErrorBody(response.status, response.contentType, response.body);
  return {
    status: response.status,
    contentType: "application/json",
    body: Buffer.from(JSON.stringify(body)),
  };
}

export interface UpstreamOptions {
  /** Provider API keys by environment variable name (e.g. RUNPOD_API_KEY), for `provider-key` routes. */
  readonly providerKeys?: Readonly<Record<string, string | undefined>>;
  /** Longest wait for response headers and between body chunks, ms. */
  readonly timeoutMs?: number;
  /**
   * Connection limit per backend origin. Each streaming answer holds one connection for its whole length, so a
   * limit is a cap on concurrent streams per backend (requests past it wait in undici without headers); a
   * worker's own `capacity` and the controller's scaling are what bound the load. @default no limit
   */
  readonly connectionsPerOrigin?: number;
  /** A pinned backend's Agent, or an origin's pool, unused this long is closed (its route is likely gone). @default 600000 */
  readonly pinnedIdleMs?: number;
  readonly now?: () => number;
}

interface PinnedAgent {
  readonly agent: Agent;
  readonly fingerprint256: string;
  lastUsedMs: number;
}

export class UpstreamClient {
  /** Agents of backends with a pinned certificate, by backend (worker) id. */
  private readonly pinned = new Map<string, PinnedAgent>();
  private readonly now: () => number;
  private readonly targets = new Map<string, { origin: string; prefix: string }>();

  /**
   * A connection pool per unpinned origin, used directly: an Agent would look the origin's pool up and pass each
   * request through one more dispatcher layer. Pools unused for `pinnedIdleMs` are closed (workers come and go).
   */
  private readonly pools = new Map<string, { pool: Pool; lastUsedMs: number }>();

  constructor(private readonly options: UpstreamOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  private poolFor(origin: string): Pool {
    const now = this.now();
    let entry = this.pools.get(origin);
    if (!entry) {
      this.sweep(now);
      entry = { pool: new Pool(origin, this.agentOptions()), lastUsedMs: now };
      this.pools.set(origin, entry);
    }
    entry.lastUsedMs = now;
    return entry.pool;
  }

  private agentOptions(): Agent.Options {
    const timeout = this.options.timeoutMs ?? 300_000;
    return {
      connections: this.options.connectionsPerOrigin ?? null,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: 10_000 },
    };
  }

  /** The dispatcher for a backend: its origin's shared pool, or the backend's own Agent that trusts only its pinned certificate. */
  private dispatcherFor(backend: Backend, origin: string): Dispatcher {
    const tls = backend.tls;
    if (!tls) return this.poolFor(origin);
    if (!/^https:\/\//i.test(backend.baseUrl))
      throw new UpstreamError("connect", `backend ${backend.id} pins a certificate but is not https`);
    const now = this.now();
    const existing = this.pinned.get(backend.id);
    if (existing && sameFingerprint(existing.fingerprint256, tls.fingerprint256)) {
      existing.lastUsedMs = now;
      return existing.agent;
    }
    if (existing) this.forget(backend.id); // the worker's certificate changed: nothing of the old one is kept
    let actual: string | undefined;
    try {
      actual = new X509Certificate(tls.certPem).fingerprint256;
    } catch {
      actual = undefined;
    }
    if (!sameFingerprint(actual, tls.fingerprint256))
      throw new UpstreamError(
        "connect",
        `backend ${backend.id}: the pinned certificate does not match its fingerprint`,
      );
    this.sweep(now);
    const base = this.agentOptions();
    const agent = new Agent({ ...base, connect: { ...base.connect, ...pinnedTlsOptions(tls) } });
    this.pinned.set(backend.id, { agent, fingerprint256: tls.fingerprint256, lastUsedMs: now });
    return agent;
  }

  /**
   * Close pinned Agents and origin pools nobody used for a while (a route that vanished without the registry
   * noticing, a worker that is gone). Runs when a new one is opened, so their number stays bounded.
   */
  private sweep(now: number): void {
    const idle = this.options.pinnedIdleMs ?? 600_000;
    for (const [id, entry] of this.pinned) if (now - entry.lastUsedMs > idle) this.forget(id);
    for (const [origin, entry] of this.pools)
      if (now - entry.lastUsedMs > idle) {
        this.pools.delete(origin);
        entry.pool.close().catch(() => undefined);
      }
  }

  /**
   * A backend's route is gone: close its pinned Agent. In-flight requests finish (close is graceful); a later
   * request to the same backend would build a new one.
   */
  forget(backendId: string): void {
    const entry = this.pinned.get(backendId);
    if (!entry) return;
    this.pinned.delete(backendId);
    entry.agent.close().catch(() => undefined);
  }

  /** Origins with a pool open (for tests and diagnostics). */
  openOrigins(): string[] {
    return [...this.pools.keys()];
  }

  /** Ids of the backends with a pinned Agent open (for tests and diagnostics). */
  pinnedBackends(): string[] {
    return [...this.pinned.keys()];
  }

  /** Origin and path prefix of a base URL, parsed once (undici's `request(url)` parses the URL every time). */
  private target(baseUrl: string): { origin: string; prefix: string } {
    let target = this.targets.get(baseUrl);
    if (!target) {
      const url = new URL(baseUrl);
      target = { origin: url.origin, prefix: `${url.pathname.replace(/\/+$/, "")}${url.search}` };
      if (this.targets.size >= 1_000) this.targets.clear(); // bounded: routes come and go
      this.targets.set(baseUrl, target);
    }
    return target;
  }

  private authHeader(backend: Backend): string | undefined {
    switch (backend.auth.kind) {
      case "bearer":
        return `Bearer ${backend.auth.token}`;
      case "provider-key": {
        const key = this.options.providerKeys?.[backend.auth.envVar];
        return key ? `Bearer ${key}` : undefined;
      }
      default:
        return undefined;
    }
  }

  private headers(backend: Backend, extra: UpstreamCallOptions): Record<string, string> {
    const headers: Record<string, string> = {
      "content-type": extra.contentType ?? "application/json",
      accept: "application/json, text/event-stream",
      "x-request-id": extra.requestId,
    };
    const auth = this.authHeader(backend);
    if (auth) headers.authorization = auth;
    if (extra.traceparent) headers.traceparent = extra.traceparent;
    return headers;
  }

  /** POST, answering once the headers are in: the body is a stream (SSE answers, large ones). */
  async post(
    backend: Backend,
    path: string,
    body: string | Buffer,
    extra: UpstreamCallOptions,
  ): Promise<UpstreamResponse> {
    const headers = this.headers(backend, extra);
    try {
      const { origin, prefix } = this.target(backend.baseUrl);
      const response = await this.dispatcherFor(backend, origin).request({
        origin,
        path: `${prefix}${path}`,
        method: "POST",
        headers,
        body,
        signal: extra.signal,
      });
      const contentType = String(response.headers["content-type"] ?? "");
      return { status: response.statusCode, contentType, body: response.body };
    } catch (error) {
      throw classify(error, backend);
    }
  }

  /**
   * POST and read the whole answer (up to `maxBytes`; more fails with kind "too_large"). Built on undici's
   * `dispatch` with a handler that collects the chunks: `request()` would wrap each answer in a Readable whose
   * events and ticks cost several microseconds per request, the largest part of a small answer's relay.
   */
  postBuffered(
    backend: Backend,
    path: string,
    body: string | Buffer,
    extra: UpstreamCallOptions,
    maxBytes: number,
  ): Promise<BufferedResponse> {
    return new Promise((resolve, reject) => {
      const signal = extra.signal;
      let abortDispatch: ((reason: Error) => void) | undefined;
      const onAbort = () => abortDispatch?.(new errors.RequestAbortedError());
      let status = 0;
      let contentType = "";
      let chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const settle = (error: unknown, response?: BufferedResponse) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        if (response) resolve(response);
        else reject(classify(error, backend));
      };
      try {
        const { origin, prefix } = this.target(backend.baseUrl);
        this.dispatcherFor(backend, origin).dispatch(
          { origin, path: `${prefix}${path}`, method: "POST", headers: this.headers(backend, extra), body },
          {
            onConnect(abort: (reason: Error) => void) {
              abortDispatch = abort;
              if (signal.aborted) abort(new errors.RequestAbortedError());
            },
            onHeaders(statusCode: number, rawHeaders: Buffer[]) {
              status = statusCode;
              contentType = headerValue(rawHeaders, "content-type");
              return true;
            },
            onData(chunk: Buffer) {
              size += chunk.length;
              if (size > maxBytes) {
                chunks = [];
                abortDispatch?.(
                  new UpstreamError(
                    "too_large",
                    `backend ${backend.id} answered more than ${maxBytes} bytes`,
                  ),
                );
                return false;
              }
              chunks.push(chunk);
              return true;
            },
            onComplete() {
              const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
              settle(undefined, { status, contentType, body: whole });
            },
            onError(error: Error) {
              settle(error);
            },
          },
        );
      } catch (error) {
        settle(error);
        return;
      }
      if (!settled) signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    const pinned = [...this.pinned.values()].map((p) => p.agent.close().catch(() => undefined));
    this.pinned.clear();
    const pools = [...this.pools.values()].map((p) => p.pool.close().catch(() => undefined));
    this.pools.clear();
    await Promise.all([...pinned, ...pools]);
  }
}

export interface UpstreamCallOptions {
  /** Sent as `x-request-id`, so the worker's logs name the request. */
  readonly requestId: string;
  /** Aborts the call (the client went away). */
  readonly signal: AbortLike;
  readonly traceparent?: string;
  /** The body's Content-Type. @default "application/json" (a multipart upload passes its own, boundary included) */
  readonly contentType?: string;
}

/** A header's value from undici's raw headers (name, value, name, value …), "" when absent. */
function headerValue(rawHeaders: readonly Buffer[], lowerCaseName: string): string {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === lowerCaseName.length && name.toString("latin1").toLowerCase() === lowerCaseName)
      return rawHeaders[i + 1]!.toString("latin1");
  }
  return "";
}

/** Turn an undici failure into a kind the caller can act on; messages never carry headers or credentials. */
export function classify(error: unknown, backend: Pick<Backend, "id">): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (error instanceof errors.RequestAbortedError || (error as Error)?.name === "AbortError") {
    return new UpstreamError("aborted", `request to backend ${backend.id} was aborted`);
  }
  if (
    error instanceof errors.HeadersTimeoutError ||
    error instanceof errors.BodyTimeoutError ||
    error instanceof errors.ConnectTimeoutError
  ) {
    return new UpstreamError("timeout", `backend ${backend.id} did not answer in time`);
  }
  const code = (error as { code?: string })?.code ?? "error";
  return new UpstreamError("connect", `backend ${backend.id} is unreachable (${code})`);
}
