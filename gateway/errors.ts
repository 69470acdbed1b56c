/** OpenAI-shaped errors: `{ error: { message, type, param, code } }` with the right status and headers. */

export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "insufficient_quota"
  | "server_error"
  | "upstream_error";

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly type: OpenAiErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "GatewayError";
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code = "invalid_request") =>
  new GatewayError(400, "invalid_request_error", message, code, param);

export const unauthorized = (message: string) =>
  new GatewayError(401, "authentication_error", message, "invalid_api_key");

export const forbidden = (message: string, code = "model_not_allowed") =>
  new GatewayError(403, "permission_error", message, code, "model");

export const modelNotFound = (model: string) =>
  new GatewayError(
    404,
    "not_found_error",
    `The model "${model}" does not exist on this gateway`,
    "model_not_found",
    "model",
  );

export const noCapacity = (message: string, retryAfterSeconds: number) =>
  new GatewayError(503, "server_error", message, "no_capacity", null, {
    "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))),
  });

export const upstreamFailed = (message: string, status: 502 | 504 = 502) =>
  new GatewayError(status, "upstream_error", message, status === 504 ? "upstream_timeout" : "upstream_error");
