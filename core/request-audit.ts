/**
 * One request's audit line, as the gateway writes it (stdout, and the recent-requests stream) and readers parse it
 * back (MCP `request_story`): the shape is shared, so it lives here rather than with the writer.
 */

export interface AuditEntry {
  readonly ts: string;
  /** The gateway's id of the request (`req_…`), the response's `x-request-id`. */
  readonly requestId: string;
  /** The client's own `x-request-id`, a label only (1-128 letters, digits or `_ . : -`; others are dropped). */
  readonly clientRequestId?: string;
  readonly keyId: string | null;
  readonly model: string;
  /** The variant that served the request, for a model in a weighted rollout. */
  readonly variant?: string;
  readonly endpoint: string;
  readonly backend: string | null;
  readonly provider: string | null;
  readonly status: number;
  readonly stream: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly costUsd: number;
  readonly latencyMs: number;
  readonly ttftMs: number | null;
  readonly queueMs: number;
  readonly error: string | null;
  /** W3C trace id of the request (the caller's when it sent a traceparent), to find its spans. */
  readonly traceId?: string;
  /** The async job the line is about: its submission (`endpoint` "jobs") or its run. */
  readonly jobId?: string;
  /** Images generated (an image request answered 200: its `n`); what a per-image price is read from. */
  readonly images?: number;
  /** Prompt and completion text, only when the stack turns `gateway.auditPrompts` on. */
  readonly prompt?: unknown;
}
