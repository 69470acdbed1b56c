/**
 * What every RunPod REST v2 contract fake shares, from runpod/docs `api-reference-v2/openapi.json`:
 * - Bearer auth only (401 problem otherwise; `bearerAuth` security scheme);
 * - errors as RFC 9457 `application/problem+json` `{title, status, detail, errors?}` (`ErrorResponse`);
 * - request bodies validated against the published request schema (`core/contracts/runpod.ts`): unknown fields and
 *   wrong types answer 422 with one `errors` entry per violation (`unevaluatedProperties: false`);
 * - `RateLimit` / `RateLimit-Policy` headers (RFC 9331) on every answer, and injectable 429s with Retry-After.
 */
import type { z } from "zod";
import { ErrorResponse } from "../../core/contracts/runpod";
import { FakeApiServer, type FaultMatch, type RecordedRequest, type Reply } from "./fake-api-server";

/** The spec's example quotas: 60 a minute, 3000 an hour, 50000 a day. */
const WINDOWS = [
  { name: "minute", quota: 60, seconds: 60 },
  { name: "hour", quota: 3000, seconds: 3600 },
  { name: "day", quota: 50_000, seconds: 86_400 },
] as const;

export function problem(
  status: number,
  title: string,
  detail: string,
  extra: { errors?: string[] } = {},
): Reply {
  return {
    status,
    json: { title, status, detail, ...extra },
    headers: { "content-type": "application/problem+json" },
  };
}

/** 422 "Request validation failed." with one string per violation, as RunPod answers a schema failure. */
export function invalid(errors: string[]): Reply {
  return problem(422, "Unprocessable Entity", "Request validation failed.", { errors });
}

export function notFound(what: string): Reply {
  return problem(404, "Not Found", `The requested ${what} does not exist.`);
}

export function notAllowed(allow: string): Reply {
  const reply = problem(405, "Method Not Allowed", "The requested method is not allowed for this path.");
  return { ...reply, headers: { ...reply.headers, allow } };
}

/**
 * The request body parsed by the published schema, or the 400/422 problem RunPod answers: 400 when the body is
 * not JSON, 422 listing each violation (`$.gpu.count: …`, `$: additional properties 'publicIp' not allowed`).
 */
export function parseBody<S extends z.ZodType>(
  req: RecordedRequest,
  schema: S,
): { body: z.output<S> } | { reply: Reply } {
  if (req.rawBody.trim() === "" || typeof req.body === "string")
    return { reply: problem(400, "Bad Request", "request body must be JSON") };
  const result = schema.safeParse(req.body);
  if (result.success) return { body: result.data };
  const errors = result.error.issues.flatMap((issue) => {
    const at = ["$", ...issue.path.map(String)].join(".");
    if (issue.code === "unrecognized_keys")
      return issue.keys.map((k) => `${at}: additional properties '${k}' not allowed`);
    return [`${at}: ${issue.message}`];
  });
  return { reply: problem(422, "Unprocessable Entity", "Request validation failed.", { errors }) };
}

/** Base of the RunPod REST v2 fakes: auth, rate-limit headers, and `ErrorResponse` as the schema of errors. */
export abstract class RunpodApiFake extends FakeApiServer {
  constructor(
    readonly apiKey: string,
    now?: () => number,
  ) {
    super(now);
  }

  /**
   * 429 problem+json for the next `times` matching requests, with `Retry-After` (seconds) and a RateLimit header
   * whose minute window is exhausted for as long; `withRetryAfter: false` leaves Retry-After out.
   */
  rateLimitNext(
    times = 1,
    retryAfterSeconds = 1,
    match: FaultMatch = {},
    { withRetryAfter = true }: { withRetryAfter?: boolean } = {},
  ): this {
    return this.inject(
      {
        type: "status",
        status: 429,
        json: {
          title: "Too Many Requests",
          status: 429,
          detail: "rate limit exceeded for the minute window",
        },
        headers: {
          "content-type": "application/problem+json",
          ...(withRetryAfter ? { "retry-after": String(retryAfterSeconds) } : {}),
          ratelimit: `"minute";r=0;t=${retryAfterSeconds}, "hour";r=2800;t=1812, "day";r=49500;t=45012`,
          "ratelimit-policy": policyHeader(),
        },
      },
      { times, ...match },
    );
  }

  /** Answer an authenticated request (auth is checked before). */
  protected abstract route(req: RecordedRequest): Reply | Promise<Reply>;

  /** The published schema of a successful (2xx) reply to this request. */
  protected abstract successSchema(req: RecordedRequest, reply: Reply): z.ZodType | undefined;

  protected async handle(req: RecordedRequest): Promise<Reply> {
    const auth = req.headers.authorization;
    if (auth === undefined || !auth.startsWith("Bearer "))
      return problem(401, "Unauthorized", "missing bearer token");
    if (auth !== `Bearer ${this.apiKey}`) return problem(401, "Unauthorized", "invalid bearer token");
    const reply = await this.route(req);
    return { ...reply, headers: { ...this.rateLimitHeaders(), ...reply.headers } };
  }

  protected override responseSchema(req: RecordedRequest, reply: Reply): z.ZodType | undefined {
    if (reply.status >= 400) return reply.json === undefined ? undefined : ErrorResponse;
    if (reply.status === 204) return undefined;
    return this.successSchema(req, reply);
  }

  /** RateLimit headers counted from the requests this fake has seen (quotas reported, never enforced). */
  private rateLimitHeaders(): Record<string, string> {
    const nowMs = this.now();
    const state = WINDOWS.map((w) => {
      const since = nowMs - w.seconds * 1000;
      const inWindow = this.requests.filter((r) => r.atMs > since);
      const oldest = inWindow[0]?.atMs ?? nowMs;
      const reset = Math.max(0, Math.ceil((oldest + w.seconds * 1000 - nowMs) / 1000));
      return `"${w.name}";r=${Math.max(0, w.quota - inWindow.length)};t=${reset}`;
    });
    return { ratelimit: state.join(", "), "ratelimit-policy": policyHeader() };
  }
}

function policyHeader(): string {
  return WINDOWS.map((w) => `"${w.name}";q=${w.quota};w=${w.seconds}`).join(", ");
}
