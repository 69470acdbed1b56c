/**
 * A fake of vLLM's OpenAI-compatible server: a real node:http server for gateway tests and benchmarks.
 *
 * In-process: `const fake = await startFakeVllm({ model: "m" })`, then point the gateway at `fake.url`.
 * Separate process: `node -r tsx/cjs test/fakes/vllm-upstream.ts --port 0 --model m` prints one JSON line
 * `{"port":N}` on stdout once listening (`--ssl-certfile F --ssl-keyfile F` serve https, as vLLM's flags do);
 * faults, tuning and records are then reachable over HTTP through `POST /__fault`, `POST /__config`,
 * `POST /__reset` and `GET /__stats`.
 *
 * Deterministic model: a "token" is one whitespace-separated word. `prompt_tokens` counts the words of the
 * messages (text parts only) or of the prompt (token-id arrays count their length). The completion has
 * `max_completion_tokens`/`max_tokens` words (default `defaultMaxTokens`), chosen by `fakeCompletionText`
 * from `prompt_tokens`; `finish_reason` is "length" when the request set a token limit, else "stop".
 *
 * `POST /v1/responses` (the Responses API) follows vLLM's serving code: the request as `ResponsesRequest`
 * (vllm/entrypoints/openai/protocol.py: `input` a string or a list of items, `instructions`, `max_output_tokens`),
 * the answer as `ResponsesResponse` (object "response", one assistant `message` item with an `output_text` part,
 * `usage` as `input_tokens`/`output_tokens`), and a stream as vllm/entrypoints/openai/serving_responses.py's
 * `responses_stream_generator` + `_process_simple_streaming_events` emit it, one `event: <type>` + `data:` frame
 * per event, numbered by `sequence_number` and without `[DONE]` (vllm/entrypoints/openai/responses/api_router.py,
 * `_convert_stream_to_sse_events`): response.created, response.in_progress, response.output_item.added,
 * response.content_part.added, one response.output_text.delta per token, response.output_text.done,
 * response.content_part.done, response.output_item.done, response.completed (the whole response with usage).
 * Prompt tokens count the words of `instructions` and of the input's text.
 *
 * `POST /v1/rerank` and `POST /v1/score` follow vLLM 0.10's `RerankRequest`/`RerankResponse` and
 * `ScoreRequest`/`ScoreResponse` (vllm/entrypoints/openai/protocol.py): rerank takes `query`, `documents` (strings)
 * and `top_n` (0: all) and answers `results` sorted by `relevance_score`, best first, each with its `index` and
 * `document.text`, and `usage: {total_tokens}`; score takes `text_1` and `text_2` (a string against a list, or two
 * lists of the same length, pairwise) and answers `data: [{index, object: "score", score}]` with `usage`
 * (`prompt_tokens`, `total_tokens`). A score is the cosine of the two texts' fake embeddings.
 *
 * `POST /v1/audio/transcriptions` takes multipart/form-data (`file`, `model`, `response_format`, …) and answers as
 * vLLM 0.10.1.1 does (see `transcription` below); the upload's bytes are recorded as they arrived (`rawBytes`).
 *
 * `POST /v1/images/generations` answers as vLLM-Omni does (vLLM itself serves no image route; see `images` below):
 * `{created, data: [{b64_json, url: null, revised_prompt: null}]}`, `n` PNGs, `response_format` "b64_json" only.
 */
import { readFileSync } from "node:fs";
import {
  createServer,
  type Server as HttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

export type UsageMode = "final" | "every-chunk";

/** Settings that can also be changed while the server runs (`configure()` / `POST /__config`). */
export interface FakeVllmTuning {
  /** Delay between the stream's response headers and its first token frame (and added to non-stream). */
  ttftMs: number;
  /** Delay between token frames; non-stream responses wait `ttftMs + (tokens - 1) * interTokenDelayMs`. */
  interTokenDelayMs: number;
  /** Completion length in words when the request sets neither `max_tokens` nor `max_completion_tokens`. */
  defaultMaxTokens: number;
  /**
   * "final": usage only in the trailing `choices: []` chunk, and only when the request asked with
   * `stream_options.include_usage` (plus vLLM's `continuous_usage_stats` to get it on every frame).
   * "every-chunk": like `vllm --enable-force-include-usage` as described in the gateway anchors — cumulative
   * usage on every frame and the trailing usage chunk on every stream, whether asked for or not.
   */
  usageMode: UsageMode;
}

export interface FakeVllmOptions extends Partial<FakeVllmTuning> {
  /** Bind address; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (an ephemeral port). */
  port?: number;
  /** Served model name(s); the first is used when a request names none. Default "fake-model". */
  model?: string | readonly string[];
  /** `max_model_len` reported by /v1/models; prompt + completion beyond it is a 400. Default 4096. */
  maxModelLen?: number;
  /** Static bearer key(s) required on /v1/* like `vllm --api-key`; none by default. */
  apiKey?: string | readonly string[];
  /** /health (and every other route) answers 503 until this long after start. Default 0. */
  bootDelayMs?: number;
  /** Embedding length when the request sets no `dimensions`. Default 8. */
  embeddingDimensions?: number;
  /** How many request records and stream records to keep (the most recent). Default 100. */
  recordLimit?: number;
  /** Serve https with this certificate and key (PEM), like `vllm --ssl-certfile --ssl-keyfile`. */
  tls?: { cert: string; key: string };
}

/** What an armed fault does to a matching request. */
export type FakeVllmFault =
  | {
      /** Answer this status with an OpenAI-shaped error body. */
      type: "status";
      status: number;
      /** `Retry-After` header value (seconds or an HTTP date), sent as given. */
      retryAfter?: number | string;
      /** `retry-after-ms` header value. */
      retryAfterMs?: number;
      message?: string;
      errorType?: string;
      code?: string | null;
    }
  /** Wait this long before doing anything (then answer normally), e.g. to trip a headers timeout. */
  | { type: "delay"; ms: number }
  /** Streams: destroy the socket after this many token frames. Other requests: destroy without answering. */
  | { type: "drop"; afterTokens?: number }
  /** Streams: stop sending after this many token frames and never end. Other requests: never answer. */
  | { type: "stall"; afterTokens?: number }
  /** Answer 200 with a body that is not JSON (streams: one `data:` frame that is not JSON, no `[DONE]`). */
  | { type: "garbage" };

export interface FaultScope {
  /** How many matching requests the fault applies to; default 1; -1 or Infinity = until cleared. */
  count?: number;
  /** Only requests to this exact path; default: the four POST inference routes under /v1. */
  path?: string;
}

/** Body of `POST /__fault` (or an array of them). */
export type FaultSpec = FakeVllmFault & FaultScope;

export interface RecordedRequest {
  readonly seq: number;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; the raw text when it was not JSON; undefined when there was none. */
  readonly body: unknown;
  /** The body's text exactly as it arrived ("" when there was none). */
  readonly rawBody: string;
  /** A multipart upload's bytes exactly as they arrived (transcriptions only). */
  readonly rawBytes?: Buffer;
  readonly receivedAt: number;
}

export interface StreamRecord {
  readonly seq: number;
  readonly path: string;
  readonly model: string;
  /** Token frames the stream would send if nothing went wrong (max tokens × n). */
  readonly plannedTokens: number;
  /** Token frames written so far (role and finish frames not counted). */
  readonly tokensSent: number;
  /** Ended normally with `[DONE]`. */
  readonly completed: boolean;
  /** The client closed the connection before the response was finished. */
  readonly aborted: boolean;
  /** The server destroyed the socket (the `drop` fault). */
  readonly dropped: boolean;
  /** The `stall` fault stopped the stream. */
  readonly stalled: boolean;
  readonly startedAt: number;
  readonly endedAt: number | null;
  /**
   * `process.hrtime.bigint()` (CLOCK_MONOTONIC, the same clock in every process of the machine) when the request
   * reached the handler and when the first content token was written, as decimal strings: joined with a client's
   * own timestamps they split a time to first token into the way there and the way back.
   */
  readonly receivedNs: string;
  readonly firstTokenNs: string | null;
}

export interface FakeVllmRecords {
  /** Requests per path (query string removed), control routes (`/__*`) excluded. */
  readonly requestCounts: Readonly<Record<string, number>>;
  /** The last `recordLimit` requests, oldest first. */
  readonly requests: readonly RecordedRequest[];
  /** Requests whose response has not closed yet. */
  readonly inFlight: number;
  /** The last `recordLimit` streaming responses, oldest first; updated live. */
  readonly streams: readonly StreamRecord[];
  /** Requests of any kind whose client went away before the response finished. */
  readonly abortedRequests: number;
}

export interface FakeVllm {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:43123/v1` (`https://` with the `tls` option). */
  readonly url: string;
  /** `http(s)://host:port`, for /health, /metrics and the control routes. */
  readonly origin: string;
  readonly port: number;
  readonly models: readonly string[];
  /** Live records (the same object for the server's lifetime; `reset()` empties it in place). */
  readonly records: FakeVllmRecords;
  /** A JSON-safe deep copy of the records (what `GET /__stats` returns). */
  stats(): FakeVllmRecords;
  injectFault(fault: FakeVllmFault, scope?: FaultScope): void;
  /** Next `count` (default 1) requests answer `status`; `retryAfter` sets `Retry-After`. */
  failNext(
    status: number,
    options?: FaultScope & { retryAfter?: number | string; retryAfterMs?: number; message?: string },
  ): void;
  delayNext(ms: number, scope?: FaultScope): void;
  dropNext(afterTokens: number, scope?: FaultScope): void;
  stallNext(afterTokens: number, scope?: FaultScope): void;
  garbageNext(scope?: FaultScope): void;
  /** Armed faults with their remaining counts. */
  pendingFaults(): number;
  clearFaults(): void;
  configure(tuning: Partial<FakeVllmTuning>): void;
  /** Clears faults and records (in-flight requests keep being counted). */
  reset(): void;
  /** Resolves once no request is in flight (rejects after `timeoutMs`, default 5000). */
  whenIdle(timeoutMs?: number): Promise<void>;
  /** Stops listening and destroys every open connection (stalled streams included). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------
// Deterministic content

const VOCAB = [
  "alpha",
  "bravo",
  "charlie",
  "delta",
  "echo",
  "foxtrot",
  "golf",
  "hotel",
  "india",
  "juliet",
  "kilo",
  "lima",
  "mike",
  "november",
  "oscar",
  "papa",
  "quebec",
  "romeo",
  "sierra",
  "tango",
  "uniform",
  "victor",
  "whiskey",
  "xray",
  "yankee",
  "zulu",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
];

/** Text of completion token `index` (0-based) for a request with `seed` prompt tokens; words are space-led. */
function tokenText(seed: number, index: number): string {
  const word = VOCAB[(seed + index * 7) % VOCAB.length]!;
  return index === 0 ? word : " " + word;
}

/** The completion the fake produces for `promptTokens` prompt words and `tokens` completion words. */
export function fakeCompletionText(promptTokens: number, tokens: number): string {
  let text = "";
  for (let i = 0; i < tokens; i++) text += tokenText(promptTokens, i);
  return text;
}

/** The embedding the fake produces for one input (float32-exact values in [-1, 1)). */
export function fakeEmbedding(input: string | readonly number[], dimensions = 8): number[] {
  let h = 0x811c9dc5;
  const text = typeof input === "string" ? input : input.join(",");
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let x = h >>> 0 || 1;
  const out = new Array<number>(dimensions);
  for (let i = 0; i < dimensions; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = Math.fround(x / 2147483648 - 1);
  }
  return out;
}

/** Cosine of two texts' fake embeddings: the fake's relevance and score. */
function similarity(a: string, b: string): number {
  const x = fakeEmbedding(a, 16);
  const y = fakeEmbedding(b, 16);
  let dot = 0;
  let nx = 0;
  let ny = 0;
  for (let i = 0; i < x.length; i++) {
    dot += x[i]! * y[i]!;
    nx += x[i]! * x[i]!;
    ny += y[i]! * y[i]!;
  }
  return dot / Math.sqrt(nx * ny || 1);
}

function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13) || c === 160) inWord = false;
    else if (!inWord) {
      inWord = true;
      n++;
    }
  }
  return n;
}

function contentWords(content: unknown): number {
  if (typeof content === "string") return countWords(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content) {
    if (typeof part === "string") n += countWords(part);
    else if (isObject(part) && typeof part.text === "string") n += countWords(part.text);
  }
  return n;
}

/** Prompt tokens of a completions `prompt`, or -1 when it has no valid shape. */
function promptWords(prompt: unknown): number {
  if (typeof prompt === "string") return countWords(prompt);
  if (!Array.isArray(prompt) || prompt.length === 0) return -1;
  let n = 0;
  for (const item of prompt) {
    if (typeof item === "string") n += countWords(item);
    else if (typeof item === "number") n += 1;
    else if (Array.isArray(item)) n += item.length;
    else return -1;
  }
  return n;
}

/** 1×1 transparent PNG. */
const PNG_1X1 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

// ---------------------------------------------------------------------------------------------------------
// Server

type Json = Record<string, unknown>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableStream = Mutable<StreamRecord>;

interface InternalRecords {
  requestCounts: Record<string, number>;
  requests: RecordedRequest[];
  inFlight: number;
  streams: MutableStream[];
  abortedRequests: number;
}

interface ArmedFault {
  readonly fault: FakeVllmFault;
  remaining: number;
  readonly path: string | null;
}

/** Per-request state shared with the close handler. */
interface Exchange {
  /** When the handler got the request (`process.hrtime.bigint()`). */
  readonly receivedNs: bigint;
  timer: NodeJS.Timeout | null;
  closed: boolean;
  dropped: boolean;
  inference: boolean;
  stream: MutableStream | null;
}

interface Generation {
  readonly chat: boolean;
  readonly path: string;
  readonly model: string;
  readonly promptTokens: number;
  readonly maxTokens: number;
  readonly n: number;
  readonly finish: "length" | "stop";
  readonly includeUsage: boolean;
  readonly continuousUsage: boolean;
}

const INFERENCE_PATHS = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/responses",
  "/v1/embeddings",
  "/v1/rerank",
  "/v1/score",
  "/v1/images/generations",
  "/v1/audio/transcriptions",
]);
const TRANSCRIPTIONS = "/v1/audio/transcriptions";
const GET_PATHS = new Set(["/health", "/v1/models", "/metrics"]);
const JSON_TYPE = "application/json";
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };
const MAX_CACHE = 2048;

/**
 * A multipart/form-data body (RFC 7578): each part between `--boundary` lines, its headers up to a blank line,
 * `Content-Disposition: form-data; name="…"` (`filename="…"` for a file). Text fields become strings (a repeated
 * name keeps the last, as FastAPI's `Form()` does for a scalar), a file `{ filename, bytes }`. Undefined when the
 * body is not such a form.
 */
function parseForm(bytes: Buffer, contentType: string): Json | undefined {
  const boundary = /;\s*boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!/^multipart\/form-data/i.test(contentType) || !boundary) return undefined;
  const text = bytes.toString("latin1");
  const pieces = text.split(`--${boundary}`);
  if (pieces.length < 3 || !pieces[pieces.length - 1]!.startsWith("--")) return undefined;
  const form: Json = {};
  for (const piece of pieces.slice(1, -1)) {
    const split = piece.indexOf("\r\n\r\n");
    if (!piece.startsWith("\r\n") || split === -1 || !piece.endsWith("\r\n")) return undefined;
    const headers = piece.slice(2, split);
    const content = piece.slice(split + 4, -2);
    const disposition = /content-disposition:\s*form-data([^\r\n]*)/i.exec(headers)?.[1] ?? "";
    const name = /;\s*name="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined) return undefined;
    const filename = /;\s*filename="([^"]*)"/i.exec(disposition)?.[1];
    form[name] =
      filename === undefined
        ? Buffer.from(content, "latin1").toString("utf8")
        : { filename, bytes: Buffer.byteLength(content, "latin1") };
  }
  return form;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

function errorBody(message: string, type: string, code: string | null, param: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

function sendJson(res: ServerResponse, status: number, body: string, headers?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...headers, "content-type": JSON_TYPE, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function defaultErrorFor(status: number): { type: string; code: string | null; message: string } {
  if (status === 429)
    return { type: "rate_limit_exceeded", code: "rate_limit_exceeded", message: "Rate limit reached" };
  if (status === 401)
    return { type: "invalid_request_error", code: "invalid_api_key", message: "Unauthorized" };
  if (status === 404) return { type: "invalid_request_error", code: "model_not_found", message: "Not found" };
  if (status >= 500)
    return { type: "server_error", code: null, message: `Injected upstream error ${status}` };
  return { type: "invalid_request_error", code: null, message: `Injected error ${status}` };
}

function validateFault(value: unknown): FaultSpec | string {
  if (!isObject(value)) return "fault must be an object";
  const { count, path } = value;
  if (count !== undefined && count !== -1 && !isInt(count, 0, Number.MAX_SAFE_INTEGER))
    return "count must be a non-negative integer or -1";
  if (path !== undefined && (typeof path !== "string" || !path.startsWith("/")))
    return "path must start with /";
  const scope: FaultScope = {};
  if (count !== undefined) scope.count = count as number;
  if (path !== undefined) scope.path = path as string;
  switch (value.type) {
    case "status": {
      if (!isInt(value.status, 100, 599)) return "status must be an HTTP status";
      const { retryAfter, retryAfterMs, message, errorType, code } = value;
      if (retryAfter !== undefined && typeof retryAfter !== "number" && typeof retryAfter !== "string")
        return "retryAfter must be a number or string";
      if (retryAfterMs !== undefined && typeof retryAfterMs !== "number")
        return "retryAfterMs must be a number";
      if (message !== undefined && typeof message !== "string") return "message must be a string";
      if (errorType !== undefined && typeof errorType !== "string") return "errorType must be a string";
      if (code !== undefined && code !== null && typeof code !== "string") return "code must be a string";
      return { ...value, ...scope } as FaultSpec;
    }
    case "delay":
      return isInt(value.ms, 0, 86_400_000)
        ? { type: "delay", ms: value.ms, ...scope }
        : "ms must be an integer";
    case "drop":
    case "stall": {
      const after = value.afterTokens ?? 0;
      if (!isInt(after, 0, Number.MAX_SAFE_INTEGER)) return "afterTokens must be a non-negative integer";
      return { type: value.type, afterTokens: after, ...scope };
    }
    case "garbage":
      return { type: "garbage", ...scope };
    default:
      return "type must be one of status, delay, drop, stall, garbage";
  }
}

class FakeVllmServer implements FakeVllm {
  url = "";
  origin = "";
  port = 0;
  readonly models: readonly string[];

  private readonly server: HttpServer | HttpsServer = this.options.tls
    ? createHttpsServer({ cert: this.options.tls.cert, key: this.options.tls.key }, (req, res) =>
        this.handle(req, res),
      )
    : createServer((req, res) => this.handle(req, res));
  private readonly modelSet: ReadonlySet<string>;
  private readonly authHeaders: ReadonlySet<string> | null;
  private readonly maxModelLen: number;
  private readonly embeddingDimensions: number;
  private readonly recordLimit: number;
  private readonly bootedAt: number;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly modelsBody: string;
  private readonly modelBodies = new Map<string, string>();
  private readonly unauthorizedBody = errorBody("Unauthorized", "invalid_request_error", "invalid_api_key");
  private readonly bootingBody = errorBody("The engine is still starting", "server_error", null);
  private readonly cache = new Map<string, string>();
  private readonly internal: InternalRecords = {
    requestCounts: {},
    requests: [],
    inFlight: 0,
    streams: [],
    abortedRequests: 0,
  };
  private tuning: FakeVllmTuning;
  private faults: ArmedFault[] = [];
  private idleWaiters: Array<() => void> = [];
  private seq = 0;
  private running = 0;
  private promptTokensTotal = 0;
  private generationTokensTotal = 0;

  constructor(private readonly options: FakeVllmOptions) {
    const models = options.model === undefined ? ["fake-model"] : ([] as string[]).concat(options.model);
    if (models.length === 0) throw new Error("startFakeVllm: at least one model name is needed");
    this.models = models;
    this.modelSet = new Set(models);
    const keys = options.apiKey === undefined ? [] : ([] as string[]).concat(options.apiKey);
    this.authHeaders = keys.length === 0 ? null : new Set(keys.map((k) => `Bearer ${k}`));
    this.maxModelLen = options.maxModelLen ?? 4096;
    this.embeddingDimensions = options.embeddingDimensions ?? 8;
    this.recordLimit = options.recordLimit ?? 100;
    this.bootedAt = Date.now() + (options.bootDelayMs ?? 0);
    this.tuning = {
      ttftMs: options.ttftMs ?? 0,
      interTokenDelayMs: options.interTokenDelayMs ?? 0,
      defaultMaxTokens: options.defaultMaxTokens ?? 16,
      usageMode: options.usageMode ?? "final",
    };
    const cards = models.map((id) => ({
      id,
      object: "model",
      created: this.created,
      owned_by: "vllm",
      root: id,
      parent: null,
      max_model_len: this.maxModelLen,
    }));
    this.modelsBody = JSON.stringify({ object: "list", data: cards });
    for (const card of cards) this.modelBodies.set(card.id, JSON.stringify(card));
  }

  get records(): FakeVllmRecords {
    return this.internal;
  }

  async listen(): Promise<void> {
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    const scheme = this.options.tls ? "https" : "http";
    this.origin = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
    this.url = `${this.origin}/v1`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  stats(): FakeVllmRecords {
    return JSON.parse(JSON.stringify(this.internal)) as FakeVllmRecords;
  }

  // ---- faults and tuning ------------------------------------------------------------------------------

  injectFault(fault: FakeVllmFault, scope: FaultScope = {}): void {
    const count = scope.count ?? 1;
    if (count === 0) return;
    this.faults.push({
      fault,
      remaining: count < 0 ? Number.POSITIVE_INFINITY : count,
      path: scope.path ?? null,
    });
  }

  failNext(
    status: number,
    options: FaultScope & { retryAfter?: number | string; retryAfterMs?: number; message?: string } = {},
  ): void {
    const { count, path, ...rest } = options;
    this.injectFault({ type: "status", status, ...rest }, { count, path });
  }

  delayNext(ms: number, scope?: FaultScope): void {
    this.injectFault({ type: "delay", ms }, scope);
  }

  dropNext(afterTokens: number, scope?: FaultScope): void {
    this.injectFault({ type: "drop", afterTokens }, scope);
  }

  stallNext(afterTokens: number, scope?: FaultScope): void {
    this.injectFault({ type: "stall", afterTokens }, scope);
  }

  garbageNext(scope?: FaultScope): void {
    this.injectFault({ type: "garbage" }, scope);
  }

  pendingFaults(): number {
    let n = 0;
    for (const f of this.faults) n += f.remaining;
    return n;
  }

  clearFaults(): void {
    this.faults = [];
  }

  configure(tuning: Partial<FakeVllmTuning>): void {
    this.tuning = { ...this.tuning, ...tuning };
  }

  reset(): void {
    this.clearFaults();
    const r = this.internal;
    for (const key of Object.keys(r.requestCounts)) delete r.requestCounts[key];
    r.requests.length = 0;
    r.streams.length = 0;
    r.abortedRequests = 0;
  }

  whenIdle(timeoutMs = 5000): Promise<void> {
    if (this.internal.inFlight === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        reject(
          new Error(`fake vLLM: ${this.internal.inFlight} request(s) still in flight after ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.idleWaiters.push(done);
    });
  }

  private takeFault(path: string): FakeVllmFault | null {
    const faults = this.faults;
    if (faults.length === 0) return null;
    for (let i = 0; i < faults.length; i++) {
      const armed = faults[i]!;
      if (armed.path === null ? !INFERENCE_PATHS.has(path) : armed.path !== path) continue;
      if (--armed.remaining <= 0) faults.splice(i, 1);
      return armed.fault;
    }
    return null;
  }

  // ---- request handling -------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith("/__")) {
      this.readBody(req, (raw) => this.handleControl(req, res, path, raw));
      return;
    }
    const r = this.internal;
    r.requestCounts[path] = (r.requestCounts[path] ?? 0) + 1;
    r.inFlight++;
    const ex: Exchange = {
      receivedNs: process.hrtime.bigint(),
      timer: null,
      closed: false,
      dropped: false,
      inference: INFERENCE_PATHS.has(path),
      stream: null,
    };
    if (ex.inference) this.running++;
    res.on("close", () => this.onClose(res, ex));
    const requestId = req.headers["x-request-id"];
    if (typeof requestId === "string") res.setHeader("x-request-id", requestId);
    if (req.method === "GET" || req.method === "HEAD") {
      this.received(req, res, ex, path, undefined, undefined);
      return;
    }
    if (path === TRANSCRIPTIONS) {
      // multipart/form-data, as FastAPI's `Form()` reads it; a body that is not a form leaves `parsed` undefined (400)
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const bytes = Buffer.concat(chunks);
        const form = parseForm(bytes, String(req.headers["content-type"] ?? ""));
        this.received(req, res, ex, path, form, form, bytes.toString("latin1"), bytes);
      });
      return;
    }
    this.readBody(req, (raw) => {
      let body: unknown;
      let parsed: Json | undefined;
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw);
          if (isObject(body)) parsed = body;
        } catch {
          body = raw;
        }
      }
      this.received(req, res, ex, path, body, parsed, raw);
    });
  }

  /** A stream's record, kept among the last `recordLimit` and tied to its exchange. */
  private startStream(
    ex: Exchange,
    seq: number,
    path: string,
    model: string,
    plannedTokens: number,
  ): MutableStream {
    const record: MutableStream = {
      seq,
      path,
      model,
      plannedTokens,
      tokensSent: 0,
      completed: false,
      aborted: false,
      dropped: false,
      stalled: false,
      startedAt: Date.now(),
      endedAt: null,
      receivedNs: String(ex.receivedNs),
      firstTokenNs: null,
    };
    const streams = this.internal.streams;
    streams.push(record);
    if (streams.length > this.recordLimit) streams.shift();
    ex.stream = record;
    return record;
  }

  private readBody(req: IncomingMessage, done: (raw: string) => void): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      done(chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString());
    });
  }

  private onClose(res: ServerResponse, ex: Exchange): void {
    ex.closed = true;
    if (ex.timer !== null) {
      clearTimeout(ex.timer);
      ex.timer = null;
    }
    const r = this.internal;
    r.inFlight--;
    if (ex.inference) this.running--;
    const finished = res.writableFinished;
    const stream = ex.stream;
    if (stream !== null) {
      stream.endedAt = Date.now();
      if (finished) stream.completed = true;
      else if (!ex.dropped) stream.aborted = true;
    }
    if (!finished && !ex.dropped) r.abortedRequests++;
    if (r.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private received(
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    path: string,
    body: unknown,
    parsed: Json | undefined,
    rawBody = "",
    rawBytes?: Buffer,
  ): void {
    const method = req.method ?? "GET";
    const requests = this.internal.requests;
    requests.push({
      seq: ++this.seq,
      method,
      path,
      headers: req.headers,
      body,
      rawBody,
      ...(rawBytes ? { rawBytes } : {}),
      receivedAt: Date.now(),
    });
    if (requests.length > this.recordLimit) requests.shift();
    if (ex.closed) return;

    const fault = this.faults.length === 0 ? null : this.takeFault(path);
    if (fault !== null) {
      const isStream = parsed !== undefined && parsed.stream === true;
      switch (fault.type) {
        case "status": {
          const d = defaultErrorFor(fault.status);
          const headers: Record<string, string> = {};
          if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
          if (fault.retryAfterMs !== undefined) headers["retry-after-ms"] = String(fault.retryAfterMs);
          const text = errorBody(
            fault.message ?? d.message,
            fault.errorType ?? d.type,
            fault.code === undefined ? d.code : fault.code,
          );
          sendJson(res, fault.status, text, headers);
          return;
        }
        case "delay":
          ex.timer = setTimeout(() => {
            ex.timer = null;
            if (!ex.closed) this.route(req, res, ex, path, method, body, parsed, null);
          }, fault.ms);
          return;
        case "garbage":
          if (isStream) {
            res.writeHead(200, SSE_HEADERS);
            res.end("data: {this is not json\n\n");
          } else {
            const text = "<html>upstream garbage: not json</html>";
            res.writeHead(200, { "content-type": JSON_TYPE, "content-length": text.length });
            res.end(text);
          }
          return;
        case "drop":
        case "stall":
          if (
            !isStream ||
            !(path === "/v1/chat/completions" || path === "/v1/completions" || path === "/v1/responses")
          ) {
            if (fault.type === "drop") {
              ex.dropped = true;
              req.socket.destroy();
            }
            return;
          }
          this.route(req, res, ex, path, method, body, parsed, fault);
          return;
      }
    }
    this.route(req, res, ex, path, method, body, parsed, null);
  }

  private route(
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    path: string,
    method: string,
    body: unknown,
    parsed: Json | undefined,
    streamFault: { type: "drop" | "stall"; afterTokens?: number } | null,
  ): void {
    if (Date.now() < this.bootedAt) {
      sendJson(res, 503, this.bootingBody);
      return;
    }
    const v1 = path.startsWith("/v1/");
    if (v1 && this.authHeaders !== null) {
      const auth = req.headers.authorization;
      if (auth === undefined || !this.authHeaders.has(auth)) {
        sendJson(res, 401, this.unauthorizedBody);
        return;
      }
    }
    const isPost = method === "POST";
    if (isPost && INFERENCE_PATHS.has(path)) {
      if (parsed === undefined) {
        const message =
          body === undefined
            ? "Request body is required"
            : typeof body === "string"
              ? "Malformed JSON in request body"
              : "Request body must be a JSON object";
        sendJson(res, 400, errorBody(message, "invalid_request_error", null));
        return;
      }
      const model = this.resolveModel(res, parsed);
      if (model === null) return;
      if (path === "/v1/chat/completions" || path === "/v1/completions") {
        this.generate(res, ex, path, model, parsed, streamFault);
      } else if (path === "/v1/responses") {
        this.responses(res, ex, model, parsed, streamFault);
      } else if (path === "/v1/embeddings") {
        this.embeddings(res, model, parsed);
      } else if (path === "/v1/rerank") {
        this.rerank(res, model, parsed);
      } else if (path === "/v1/score") {
        this.score(res, model, parsed);
      } else if (path === TRANSCRIPTIONS) {
        this.transcription(res, parsed);
      } else {
        this.images(res, parsed);
      }
      return;
    }
    if (method === "GET" || method === "HEAD") {
      if (path === "/health") {
        res.writeHead(200, { "content-length": 0 });
        res.end();
        return;
      }
      if (path === "/v1/models") {
        sendJson(res, 200, this.modelsBody);
        return;
      }
      if (path.startsWith("/v1/models/")) {
        let id = path.slice("/v1/models/".length);
        try {
          id = decodeURIComponent(id);
        } catch {}
        const card = this.modelBodies.get(id);
        if (card !== undefined) sendJson(res, 200, card);
        else
          sendJson(
            res,
            404,
            errorBody("The model does not exist.", "invalid_request_error", "model_not_found"),
          );
        return;
      }
      if (path === "/metrics") {
        this.metrics(res);
        return;
      }
    }
    if (INFERENCE_PATHS.has(path) || GET_PATHS.has(path))
      sendJson(res, 405, '{"detail":"Method Not Allowed"}');
    else sendJson(res, 404, '{"detail":"Not Found"}');
  }

  private resolveModel(res: ServerResponse, body: Json): string | null {
    const model = body.model;
    if (model === undefined || model === null) return this.models[0]!;
    if (typeof model === "string" && this.modelSet.has(model)) return model;
    const name = typeof model === "string" ? model : JSON.stringify(model);
    sendJson(
      res,
      404,
      errorBody(`The model \`${name}\` does not exist.`, "invalid_request_error", "model_not_found", "model"),
    );
    return null;
  }

  private badRequest(res: ServerResponse, message: string, param: string | null): void {
    sendJson(res, 400, errorBody(message, "invalid_request_error", null, param));
  }

  // ---- completions ------------------------------------------------------------------------------------

  private generate(
    res: ServerResponse,
    ex: Exchange,
    path: string,
    model: string,
    body: Json,
    streamFault: { type: "drop" | "stall"; afterTokens?: number } | null,
  ): void {
    const chat = path === "/v1/chat/completions";
    let promptTokens: number;
    if (chat) {
      const messages = body.messages;
      if (!Array.isArray(messages) || messages.length === 0) {
        this.badRequest(res, "messages must be a non-empty array", "messages");
        return;
      }
      promptTokens = 0;
      for (const m of messages) {
        if (!isObject(m)) {
          this.badRequest(res, "each message must be an object", "messages");
          return;
        }
        promptTokens += contentWords(m.content);
      }
    } else {
      promptTokens = promptWords(body.prompt);
      if (promptTokens < 0) {
        this.badRequest(res, "prompt must be a string, an array of strings or token ids", "prompt");
        return;
      }
    }
    const limit = (chat ? (body.max_completion_tokens ?? body.max_tokens) : body.max_tokens) ?? null;
    if (limit !== null && !isInt(limit, 1, Number.MAX_SAFE_INTEGER)) {
      this.badRequest(res, "max_tokens must be a positive integer", "max_tokens");
      return;
    }
    const maxTokens = limit ?? this.tuning.defaultMaxTokens;
    if (promptTokens + maxTokens > this.maxModelLen) {
      this.badRequest(
        res,
        `This model's maximum context length is ${this.maxModelLen} tokens. However, you requested ` +
          `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). ` +
          "Please reduce the length of the messages or completion.",
        "max_tokens",
      );
      return;
    }
    const n = body.n ?? 1;
    if (!isInt(n, 1, 128)) {
      this.badRequest(res, "n must be an integer between 1 and 128", "n");
      return;
    }
    const streamOptions = isObject(body.stream_options) ? body.stream_options : null;
    const gen: Generation = {
      chat,
      path,
      model,
      promptTokens,
      maxTokens,
      n,
      finish: limit === null ? "stop" : "length",
      includeUsage: streamOptions !== null && streamOptions.include_usage === true,
      continuousUsage: streamOptions !== null && streamOptions.continuous_usage_stats === true,
    };
    if (body.stream === true) {
      this.stream(res, ex, gen, streamFault);
      return;
    }
    const { ttftMs, interTokenDelayMs } = this.tuning;
    const latency = ttftMs + (maxTokens - 1) * interTokenDelayMs;
    if (latency > 0) {
      ex.timer = setTimeout(() => {
        ex.timer = null;
        if (!ex.closed) this.completion(res, gen);
      }, latency);
    } else {
      this.completion(res, gen);
    }
  }

  /** Non-stream hot path: everything but `id` and `created` comes from a cache keyed by the request shape. */
  private completion(res: ServerResponse, gen: Generation): void {
    const key = `${gen.chat ? "c" : "t"}\u0000${gen.model}\u0000${gen.promptTokens}\u0000${gen.maxTokens}\u0000${gen.n}\u0000${gen.finish}`;
    let rest = this.cache.get(key);
    if (rest === undefined) {
      const text = JSON.stringify(fakeCompletionText(gen.promptTokens, gen.maxTokens));
      const choices: string[] = [];
      for (let i = 0; i < gen.n; i++) {
        choices.push(
          gen.chat
            ? `{"index":${i},"message":{"role":"assistant","content":${text},"tool_calls":[]},"logprobs":null,"finish_reason":"${gen.finish}","stop_reason":null}`
            : `{"index":${i},"text":${text},"logprobs":null,"finish_reason":"${gen.finish}","stop_reason":null}`,
        );
      }
      const completionTokens = gen.maxTokens * gen.n;
      rest =
        `"model":${JSON.stringify(gen.model)},"choices":[${choices.join(",")}],"usage":{"prompt_tokens":${gen.promptTokens},` +
        `"completion_tokens":${completionTokens},"total_tokens":${gen.promptTokens + completionTokens}}}`;
      if (this.cache.size >= MAX_CACHE) this.cache.clear();
      this.cache.set(key, rest);
    }
    this.promptTokensTotal += gen.promptTokens;
    this.generationTokensTotal += gen.maxTokens * gen.n;
    const created = Math.floor(Date.now() / 1000);
    const body = gen.chat
      ? `{"id":"chatcmpl-${++this.seq}","object":"chat.completion","created":${created},${rest}`
      : `{"id":"cmpl-${++this.seq}","object":"text_completion","created":${created},${rest}`;
    res.writeHead(200, { "content-type": JSON_TYPE, "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  private stream(
    res: ServerResponse,
    ex: Exchange,
    gen: Generation,
    fault: { type: "drop" | "stall"; afterTokens?: number } | null,
  ): void {
    const { ttftMs, interTokenDelayMs, usageMode } = this.tuning;
    const seq = ++this.seq;
    const created = Math.floor(Date.now() / 1000);
    const head = gen.chat
      ? `data: {"id":"chatcmpl-${seq}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(gen.model)},"choices":[`
      : `data: {"id":"cmpl-${seq}","object":"text_completion","created":${created},"model":${JSON.stringify(gen.model)},"choices":[`;
    const forced = usageMode === "every-chunk";
    const everyChunk = forced || (gen.includeUsage && gen.continuousUsage);
    const finalUsage = forced || gen.includeUsage;
    const prompt = gen.promptTokens;
    const usage = (c: number) =>
      `{"prompt_tokens":${prompt},"completion_tokens":${c},"total_tokens":${prompt + c}}`;
    const tail = (c: number) => (everyChunk ? `],"usage":${usage(c)}}\n\n` : "]}\n\n");

    const record = this.startStream(ex, seq, gen.path, gen.model, gen.maxTokens * gen.n);
    this.promptTokensTotal += prompt;

    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();

    const faultAt = fault === null ? -1 : (fault.afterTokens ?? 0);
    const sync = interTokenDelayMs <= 0;
    let position = 0;

    /** Writes one position (a token per choice); false when a fault ended the stream. */
    const emit = (): boolean => {
      if (position === 0 && gen.chat) {
        for (let c = 0; c < gen.n; c++) {
          res.write(
            `${head}{"index":${c},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}${tail(record.tokensSent)}`,
          );
        }
      }
      for (let c = 0; c < gen.n; c++) {
        if (record.tokensSent === faultAt) {
          if (fault!.type === "drop") {
            ex.dropped = true;
            record.dropped = true;
            // Flush what was written (the sync path corks) so the client gets exactly K tokens first.
            res.uncork();
            res.socket?.destroy();
          } else {
            record.stalled = true;
          }
          return false;
        }
        const text = tokenText(prompt, position);
        if (record.tokensSent === 0) record.firstTokenNs = String(process.hrtime.bigint());
        record.tokensSent++;
        this.generationTokensTotal++;
        res.write(
          gen.chat
            ? `${head}{"index":${c},"delta":{"content":"${text}"},"logprobs":null,"finish_reason":null}${tail(record.tokensSent)}`
            : `${head}{"index":${c},"text":"${text}","logprobs":null,"finish_reason":null,"stop_reason":null}${tail(record.tokensSent)}`,
        );
      }
      position++;
      return true;
    };

    const finish = () => {
      let out = "";
      for (let c = 0; c < gen.n; c++) {
        out += gen.chat
          ? `${head}{"index":${c},"delta":{},"logprobs":null,"finish_reason":"${gen.finish}","stop_reason":null}${tail(record.tokensSent)}`
          : `${head}{"index":${c},"text":"","logprobs":null,"finish_reason":"${gen.finish}","stop_reason":null}${tail(record.tokensSent)}`;
      }
      if (finalUsage) out += `${head}],"usage":${usage(record.tokensSent)}}\n\n`;
      out += "data: [DONE]\n\n";
      res.end(out);
    };

    const run = () => {
      ex.timer = null;
      if (ex.closed) return;
      if (sync) res.cork();
      for (;;) {
        if (position >= gen.maxTokens) {
          finish();
          if (sync) res.uncork();
          return;
        }
        if (!emit()) {
          if (sync) res.uncork();
          return;
        }
        if (!sync && position < gen.maxTokens) {
          ex.timer = setTimeout(run, interTokenDelayMs);
          return;
        }
      }
    };

    if (ttftMs > 0) ex.timer = setTimeout(run, ttftMs);
    else run();
  }

  // ---- responses ----------------------------------------------------------------------------------------

  /** `POST /v1/responses`: see the header for the shapes and where they come from. */
  private responses(
    res: ServerResponse,
    ex: Exchange,
    model: string,
    body: Json,
    fault: { type: "drop" | "stall"; afterTokens?: number } | null,
  ): void {
    const input = body.input;
    let promptTokens: number;
    if (typeof input === "string") promptTokens = countWords(input);
    else if (Array.isArray(input) && input.length > 0) {
      promptTokens = 0;
      for (const item of input) {
        if (!isObject(item)) {
          this.badRequest(res, "each input item must be an object", "input");
          return;
        }
        promptTokens += contentWords(item.content);
      }
    } else {
      this.badRequest(res, "input must be a string or a non-empty list of input items", "input");
      return;
    }
    if (body.instructions !== undefined && body.instructions !== null) {
      if (typeof body.instructions !== "string") {
        this.badRequest(res, "instructions must be a string", "instructions");
        return;
      }
      promptTokens += countWords(body.instructions);
    }
    const limit = body.max_output_tokens ?? null;
    if (limit !== null && !isInt(limit, 1, Number.MAX_SAFE_INTEGER)) {
      this.badRequest(res, "max_output_tokens must be a positive integer", "max_output_tokens");
      return;
    }
    if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
      // vLLM without VLLM_ENABLE_RESPONSES_API_STORE keeps no responses: an unknown id is a 404
      sendJson(
        res,
        404,
        errorBody(
          `Response with id '${String(body.previous_response_id)}' not found.`,
          "invalid_request_error",
          null,
        ),
      );
      return;
    }
    const maxTokens = limit ?? this.tuning.defaultMaxTokens;
    if (promptTokens + maxTokens > this.maxModelLen) {
      this.badRequest(
        res,
        `The engine prompt length ${promptTokens} exceeds the max_model_len ${this.maxModelLen}. Please reduce prompt.`,
        "input",
      );
      return;
    }
    const seq = ++this.seq;
    const created = Math.floor(Date.now() / 1000);
    const itemId = `msg_${seq}`;
    const text = fakeCompletionText(promptTokens, maxTokens);
    const usage = (output: number) => ({
      input_tokens: promptTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: promptTokens + output,
    });
    const part = (partText: string) => ({
      annotations: [],
      text: partText,
      type: "output_text",
      logprobs: null,
    });
    const response = (status: "in_progress" | "completed", output: unknown[], tokens: number | null) => ({
      id: `resp_${seq}`,
      created_at: created,
      incomplete_details: null,
      instructions: body.instructions ?? null,
      metadata: null,
      model,
      object: "response",
      output,
      parallel_tool_calls: true,
      temperature: typeof body.temperature === "number" ? body.temperature : 1,
      tool_choice: "auto",
      tools: [],
      top_p: typeof body.top_p === "number" ? body.top_p : 1,
      background: false,
      max_output_tokens: maxTokens,
      max_tool_calls: null,
      previous_response_id: null,
      prompt: null,
      reasoning: null,
      service_tier: "auto",
      status,
      text: null,
      top_logprobs: null,
      truncation: "disabled",
      usage: tokens === null ? null : usage(tokens),
      user: null,
    });
    const message = (status: "in_progress" | "completed", content: unknown[]) => ({
      id: itemId,
      content,
      role: "assistant",
      status,
      type: "message",
    });
    this.promptTokensTotal += promptTokens;
    const { ttftMs, interTokenDelayMs } = this.tuning;
    if (body.stream !== true) {
      const answer = () => {
        ex.timer = null;
        if (ex.closed) return;
        this.generationTokensTotal += maxTokens;
        const whole = response("completed", [message("completed", [part(text)])], maxTokens);
        sendJson(res, 200, JSON.stringify(whole));
      };
      const latency = ttftMs + (maxTokens - 1) * interTokenDelayMs;
      if (latency > 0) ex.timer = setTimeout(answer, latency);
      else answer();
      return;
    }

    const record = this.startStream(ex, seq, "/v1/responses", model, maxTokens);
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();

    let sequence = 0;
    const event = (type: string, fields: Json): string =>
      `event: ${type}\ndata: ${JSON.stringify({ ...fields, type, sequence_number: sequence++ })}\n\n`;
    const initial = response("in_progress", [], null);
    res.write(
      event("response.created", { response: initial }) +
        event("response.in_progress", { response: initial }) +
        event("response.output_item.added", { output_index: 0, item: message("in_progress", []) }) +
        event("response.content_part.added", {
          output_index: 0,
          item_id: itemId,
          content_index: 0,
          part: { type: "output_text", text: "", annotations: [], logprobs: [] },
        }),
    );
    const faultAt = fault === null ? -1 : (fault.afterTokens ?? 0);
    const finish = () => {
      const done = part(text);
      res.end(
        event("response.output_text.done", {
          output_index: 0,
          content_index: 0,
          text,
          logprobs: [],
          item_id: itemId,
        }) +
          event("response.content_part.done", {
            item_id: itemId,
            output_index: 0,
            content_index: 0,
            part: done,
          }) +
          event("response.output_item.done", { output_index: 0, item: message("completed", [done]) }) +
          event("response.completed", {
            response: response("completed", [message("completed", [done])], record.tokensSent),
          }),
      );
    };
    const run = () => {
      ex.timer = null;
      if (ex.closed) return;
      while (record.tokensSent < maxTokens) {
        if (record.tokensSent === faultAt) {
          if (fault!.type === "drop") {
            ex.dropped = true;
            record.dropped = true;
            res.socket?.destroy();
          } else record.stalled = true;
          return;
        }
        if (record.tokensSent === 0) record.firstTokenNs = String(process.hrtime.bigint());
        res.write(
          event("response.output_text.delta", {
            content_index: 0,
            delta: tokenText(promptTokens, record.tokensSent),
            item_id: itemId,
            logprobs: [],
            output_index: 0,
          }),
        );
        record.tokensSent++;
        this.generationTokensTotal++;
        if (interTokenDelayMs > 0 && record.tokensSent < maxTokens) {
          ex.timer = setTimeout(run, interTokenDelayMs);
          return;
        }
      }
      finish();
    };
    if (ttftMs > 0) ex.timer = setTimeout(run, ttftMs);
    else run();
  }

  // ---- embeddings, images, metrics --------------------------------------------------------------------

  private embeddings(res: ServerResponse, model: string, body: Json): void {
    const input = body.input;
    let items: Array<string | number[]>;
    if (typeof input === "string") items = [input];
    else if (Array.isArray(input) && input.length > 0) {
      if (input.every((x) => typeof x === "number")) items = [input as number[]];
      else if (input.every((x) => typeof x === "string" || (Array.isArray(x) && x.every(Number.isFinite))))
        items = input as Array<string | number[]>;
      else {
        this.badRequest(res, "input must be a string, an array of strings or token ids", "input");
        return;
      }
    } else {
      this.badRequest(res, "input must be a non-empty string or array", "input");
      return;
    }
    const dims = body.dimensions ?? this.embeddingDimensions;
    if (!isInt(dims, 1, 65_536)) {
      this.badRequest(res, "dimensions must be a positive integer", "dimensions");
      return;
    }
    const format = body.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") {
      this.badRequest(res, "encoding_format must be float or base64", "encoding_format");
      return;
    }
    let tokens = 0;
    const data = items.map((item, index) => {
      tokens += typeof item === "string" ? countWords(item) : item.length;
      const vector = fakeEmbedding(item, dims);
      if (format === "float") return { object: "embedding", index, embedding: vector };
      const buf = Buffer.allocUnsafe(dims * 4);
      for (let i = 0; i < dims; i++) buf.writeFloatLE(vector[i]!, i * 4);
      return { object: "embedding", index, embedding: buf.toString("base64") };
    });
    this.promptTokensTotal += tokens;
    const text = JSON.stringify({
      id: `embd-${++this.seq}`,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
    sendJson(res, 200, text);
  }

  private rerank(res: ServerResponse, model: string, body: Json): void {
    const { query, documents } = body;
    if (typeof query !== "string") {
      this.badRequest(res, "query must be a string", "query");
      return;
    }
    if (!Array.isArray(documents) || !documents.every((d) => typeof d === "string")) {
      this.badRequest(res, "documents must be a list of strings", "documents");
      return;
    }
    const topN = body.top_n ?? 0;
    if (!isInt(topN, 0, Number.MAX_SAFE_INTEGER)) {
      this.badRequest(res, "top_n must be a non-negative integer", "top_n");
      return;
    }
    let tokens = 0;
    const results = (documents as string[]).map((text, index) => {
      tokens += countWords(query) + countWords(text);
      return { index, document: { text }, relevance_score: similarity(query, text) };
    });
    results.sort((a, b) => b.relevance_score - a.relevance_score);
    this.promptTokensTotal += tokens;
    const text = JSON.stringify({
      id: `rerank-${++this.seq}`,
      model,
      usage: { total_tokens: tokens },
      results: topN > 0 ? results.slice(0, topN) : results,
    });
    sendJson(res, 200, text);
  }

  private score(res: ServerResponse, model: string, body: Json): void {
    const texts = (v: unknown): string[] | undefined =>
      typeof v === "string" ? [v] : Array.isArray(v) && v.every((x) => typeof x === "string") ? v : undefined;
    const first = texts(body.text_1);
    const second = texts(body.text_2);
    if (!first || !second) {
      this.badRequest(
        res,
        "text_1 and text_2 must be strings or lists of strings",
        first ? "text_2" : "text_1",
      );
      return;
    }
    if (first.length !== 1 && first.length !== second.length) {
      this.badRequest(res, "text_1 must be one text or as many texts as text_2", "text_1");
      return;
    }
    let tokens = 0;
    const data = second.map((text, index) => {
      const other = first.length === 1 ? first[0]! : first[index]!;
      tokens += countWords(other) + countWords(text);
      return { index, object: "score", score: similarity(other, text) };
    });
    this.promptTokensTotal += tokens;
    const text = JSON.stringify({
      id: `score-${++this.seq}`,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 },
    });
    sendJson(res, 200, text);
  }

  /**
   * vLLM 0.10.1.1's transcription (vllm/entrypoints/openai/api_server.py `create_transcriptions`,
   * serving_transcription.py `_create_speech_to_text`): `response_format` other than `text` or `json` is a 400
   * ("Currently only support response_format `text` or `json`"), a file over 25 MiB a 400 ("Maximum file size
   * exceeded."); otherwise `JSONResponse(TranscriptionResponse(text=…).model_dump())` — `{"text": …}` as JSON for
   * both formats, and no `usage` (it came in vLLM 0.10.2, PR #23576). The fake "hears" one word per 32,000 bytes of
   * audio (a second of 16 kHz 16-bit mono PCM), at least one.
   */
  private transcription(res: ServerResponse, form: Json): void {
    const file = form.file;
    if (!isObject(file) || typeof file.bytes !== "number") {
      this.badRequest(res, "Field required: file", "file");
      return;
    }
    const format = form.response_format ?? "json";
    if (format !== "text" && format !== "json") {
      this.badRequest(res, "Currently only support response_format `text` or `json`", "response_format");
      return;
    }
    if (file.bytes / 1024 ** 2 > 25) {
      this.badRequest(res, "Maximum file size exceeded.", "file");
      return;
    }
    const words = Math.max(1, Math.ceil(file.bytes / 32_000));
    sendJson(res, 200, JSON.stringify({ text: fakeCompletionText(file.bytes, words).trim() }));
  }

  /**
   * `POST /v1/images/generations` as vLLM-Omni serves it (vLLM serves no image route; vLLM-Omni's server is vLLM's
   * app with this route added, vllm_omni/entrypoints/openai/api_server.py `generate_images`): the request as
   * `ImageGenerationRequest` (vllm_omni/entrypoints/openai/protocol/images.py: `prompt` required, `n` 1–10,
   * `size` "WIDTHxHEIGHT" parsed by image_api_utils.py `parse_size`, `response_format` "b64_json" only — its
   * validator refuses "url"), validation errors answered through vLLM's handler as a 400; the answer as
   * `ImageGenerationResponse`: `{created, data: [{b64_json, url: null, revised_prompt: null}]}`, one PNG per image.
   */
  private images(res: ServerResponse, body: Json): void {
    if (typeof body.prompt !== "string") {
      this.badRequest(res, "Field required", "prompt");
      return;
    }
    const n = body.n ?? 1;
    if (!isInt(n, 1, 10)) {
      this.badRequest(res, "Input should be less than or equal to 10", "n");
      return;
    }
    const format = body.response_format ?? "b64_json";
    if (format !== "b64_json") {
      this.badRequest(
        res,
        `Value error, Only 'b64_json' response format is supported, got: ${format}`,
        "response_format",
      );
      return;
    }
    if (body.size !== undefined && body.size !== null) {
      const parts = typeof body.size === "string" ? body.size.split("x") : [];
      const sides = parts.map((p) => Number(p));
      if (parts.length !== 2 || !sides.every((v) => Number.isInteger(v) && v > 0)) {
        this.badRequest(
          res,
          `Invalid size format: '${String(body.size)}'. Expected format: 'WIDTHxHEIGHT' (e.g., '1024x1024').`,
          "size",
        );
        return;
      }
    }
    const data = Array.from({ length: n as number }, () => ({
      b64_json: PNG_1X1,
      url: null,
      revised_prompt: null,
    }));
    sendJson(res, 200, JSON.stringify({ created: Math.floor(Date.now() / 1000), data }));
  }

  private metrics(res: ServerResponse): void {
    const lines: string[] = [];
    for (const m of this.models) {
      const l = `{model_name="${m}",engine="0"}`;
      const first = m === this.models[0];
      lines.push(
        `vllm:num_requests_running${l} ${first ? this.running : 0}`,
        `vllm:num_requests_waiting${l} 0`,
        `vllm:kv_cache_usage_perc${l} ${first ? Math.min(1, this.running / 64) : 0}`,
        `vllm:prompt_tokens_total${l} ${first ? this.promptTokensTotal : 0}`,
        `vllm:generation_tokens_total${l} ${first ? this.generationTokensTotal : 0}`,
      );
    }
    const text = lines.join("\n") + "\n";
    res.writeHead(200, {
      "content-type": "text/plain; version=0.0.4",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  // ---- control routes ---------------------------------------------------------------------------------

  private handleControl(req: IncomingMessage, res: ServerResponse, path: string, raw: string): void {
    const method = req.method ?? "GET";
    if (path === "/__stats" && method === "GET") {
      sendJson(res, 200, JSON.stringify(this.internal));
      return;
    }
    if (path === "/__reset" && method === "POST") {
      this.reset();
      sendJson(res, 200, '{"ok":true}');
      return;
    }
    if ((path === "/__fault" || path === "/__config") && method === "POST") {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        sendJson(res, 400, errorBody("Malformed JSON in request body", "invalid_request_error", null));
        return;
      }
      if (path === "/__fault") {
        const specs: FaultSpec[] = [];
        for (const item of Array.isArray(body) ? body : [body]) {
          const spec = validateFault(item);
          if (typeof spec === "string") {
            sendJson(res, 400, errorBody(spec, "invalid_request_error", null));
            return;
          }
          specs.push(spec);
        }
        for (const { count, path: only, ...fault } of specs)
          this.injectFault(fault as FakeVllmFault, { count, path: only });
        sendJson(res, 200, JSON.stringify({ ok: true, pending: this.pendingFaults() }));
        return;
      }
      const tuning = validateTuning(body);
      if (typeof tuning === "string") {
        sendJson(res, 400, errorBody(tuning, "invalid_request_error", null));
        return;
      }
      this.configure(tuning);
      sendJson(res, 200, JSON.stringify({ ok: true, ...this.tuning }));
      return;
    }
    sendJson(res, 404, '{"detail":"Not Found"}');
  }
}

function validateTuning(value: unknown): Partial<FakeVllmTuning> | string {
  if (!isObject(value)) return "config must be an object";
  const out: Partial<FakeVllmTuning> = {};
  for (const key of ["ttftMs", "interTokenDelayMs"] as const) {
    const v = value[key];
    if (v === undefined) continue;
    if (!isInt(v, 0, 86_400_000)) return `${key} must be a non-negative integer`;
    out[key] = v;
  }
  if (value.defaultMaxTokens !== undefined) {
    if (!isInt(value.defaultMaxTokens, 1, 1_000_000)) return "defaultMaxTokens must be a positive integer";
    out.defaultMaxTokens = value.defaultMaxTokens;
  }
  if (value.usageMode !== undefined) {
    if (value.usageMode !== "final" && value.usageMode !== "every-chunk")
      return 'usageMode must be "final" or "every-chunk"';
    out.usageMode = value.usageMode;
  }
  return out;
}

/** Starts a fake vLLM OpenAI server on 127.0.0.1 (port 0 unless given). */
export async function startFakeVllm(options: FakeVllmOptions = {}): Promise<FakeVllm> {
  const server = new FakeVllmServer(options);
  await server.listen();
  return server;
}

// ---------------------------------------------------------------------------------------------------------
// Separate-process mode

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      model: { type: "string", multiple: true },
      "max-model-len": { type: "string" },
      "api-key": { type: "string", multiple: true },
      "boot-delay-ms": { type: "string" },
      "ttft-ms": { type: "string" },
      "inter-token-delay-ms": { type: "string" },
      "default-max-tokens": { type: "string" },
      "usage-mode": { type: "string" },
      "embedding-dimensions": { type: "string" },
      "record-limit": { type: "string" },
      // like vLLM's own flags: serve https with this certificate and key (PEM files)
      "ssl-certfile": { type: "string" },
      "ssl-keyfile": { type: "string" },
    },
  });
  const num = (name: keyof typeof values): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (typeof raw !== "string" || !Number.isInteger(n) || n < 0)
      throw new Error(`--${name} must be an integer`);
    return n;
  };
  const usageMode = values["usage-mode"];
  if (usageMode !== undefined && usageMode !== "final" && usageMode !== "every-chunk")
    throw new Error('--usage-mode must be "final" or "every-chunk"');
  const certFile = values["ssl-certfile"];
  const keyFile = values["ssl-keyfile"];
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new Error("--ssl-certfile and --ssl-keyfile go together");
  const fake = await startFakeVllm({
    ...(certFile && keyFile
      ? { tls: { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") } }
      : {}),
    host: values.host,
    port: num("port"),
    model: values.model,
    maxModelLen: num("max-model-len"),
    apiKey: values["api-key"],
    bootDelayMs: num("boot-delay-ms"),
    ttftMs: num("ttft-ms"),
    interTokenDelayMs: num("inter-token-delay-ms"),
    defaultMaxTokens: num("default-max-tokens"),
    usageMode,
    embeddingDimensions: num("embedding-dimensions"),
    recordLimit: num("record-limit"),
  });
  process.stdout.write(`${JSON.stringify({ port: fake.port })}\n`);
  const stop = () => {
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (typeof require !== "undefined" && typeof module !== "undefined" && require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`vllm-upstream: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
