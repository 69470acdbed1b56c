/**
 * Traffic through the gateway with the official `openai` client, and the accounting of every request sent:
 * succeeded, failed with a clear error, or lost (which must never happen).
 */
import OpenAI from "openai";

export type Outcome =
  | { kind: "ok"; latencyMs: number; ttftMs?: number }
  | { kind: "failed"; latencyMs: number; error: string }
  | { kind: "lost"; latencyMs: number; why: string };

/**
 * Every request a scenario sends ends in exactly one bucket: succeeded (a complete answer: a finish reason, and for
 * streams the end of the stream), failed with a clear error (an HTTP status with an OpenAI error body, an SSE
 * error event, or the connection dropping because the process serving it was killed), or lost (no answer within
 * the bound, or an answer that silently stopped short). Lost must be 0.
 */
export class Tally {
  sent = 0;
  readonly outcomes: Outcome[] = [];
  private readonly pending = new Set<Promise<Outcome>>();

  get succeeded(): number {
    return this.outcomes.filter((o) => o.kind === "ok").length;
  }
  get failed(): number {
    return this.outcomes.filter((o) => o.kind === "failed").length;
  }
  get lost(): number {
    return this.outcomes.filter((o) => o.kind === "lost").length;
  }
  errors(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.outcomes) {
      const key = o.kind === "failed" ? o.error : o.kind === "lost" ? `LOST: ${o.why}` : undefined;
      if (key) out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** Track a request; the promise resolves with its outcome (never rejects). */
  track(run: () => Promise<Outcome>, boundMs = 120_000): Promise<Outcome> {
    this.sent += 1;
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const bounded = Promise.race([
      run().catch(
        (error: unknown): Outcome => ({ kind: "lost", latencyMs: Date.now() - started, why: String(error) }),
      ),
      new Promise<Outcome>((r) => {
        timer = setTimeout(
          () => r({ kind: "lost", latencyMs: Date.now() - started, why: `no answer within ${boundMs} ms` }),
          boundMs,
        );
      }),
    ]).then((o) => {
      clearTimeout(timer);
      this.outcomes.push(o);
      this.pending.delete(bounded);
      return o;
    });
    this.pending.add(bounded);
    return bounded;
  }

  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  add(other: Tally): void {
    this.sent += other.sent;
    this.outcomes.push(...other.outcomes);
  }
}

/** What a thrown error tells the client, or undefined when it is not a clear error. */
export function clearError(error: unknown): string | undefined {
  if (error instanceof OpenAI.APIConnectionTimeoutError) return undefined; // the client gave up: that is lost
  if (error instanceof OpenAI.APIConnectionError) return "connection dropped";
  if (error instanceof OpenAI.APIError) {
    const body = error.error as { code?: string; message?: string } | undefined;
    const code = error.code ?? body?.code ?? "?";
    if (error.status === undefined) return `SSE error event (${code})`; // an error frame inside the stream
    return `HTTP ${error.status} ${code}`;
  }
  const message = String((error as Error)?.message ?? error);
  // undici's body stream ending because the server's socket closed mid-answer
  if (/terminated|other side closed|socket hang up|ECONNRESET|premature close/i.test(message))
    return "connection dropped";
  return undefined;
}

export interface ChatOptions {
  readonly model: string;
  readonly stream?: boolean;
  readonly maxTokens?: number;
  readonly prompt?: string;
  /** Called with the number of content chunks received so far (streams). */
  readonly onChunk?: (chunks: number) => void;
  /** Called with the error a failed request threw (to look at its status and headers). */
  readonly onError?: (error: unknown) => void;
  readonly timeoutMs?: number;
}

/** One chat completion through the openai client, classified. */
export async function chat(client: OpenAI, options: ChatOptions): Promise<Outcome> {
  const started = Date.now();
  const messages = [{ role: "user" as const, content: options.prompt ?? "say something" }];
  try {
    if (options.stream) {
      const stream = await client.chat.completions.create(
        {
          model: options.model,
          messages,
          stream: true,
          max_tokens: options.maxTokens ?? 8,
          stream_options: { include_usage: true },
        },
        { timeout: options.timeoutMs ?? 90_000, maxRetries: 0 },
      );
      let finished = false;
      let chunks = 0;
      let ttftMs: number | undefined;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) {
          chunks += 1;
          ttftMs ??= Date.now() - started;
          options.onChunk?.(chunks);
        }
        if (chunk.choices[0]?.finish_reason) finished = true;
      }
      if (!finished)
        return { kind: "lost", latencyMs: Date.now() - started, why: "stream ended without a finish" };
      return { kind: "ok", latencyMs: Date.now() - started, ...(ttftMs !== undefined ? { ttftMs } : {}) };
    }
    const res = await client.chat.completions.create(
      { model: options.model, messages, max_tokens: options.maxTokens ?? 8 },
      { timeout: options.timeoutMs ?? 90_000, maxRetries: 0 },
    );
    if (!res.choices[0]?.finish_reason || typeof res.choices[0].message.content !== "string")
      return { kind: "lost", latencyMs: Date.now() - started, why: "answer without a finish" };
    return { kind: "ok", latencyMs: Date.now() - started };
  } catch (error) {
    options.onError?.(error);
    const clear = clearError(error);
    return clear
      ? { kind: "failed", latencyMs: Date.now() - started, error: clear }
      : { kind: "lost", latencyMs: Date.now() - started, why: `unclear error: ${String(error)}` };
  }
}
