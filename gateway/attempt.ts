/**
 * What a worker's answer means for an attempt, for inference and async jobs alike (one policy, so a job never
 * retries what a request fails over from, or the other way round):
 * - 401/403 (the worker does not take our token), 404 (it does not serve the model: replaced or misconfigured),
 *   429 (at capacity) and 5xx: try another worker, and cool this one down (429 briefly, the rest longer);
 * - any other status is the answer: 2xx as it is, another 4xx is the request's own fault (reshaped and scrubbed by
 *   `upstreamErrorBody`, never retried).
 */
export type UpstreamVerdict =
  | { readonly kind: "answer" }
  | { readonly kind: "fail_over"; readonly coolDownMs: number; readonly metricKind: string };

export function upstreamVerdict(status: number): UpstreamVerdict {
  if (status === 429) return { kind: "fail_over", coolDownMs: 2_000, metricKind: "status_429" };
  if (status >= 500) return { kind: "fail_over", coolDownMs: 5_000, metricKind: "status_5xx" };
  if (status === 404) return { kind: "fail_over", coolDownMs: 5_000, metricKind: "status_404" };
  if (status === 401 || status === 403) return { kind: "fail_over", coolDownMs: 5_000, metricKind: "auth" };
  return ANSWER;
}

const ANSWER: UpstreamVerdict = { kind: "answer" };
