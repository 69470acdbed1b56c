/**
 * Just enough validation of request bodies to answer a clear 400 before anything is queued or forwarded;
 * fields the gateway does not interpret pass through to the engine untouched.
 */
import type { ApiRoute } from "../core/engine-routes";
import { badRequest, type GatewayError } from "./errors";

export type Endpoint =
  | "chat"
  | "completion"
  | "response"
  | "embedding"
  | "rerank"
  | "score"
  | "image"
  | "transcription";

/** Each endpoint's path under `/v1` (the engine's base URL ends in `/v1`). */
export const ENDPOINT_PATHS: Readonly<Record<Endpoint, string>> = {
  chat: "/chat/completions",
  completion: "/completions",
  response: "/responses",
  embedding: "/embeddings",
  rerank: "/rerank",
  score: "/score",
  image: "/images/generations",
  transcription: "/audio/transcriptions",
};

/** Endpoints whose answer has no generated tokens (nothing is reserved for an answer's tokens). */
export const POOLING_ENDPOINTS: ReadonlySet<Endpoint> = new Set(["embedding", "rerank", "score"]);

/** The route a client calls for an endpoint (which kinds and engines serve it: `core/engine-routes.ts`). */
export const endpointRoute = (endpoint: Endpoint): ApiRoute => `/v1${ENDPOINT_PATHS[endpoint]}` as ApiRoute;

export interface InferenceRequest {
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly stream: boolean;
  readonly wantsUsage: boolean;
  /** Completion tokens the client allows (max_tokens / max_completion_tokens; Responses: max_output_tokens). */
  readonly maxTokens?: number;
  readonly body: Record<string, unknown>;
  /** The body's JSON text as the client sent it: forwarded as is when nothing in it changes (no re-serializing). */
  readonly json?: string;
  /**
   * A multipart upload (transcriptions, `multipart.ts`): forwarded as these bytes with this Content-Type, unchanged;
   * `body` then holds only the form's text fields.
   */
  readonly upload?: { readonly bytes: Buffer; readonly contentType: string };
}

/** Images one request may ask for: vLLM-Omni's bound (`n: int = Field(default=1, ge=1, le=10)`), OpenAI's too. */
export const MAX_IMAGES_PER_REQUEST = 10;
/** `WIDTHxHEIGHT`, each a positive integer (vLLM-Omni's `parse_size`); at most 5 digits, so nothing absurd passes. */
const IMAGE_SIZE = /^[1-9]\d{0,4}x[1-9]\d{0,4}$/;

/**
 * Pixels one image request may ask for (width × height × n): the answer must fit the 64 MiB the gateway reads from
 * a worker (`MAX_BODY_BYTES` in inference.ts), and a PNG of W×H RGB pixels is at most ~3 bytes a pixel, 4 once
 * base64-encoded. 2^24: ten 1024x1024 images, or four 2048x2048.
 */
export const MAX_IMAGE_PIXELS_PER_REQUEST = 2 ** 24;

/** Images a valid image request asks for (`n`, default 1): what its audit line records. */
export const imagesRequested = (body: Record<string, unknown>): number =>
  typeof body.n === "number" ? body.n : 1;

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function positiveInt(body: Record<string, unknown>, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1)
    throw badRequest(`${field} must be a positive integer`, field);
  return v;
}

export function validateInference(endpoint: Endpoint, body: unknown, json?: string): InferenceRequest {
  if (!isObject(body)) throw badRequest("The request body must be a JSON object");
  const model = body.model;
  if (typeof model !== "string" || model.length === 0)
    throw badRequest("you must provide a model parameter", "model");
  if (model.length > 256) throw badRequest("model is too long", "model");
  const stream = body.stream;
  if (stream !== undefined && stream !== null && typeof stream !== "boolean")
    throw badRequest("stream must be a boolean", "stream");
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) {
    throw badRequest("stream_options must be an object", "stream_options");
  }
  const streaming =
    stream === true && (endpoint === "chat" || endpoint === "completion" || endpoint === "response");
  if (stream === true && !streaming) throw badRequest(`stream is not supported on this endpoint`, "stream");
  // the Responses API's own stream_options (include_obfuscation) pass through; usage always comes in its last event
  if (streamOptions && !streaming && endpoint !== "response")
    throw badRequest("stream_options is only allowed with stream: true", "stream_options");

  switch (endpoint) {
    case "chat": {
      const messages = body.messages;
      if (!Array.isArray(messages) || messages.length === 0)
        throw badRequest("messages must be a non-empty array", "messages");
      messages.forEach((m, i) => {
        if (!isObject(m) || typeof m.role !== "string")
          throw badRequest(`messages[${i}] must be an object with a role`, `messages[${i}].role`);
      });
      break;
    }
    case "completion": {
      const prompt = body.prompt;
      if (typeof prompt !== "string" && !(Array.isArray(prompt) && prompt.length > 0)) {
        throw badRequest("prompt must be a string or a non-empty array", "prompt");
      }
      break;
    }
    case "response": {
      // OpenAI's Responses API (https://platform.openai.com/docs/api-reference/responses/create), as vLLM serves it
      // (`ResponsesRequest` in vllm/entrypoints/openai/protocol.py: `input: str | list[item]`). Stored responses
      // are not kept by the stack's workers (they come and go with demand), so what needs them is refused here.
      const input = body.input;
      if (!((typeof input === "string" && input.length > 0) || (Array.isArray(input) && input.length > 0)))
        throw badRequest("input must be a non-empty string or a non-empty array of input items", "input");
      if (body.previous_response_id !== undefined && body.previous_response_id !== null)
        throw badRequest(
          "previous_response_id is not supported: responses are not stored; send the conversation in input",
          "previous_response_id",
        );
      if (body.background === true)
        throw badRequest("background responses are not supported: responses are not stored", "background");
      break;
    }
    case "embedding": {
      const input = body.input;
      const ok =
        (typeof input === "string" && input.length > 0) || (Array.isArray(input) && input.length > 0);
      if (!ok) throw badRequest("input must be a non-empty string or array", "input");
      const format = body.encoding_format;
      if (format !== undefined && format !== "float" && format !== "base64") {
        throw badRequest('encoding_format must be "float" or "base64"', "encoding_format");
      }
      break;
    }
    case "rerank": {
      // vLLM's RerankRequest (vllm/entrypoints/openai/protocol.py, Jina/Cohere shape): query, documents, top_n
      const query = body.query;
      if (!((typeof query === "string" && query.length > 0) || isObject(query)))
        throw badRequest("query must be a non-empty string", "query");
      if (!((Array.isArray(body.documents) && body.documents.length > 0) || isObject(body.documents)))
        throw badRequest("documents must be a non-empty array of strings", "documents");
      const topN = body.top_n;
      if (topN !== undefined && (typeof topN !== "number" || !Number.isInteger(topN) || topN < 0))
        throw badRequest("top_n must be a whole number ≥ 0 (0: every document)", "top_n");
      break;
    }
    case "score": {
      // vLLM's ScoreRequest (same file): text_1 and text_2, each a string or a list of strings
      for (const field of ["text_1", "text_2"]) {
        const v = body[field];
        const ok =
          (typeof v === "string" && v.length > 0) || (Array.isArray(v) && v.length > 0) || isObject(v);
        if (!ok) throw badRequest(`${field} must be a non-empty string or array of strings`, field);
      }
      break;
    }
    case "image": {
      // vLLM-Omni's ImageGenerationRequest (vllm_omni/entrypoints/openai/protocol/images.py): `prompt`
      // required; `n` 1–10 (`Field(default=1, ge=1, le=10)`); `size` "WIDTHxHEIGHT", positive integers, any
      // dimensions (`parse_size` in image_api_utils.py), absent: the model's default; `response_format` b64_json
      // only (its validator refuses "url": "Only 'b64_json' … is supported"). Checked here so the client gets a 400
      // naming the field and the fix before anything is queued or a worker is started for it.
      if (typeof body.prompt !== "string" || body.prompt.length === 0)
        throw badRequest("prompt must be a non-empty string", "prompt");
      const n = body.n;
      if (
        n !== undefined &&
        n !== null &&
        (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_IMAGES_PER_REQUEST)
      )
        throw badRequest(
          `n must be a whole number from 1 to ${MAX_IMAGES_PER_REQUEST} (images per request)`,
          "n",
        );
      const size = body.size;
      if (size !== undefined && size !== null && !(typeof size === "string" && IMAGE_SIZE.test(size)))
        throw badRequest(
          `size must be "WIDTHxHEIGHT" in pixels, e.g. "1024x1024" (or leave it out for the model's default); got ${JSON.stringify(size)}`,
          "size",
        );
      if (typeof size === "string") {
        const [width, height] = size.split("x").map(Number) as [number, number];
        const count = typeof n === "number" ? n : 1;
        if (width * height * count > MAX_IMAGE_PIXELS_PER_REQUEST)
          throw badRequest(
            `size ${size} × n ${count} is more than ${MAX_IMAGE_PIXELS_PER_REQUEST} pixels per request (the answer would not fit the 64 MiB the gateway reads from a worker); ask for a smaller size or fewer images`,
            "size",
          );
      }
      const format = body.response_format;
      if (format !== undefined && format !== null && format !== "b64_json")
        throw badRequest(
          format === "url"
            ? 'response_format "url" is not supported: the image engine (vllm-omni) returns images inline only; use "b64_json"'
            : 'response_format must be "b64_json"',
          "response_format",
        );
      break;
    }
  }
  const maxTokens =
    endpoint === "response"
      ? positiveInt(body, "max_output_tokens")
      : (positiveInt(body, "max_tokens") ?? positiveInt(body, "max_completion_tokens"));
  return {
    endpoint,
    model,
    stream: streaming,
    // a Responses stream always carries usage (in response.completed): nothing to hide from the client
    wantsUsage:
      streaming &&
      (endpoint === "response" || (isObject(streamOptions) && streamOptions.include_usage === true)),
    maxTokens,
    body,
    json,
  };
}

/**
 * The deepest nesting of arrays and objects a request body may have. OpenAI request bodies need a handful of
 * levels (a tool's JSON schema a few more); a deeper body is refused before it is parsed, so nothing that walks a
 * body afterwards (the token estimate, serializing) can run out of stack.
 */
export const MAX_JSON_DEPTH = 64;

/** Keys an object may have before duplicates are looked up in a set instead of compared pairwise. */
const PAIRWISE_KEYS = 16;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

// The scan's state, reused by every call (it is synchronous): per open level whether it is an object, where its
// keys start in `keyStart`/`keyEnd`, and its key set once it has many keys or an escaped one.
const levelIsObject = new Uint8Array(MAX_JSON_DEPTH + 1);
const levelFirstKey = new Int32Array(MAX_JSON_DEPTH + 1);
const levelKeys: (Set<string> | undefined)[] = new Array(MAX_JSON_DEPTH + 1).fill(undefined);
let keyStart = new Int32Array(64);
let keyEnd = new Int32Array(64);

/**
 * One pass over a JSON text before it is parsed: refuses nesting deeper than `MAX_JSON_DEPTH` and a key appearing
 * twice in one object (`JSON.parse` keeps the last, while the text forwarded upstream has both: the gateway
 * would check one value and the engine might read the other). Iterative, no allocation per character: strings are
 * skipped with `indexOf`, keys compared in place (a set only for objects with many keys, or escaped ones).
 * Returns the 400 to answer, or undefined; malformed JSON is left to the parser to report.
 */
export function scanJson(text: string): GatewayError | undefined {
  const length = text.length;
  let depth = 0;
  let keys = 0; // keys recorded for the open objects
  let expectKey = false;
  let error: GatewayError | undefined;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i + 1;
      let end = text.indexOf('"', start);
      // a quote after an odd number of backslashes is part of the string
      while (end !== -1 && text.charCodeAt(end - 1) === BACKSLASH) {
        let k = end - 2;
        while (k >= start && text.charCodeAt(k) === BACKSLASH) k--;
        if ((end - 1 - k) % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) break; // unterminated: the parser's error
      if (expectKey) {
        expectKey = false;
        const duplicate = addKey(text, depth, keys, start, end);
        if (duplicate === true) keys += 1;
        else if (duplicate !== false) {
          const shown = duplicate.length > 64 ? `${duplicate.slice(0, 64)}…` : duplicate;
          error = badRequest(
            `The JSON body has the key ${JSON.stringify(shown)} twice in one object; send each key once`,
            depth === 1 ? shown : null,
            "duplicate_key",
          );
          break;
        }
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      // { or [
      if (depth === MAX_JSON_DEPTH) {
        error = badRequest(
          `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep`,
          null,
          "too_deeply_nested",
        );
        break;
      }
      depth += 1;
      const object = c === 0x7b;
      levelIsObject[depth] = object ? 1 : 0;
      levelFirstKey[depth] = keys;
      expectKey = object;
    } else if (c === 0x7d || c === 0x5d) {
      // } or ]: the level's keys are done with
      if (depth === 0) break; // malformed: the parser's error
      keys = levelFirstKey[depth]!;
      levelKeys[depth] = undefined;
      depth -= 1;
      expectKey = false;
    } else if (c === 0x2c) expectKey = depth > 0 && levelIsObject[depth] === 1; // ,
  }
  // a text cut off (or refused) with levels still open: their key sets are not kept
  for (; depth > 0; depth--) levelKeys[depth] = undefined;
  return error;
}

/**
 * Record the key `text[start, end)` of the object open at `depth`, whose keys so far are `keyStart/keyEnd[first,
 * count)`: true when it is new (recorded at index `count`), false when it is new but recorded in the level's set,
 * else the key (a duplicate).
 */
function addKey(text: string, depth: number, count: number, start: number, end: number): boolean | string {
  let set = levelKeys[depth];
  const first = levelFirstKey[depth]!;
  let escaped = false;
  if (set === undefined) {
    for (let k = start; k < end; k++) {
      if (text.charCodeAt(k) === BACKSLASH) {
        escaped = true;
        break;
      }
    }
    if (!escaped && count - first < PAIRWISE_KEYS) {
      const size = end - start;
      for (let j = first; j < count; j++) {
        const s = keyStart[j]!;
        if (keyEnd[j]! - s !== size) continue;
        let k = 0;
        while (k < size && text.charCodeAt(s + k) === text.charCodeAt(start + k)) k++;
        if (k === size) return text.slice(start, end);
      }
      if (count === keyStart.length) {
        const grownStart = new Int32Array(count * 2);
        grownStart.set(keyStart);
        keyStart = grownStart;
        const grownEnd = new Int32Array(count * 2);
        grownEnd.set(keyEnd);
        keyEnd = grownEnd;
      }
      keyStart[count] = start;
      keyEnd[count] = end;
      return true;
    }
    // many keys, or an escaped one: from here on the object's keys are compared as strings, decoded
    set = new Set<string>();
    for (let j = first; j < count; j++) set.add(text.slice(keyStart[j]!, keyEnd[j]!));
    levelKeys[depth] = set;
  } else {
    for (let k = start; k < end && !escaped; k++) escaped = text.charCodeAt(k) === BACKSLASH;
  }
  let name: string;
  if (escaped) {
    try {
      name = JSON.parse(text.slice(start - 1, end + 1)) as string;
    } catch {
      return false; // a malformed escape: the parser's error
    }
  } else name = text.slice(start, end);
  if (set.has(name)) return name;
  set.add(name);
  return false;
}
