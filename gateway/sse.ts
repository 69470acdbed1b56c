/**
 * Server-sent events between upstream and client. The gateway always asks upstream for usage; this tap passes
 * frames through unchanged except that, when the client did not ask for usage, it drops the usage-only chunk
 * and strips `usage` from content chunks — so the client sees exactly what OpenAI would have sent.
 */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const DONE = "[DONE]";
const encoder = new TextEncoder();

export class SseUsageTap {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  /** Usage from the last frame that carried one (vLLM may repeat cumulative usage on every frame). */
  usage: Usage | undefined;
  /** Content frames seen: the completion-token estimate when a stream ends before its usage frame. */
  contentFrames = 0;
  sawDone = false;
  /** An upstream error event (`data: {"error": …}`) passed through. */
  sawError = false;

  constructor(private readonly clientWantsUsage: boolean) {}

  /** Feed upstream bytes; returns the bytes to forward now (complete frames only). */
  push(chunk: Uint8Array): Uint8Array | undefined {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    let out = "";
    for (;;) {
      const end = this.frameEnd();
      if (end === undefined) break;
      const frame = this.buffer.slice(0, end.index);
      this.buffer = this.buffer.slice(end.index + end.length);
      const forwarded = this.frame(frame);
      if (forwarded !== undefined) out += `${forwarded}\n\n`;
    }
    return out ? encoder.encode(out) : undefined;
  }

  /** Whatever is left when upstream ends (a final frame without its blank line). */
  flush(): Uint8Array | undefined {
    const rest = this.buffer + this.decoder.decode();
    this.buffer = "";
    if (!rest.trim()) return undefined;
    const forwarded = this.frame(rest.replace(/\s+$/, ""));
    return forwarded === undefined ? undefined : encoder.encode(`${forwarded}\n\n`);
  }

  private frameEnd(): { index: number; length: number } | undefined {
    const lf = this.buffer.indexOf("\n\n");
    const crlf = this.buffer.indexOf("\r\n\r\n");
    if (lf === -1 && crlf === -1) return undefined;
    if (crlf !== -1 && (lf === -1 || crlf < lf)) return { index: crlf, length: 4 };
    return { index: lf, length: 2 };
  }

  /** One frame in, the frame to forward out (undefined = drop it). */
  private frame(frame: string): string | undefined {
    if (!frame.startsWith("data:")) return frame; // comments, event names, retry hints pass as they are
    const data = frame.slice(5).trim();
    if (data === DONE) {
      this.sawDone = true;
      return frame;
    }
    if (!data.includes('"usage"') && !data.includes('"error"')) {
      this.contentFrames += 1;
      return frame;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return frame; // not ours to judge; the client's parser will say
    }
    if (parsed.error !== undefined) {
      this.sawError = true;
      return frame;
    }
    const usage = parsed.usage as Usage | null | undefined;
    if (usage && typeof usage.completion_tokens === "number") this.usage = usage;
    const choices = Array.isArray(parsed.choices) ? parsed.choices : [];
    if (choices.length > 0) this.contentFrames += 1;
    if (this.clientWantsUsage) return frame;
    if (choices.length === 0 && usage) return undefined; // the usage-only chunk the client did not ask for
    if (!("usage" in parsed)) return frame;
    delete parsed.usage;
    return `data: ${JSON.stringify(parsed)}`;
  }
}

/** An SSE error event in the shape OpenAI clients parse (`data: {"error": {...}}`). */
export function sseError(message: string, code: string, type = "server_error"): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify({ error: { message, type, param: null, code } })}\n\n`);
}

export const sseComment = (text: string): Uint8Array => encoder.encode(`: ${text}\n\n`);
