/**
 * Server-sent events between upstream and client. The gateway always asks upstream for usage; this tap passes
 * frames through unchanged except that, when the client did not ask for usage, it drops the usage-only chunk
 * and strips `usage` from content chunks — so the client sees exactly what OpenAI would have sent. An error event
 * from upstream goes on as an OpenAI error with its message scrubbed (`upstreamStreamError`).
 *
 * A Responses API stream (`POST /v1/responses`) has typed events instead (`event: response.output_text.delta` +
 * `data: {…}`, no `[DONE]`): as vLLM writes them (vllm/entrypoints/openai/responses/api_router.py,
 * `_convert_stream_to_sse_events`; the events in serving_responses.py, `responses_stream_generator`:
 * response.created, response.in_progress, output_item/content_part added, response.output_text.delta …,
 * output_text/content_part/output_item done, then response.completed with the whole response and its `usage`
 * as `input_tokens`/`output_tokens`). The tap in "responses" mode passes every event as it came, counts the
 * `*.delta` events, reads the usage of the terminal event (response.completed / incomplete / failed) and scrubs
 * error events into OpenAI's `ResponseErrorEvent` shape (`{type: "error", code, message, param, sequence_number}`).
 */
import { upstreamStreamError } from "./errors";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * Usage as the books count it, from what an engine reported: chat and completions report `prompt_tokens` /
 * `completion_tokens`; the Responses API reports `input_tokens` / `output_tokens`
 * (https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage; vLLM's
 * `ResponseUsage`). Anything else that is an object goes on as it is (the books check each count).
 */
export function usageFrom(raw: unknown): Usage | undefined {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const u = raw as Record<string, unknown>;
  if (
    u.prompt_tokens === undefined &&
    u.completion_tokens === undefined &&
    typeof u.output_tokens === "number"
  ) {
    const input = typeof u.input_tokens === "number" ? u.input_tokens : 0;
    const total = typeof u.total_tokens === "number" ? u.total_tokens : input + u.output_tokens;
    return { prompt_tokens: input, completion_tokens: u.output_tokens, total_tokens: total };
  }
  return u as unknown as Usage;
}

/**
 * Usage of an answer that generates nothing (embeddings, rerank, score): every token was read. vLLM 0.10's rerank
 * reports only `total_tokens` (`RerankUsage` in vllm/entrypoints/openai/protocol.py), booked as prompt tokens.
 */
export function pooledUsage(usage: Usage): Usage {
  if (usage.prompt_tokens !== undefined || typeof usage.total_tokens !== "number") return usage;
  return { prompt_tokens: usage.total_tokens, completion_tokens: 0, total_tokens: usage.total_tokens };
}

/** Which kind of event stream the tap reads: chat/completions chunks, or the Responses API's typed events. */
export type StreamProtocol = "chat" | "responses";

const DONE = "[DONE]";
const encoder = new TextEncoder();
const LF = 0x0a;
const CR = 0x0d;
const DATA = Buffer.from("data:");
const USAGE = Buffer.from('"usage"');
const ERROR = Buffer.from('"error"');
const DONE_BYTES = Buffer.from(DONE);
const FRAME_END = Buffer.from("\n\n");

/**
 * Works on bytes: frames are found by their blank line and passed on as the very bytes that came in; only a frame
 * that mentions `"usage"`, `"error"` or `[DONE]` is decoded and looked at. A chunk of whole content frames goes out
 * without a copy.
 */
export class SseUsageTap {
  /** The start of a frame whose blank line has not arrived yet. */
  private pending: Buffer | undefined;
  /** Usage from the last frame that carried one (vLLM may repeat cumulative usage on every frame). */
  usage: Usage | undefined;
  /** Content frames seen: the completion-token estimate when a stream ends before its usage frame. */
  contentFrames = 0;
  sawDone = false;
  /** An upstream error event (`data: {"error": …}`) passed on, reshaped and scrubbed. */
  sawError = false;
  /** Events seen (a Responses stream numbers its events from 0: the next one's `sequence_number`). */
  events = 0;

  constructor(
    private readonly clientWantsUsage: boolean,
    private readonly protocol: StreamProtocol = "chat",
  ) {}

  /** Feed upstream bytes; returns the bytes to forward now (complete frames only). */
  push(chunk: Uint8Array): Uint8Array | undefined {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const merged = this.pending !== undefined;
    if (this.pending) {
      buf = Buffer.concat([this.pending, buf]);
      this.pending = undefined;
    }
    let start = 0; // of the next frame
    let kept = 0; // bytes before this are settled: forwarded as they are (or replaced, in `parts`)
    let parts: Uint8Array[] | undefined;
    for (;;) {
      const end = frameEnd(buf, start);
      if (end === undefined) break;
      const next = end + (buf[end] === CR ? 4 : 2);
      const verdict = this.frame(buf.subarray(start, end));
      if (verdict !== true) {
        // dropped or rewritten: what came before goes as it is, this frame is replaced
        parts ??= [];
        if (start > kept) parts.push(buf.subarray(kept, start));
        if (verdict !== false) parts.push(encoder.encode(`${verdict}\n\n`));
        kept = next;
      }
      start = next;
    }
    // the start of the next frame waits for the rest (a copy, unless it is all of a buffer of our own)
    if (start < buf.length) this.pending = merged && start === 0 ? buf : Buffer.from(buf.subarray(start));
    if (!parts) return start === buf.length ? buf : start > 0 ? buf.subarray(0, start) : undefined;
    if (start > kept) parts.push(buf.subarray(kept, start));
    return parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Whatever is left when upstream ends (a final frame without its blank line). */
  flush(): Uint8Array | undefined {
    const rest = this.pending;
    this.pending = undefined;
    if (!rest) return undefined;
    let end = rest.length;
    while (
      end > 0 &&
      (rest[end - 1] === LF || rest[end - 1] === CR || rest[end - 1] === 0x20 || rest[end - 1] === 0x09)
    )
      end -= 1;
    if (end === 0) return undefined;
    const frame = rest.subarray(0, end);
    const verdict = this.frame(frame);
    if (verdict === false) return undefined;
    return verdict === true ? Buffer.concat([frame, FRAME_END]) : encoder.encode(`${verdict}\n\n`);
  }

  /** One frame in: true = forward it as it is, false = drop it, a string = forward this instead. */
  private frame(frame: Buffer): boolean | string {
    if (this.protocol === "responses") return this.responsesFrame(frame);
    if (!startsWithData(frame)) return true; // comments, event names, retry hints
    const mentionsUsage = frame.indexOf(USAGE) !== -1;
    if (!mentionsUsage && frame.indexOf(ERROR) === -1) {
      // only a frame ending in "]" can be [DONE] (a content frame ends in "}"): most frames skip the search
      if (
        endsWithBracket(frame) &&
        frame.indexOf(DONE_BYTES) !== -1 &&
        frame.toString("latin1", DATA.length).trim() === DONE
      ) {
        this.sawDone = true;
        return true;
      }
      this.contentFrames += 1;
      return true;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(frame.toString("utf8", DATA.length)) as Record<string, unknown>;
    } catch {
      return true; // not ours to judge; the client's parser will say
    }
    if (parsed === null || typeof parsed !== "object") return true;
    if (parsed.error !== undefined) {
      // the backend's words never reach the client as they came (paths, addresses, tokens): reshaped and scrubbed
      this.sawError = true;
      return `data: ${JSON.stringify(upstreamStreamError(parsed))}`;
    }
    const usage = parsed.usage as Usage | null | undefined;
    if (usage && typeof usage.completion_tokens === "number") this.usage = usage;
    const choices = Array.isArray(parsed.choices) ? parsed.choices : [];
    if (choices.length > 0) this.contentFrames += 1;
    if (this.clientWantsUsage) return true;
    if (choices.length === 0 && usage) return false; // the usage-only chunk the client did not ask for
    if (!("usage" in parsed)) return true;
    delete parsed.usage;
    return `data: ${JSON.stringify(parsed)}`;
  }

  /** A Responses API event: only terminal and error events are parsed; deltas are counted by their name. */
  private responsesFrame(frame: Buffer): boolean | string {
    const { name, data } = responsesEventParts(frame);
    if (data === -1) return true; // a comment or retry hint
    this.events += 1;
    if (name !== undefined && name !== "error" && !TERMINAL_EVENTS.has(name)) {
      if (name.endsWith(".delta")) this.contentFrames += 1;
      return true;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(frame.toString("utf8", data + DATA.length)) as Record<string, unknown>;
    } catch {
      return true; // not ours to judge; the client's parser will say
    }
    if (parsed === null || typeof parsed !== "object") return true;
    const type = typeof parsed.type === "string" ? parsed.type : name;
    if (type === "error" || (type === undefined && parsed.error !== undefined)) {
      this.sawError = true;
      const { error } = upstreamStreamError(parsed);
      const sequence = typeof parsed.sequence_number === "number" ? parsed.sequence_number : this.events - 1;
      return responsesErrorFrame(error.message, error.code, error.param, sequence);
    }
    if (type === undefined || !TERMINAL_EVENTS.has(type)) {
      if (type?.endsWith(".delta")) this.contentFrames += 1;
      return true;
    }
    this.sawDone = true;
    const response = parsed.response as Record<string, unknown> | null | undefined;
    if (response === null || typeof response !== "object") return true;
    const usage = usageFrom(response.usage);
    if (usage && typeof usage.completion_tokens === "number") this.usage = usage;
    const failure = response.error as Record<string, unknown> | null | undefined;
    if (failure === null || failure === undefined || typeof failure !== "object") return true;
    // response.failed carries the backend's words in response.error: scrubbed as any error is
    const { error } = upstreamStreamError({ error: failure });
    response.error = { code: error.code ?? "server_error", message: error.message };
    return `event: ${type}\ndata: ${JSON.stringify(parsed)}`;
  }
}

/** A Responses stream's error event (OpenAI `ResponseErrorEvent`), as a whole SSE frame without its blank line. */
function responsesErrorFrame(
  message: string,
  code: string | null,
  param: string | null,
  sequenceNumber: number,
): string {
  const event = { type: "error", code, message, param, sequence_number: sequenceNumber };
  return `event: error\ndata: ${JSON.stringify(event)}`;
}

/**
 * An error event in the shape the client's stream parser expects: `data: {"error": …}` for chat and completions,
 * the typed `error` event for a Responses stream (`sequenceNumber`: the events it has had so far).
 */
export function sseErrorFor(
  protocol: StreamProtocol,
  message: string,
  code: string,
  type = "server_error",
  sequenceNumber = 0,
): Uint8Array {
  if (protocol === "chat") return sseError(message, code, type);
  return encoder.encode(`${responsesErrorFrame(message, code, null, sequenceNumber)}\n\n`);
}

/** How a stream ends after an in-band error: `[DONE]` for chat and completions, nothing for a Responses stream. */
export const sseEndFor = (protocol: StreamProtocol): Uint8Array | undefined =>
  protocol === "chat" ? encoder.encode("data: [DONE]\n\n") : undefined;

/** The event name of a Responses stream's frame (`event: …` line) and where its `data:` line starts, if any. */
function responsesEventParts(frame: Buffer): { name: string | undefined; data: number } {
  let name: string | undefined;
  let data = -1;
  let start = 0;
  while (start < frame.length) {
    let end = frame.indexOf(LF, start);
    if (end === -1) end = frame.length;
    const line = frame.subarray(start, end);
    if (startsWithData(line)) {
      data = start;
      break;
    }
    if (line.length > 6 && line.toString("latin1", 0, 6) === "event:")
      name = line.toString("latin1", 6).trim();
    start = end + 1;
  }
  return { name, data };
}

const TERMINAL_EVENTS = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** `data:` at the start, compared in JS (five bytes: cheaper than a call into Buffer.compare). */
function startsWithData(frame: Buffer): boolean {
  return (
    frame.length >= 5 &&
    frame[0] === 0x64 &&
    frame[1] === 0x61 &&
    frame[2] === 0x74 &&
    frame[3] === 0x61 &&
    frame[4] === 0x3a
  );
}

/** Whether the last byte that String#trim would keep (read as latin1) is "]". */
function endsWithBracket(frame: Buffer): boolean {
  let i = frame.length - 1;
  while (i >= 0) {
    const c = frame[i]!;
    // the whitespace trim removes from latin1 text: tab, LF, VT, FF, CR, space, no-break space
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0) i -= 1;
    else return c === 0x5d;
  }
  return false;
}

/** Where the frame starting at `from` ends (the index of its blank line: LF LF or CR LF CR LF), if it has. */
function frameEnd(buf: Buffer, from: number): number | undefined {
  let i = buf.indexOf(LF, from);
  while (i !== -1 && i + 1 < buf.length) {
    if (buf[i + 1] === LF) return i;
    if (i > from && buf[i - 1] === CR && buf[i + 1] === CR && i + 2 < buf.length && buf[i + 2] === LF)
      return i - 1;
    i = buf.indexOf(LF, i + 1);
  }
  return undefined;
}

/** An SSE error event in the shape OpenAI clients parse (`data: {"error": {...}}`). */
export function sseError(message: string, code: string, type = "server_error"): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify({ error: { message, type, param: null, code } })}\n\n`);
}

export const sseComment = (text: string): Uint8Array => encoder.encode(`: ${text}\n\n`);
