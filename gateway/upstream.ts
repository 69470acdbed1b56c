/**
 * Calls to backends over undici (keep-alive connection pools per origin). Credentials are added here and only
 * here: worker tokens from the route, provider keys from the gateway's environment — never from or to clients.
 */
import { Agent, errors, request } from "undici";
import type { Backend } from "./routing";

export type UpstreamErrorKind = "connect" | "timeout" | "aborted";

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
  readonly body: AsyncIterable<Uint8Array> & { dump(): Promise<void>; text(): Promise<string> };
}

export interface UpstreamOptions {
  /** Provider API keys by environment variable name (e.g. RUNPOD_API_KEY), for `provider-key` routes. */
  readonly providerKeys?: Readonly<Record<string, string | undefined>>;
  /** Longest wait for response headers and between body chunks, ms. */
  readonly timeoutMs?: number;
  /** Connection limit per backend origin. @default 256 */
  readonly connectionsPerOrigin?: number;
}

export class UpstreamClient {
  private readonly agent: Agent;

  constructor(private readonly options: UpstreamOptions = {}) {
    const timeout = options.timeoutMs ?? 300_000;
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 256,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: 10_000 },
    });
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

  async post(
    backend: Backend,
    path: string,
    body: string,
    extra: { requestId: string; signal: AbortSignal; traceparent?: string },
  ): Promise<UpstreamResponse> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "x-request-id": extra.requestId,
    };
    const auth = this.authHeader(backend);
    if (auth) headers.authorization = auth;
    if (extra.traceparent) headers.traceparent = extra.traceparent;
    try {
      const response = await request(`${backend.baseUrl}${path}`, {
        method: "POST",
        headers,
        body,
        signal: extra.signal,
        dispatcher: this.agent,
      });
      const contentType = String(response.headers["content-type"] ?? "");
      return { status: response.statusCode, contentType, body: response.body };
    } catch (error) {
      throw classify(error, backend);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
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
