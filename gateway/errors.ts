/** OpenAI-shaped errors: `{ error: { message, type, param, code } }` with the right status and headers. */
import { STATUS_CODES } from "node:http";
import type { FastifyError } from "fastify";

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

/** The longest message of a backend's error answer a client gets (the backend's words, scrubbed). */
export const UPSTREAM_MESSAGE_MAX_CHARS = 500;
/** Of a backend's error answer, only this much is read for its message; a longer one is not parsed. */
const UPSTREAM_ERROR_READ_BYTES = 16_384;

type OpenAiErrorBody = ReturnType<GatewayError["body"]>;

/**
 * A backend's error answer (a status of 300 or more that the gateway relays instead of failing over) as the OpenAI
 * error a client gets: `{ error: { message, type, param, code } }`. Backends put their internals into error text —
 * file paths, addresses, tokens, stack traces — so nothing of the answer is relayed as it came: only its message
 * (the OpenAI shape's `error.message`, vLLM's flat `message`, FastAPI's `detail`, or a plain-text body), scrubbed
 * by `scrubUpstreamMessage`; `param` and `code` only when they are plain identifiers; `type` follows the status. An
 * HTML page, a body cut off or without a message gives a generic message naming the status.
 */
export function upstreamErrorBody(status: number, contentType: string, body: Uint8Array): OpenAiErrorBody {
  const whole = body.length <= UPSTREAM_ERROR_READ_BYTES;
  const text = Buffer.from(body.buffer, body.byteOffset, Math.min(body.length, UPSTREAM_ERROR_READ_BYTES))
    .toString("utf8")
    .trim();
  let fields: ErrorFields = {};
  if (whole && text.startsWith("{")) {
    try {
      fields = errorFields(JSON.parse(text));
    } catch {
      fields = {};
    }
  } else if (/^text\/plain\b/i.test(contentType)) {
    fields = { message: text, cut: !whole };
  }
  return openAiError(status, fields);
}

/**
 * An error event a backend sent in the middle of a stream (`data: {"error": …}`), parsed, as the event a client
 * gets: the same reshaping and scrubbing as `upstreamErrorBody`; the status from the error's numeric `code` (vLLM
 * puts the HTTP status there), else 500.
 */
export function upstreamStreamError(parsed: Record<string, unknown>): OpenAiErrorBody {
  const inner = parsed.error;
  const code = isRecord(inner) ? inner.code : undefined;
  const status = typeof code === "number" && code >= 400 && code <= 599 ? code : 500;
  return openAiError(status, errorFields(parsed));
}

function openAiError(status: number, fields: ErrorFields): OpenAiErrorBody {
  const message = fields.message === undefined ? "" : scrubUpstreamMessage(fields.message, fields.cut);
  return {
    error: {
      message:
        message ||
        `the model's backend answered ${status}${STATUS_CODES[status] ? ` (${STATUS_CODES[status]})` : ""}`,
      type: typeForStatus(status),
      param: identifier(fields.param),
      code: identifier(fields.code),
    },
  };
}

interface ErrorFields {
  message?: string;
  param?: unknown;
  code?: unknown;
  /** The message was cut off where reading stopped (its last word may be a part of something). */
  cut?: boolean;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The message, param and code of the error shapes backends answer with. */
function errorFields(parsed: unknown): ErrorFields {
  if (!isRecord(parsed)) return {};
  const inner = parsed.error;
  if (isRecord(inner))
    return typeof inner.message === "string"
      ? { message: inner.message, param: inner.param, code: inner.code }
      : {};
  if (typeof inner === "string") return { message: inner };
  if (typeof parsed.message === "string")
    return { message: parsed.message, param: parsed.param, code: parsed.code }; // vLLM's flat ErrorResponse
  if (typeof parsed.detail === "string") return { message: parsed.detail }; // FastAPI's HTTPException
  if (Array.isArray(parsed.detail)) {
    // FastAPI's validation errors: [{ loc, msg, type }, …]
    const messages = parsed.detail
      .slice(0, 5)
      .map((item) => (isRecord(item) && typeof item.msg === "string" ? item.msg : undefined))
      .filter((msg): msg is string => msg !== undefined);
    return messages.length > 0 ? { message: messages.join("; ") } : {};
  }
  return {};
}

/** `param` and `code` pass only as plain identifiers (`messages`, `max_tokens`, `context_length_exceeded`). */
function identifier(value: unknown): string | null {
  if (typeof value !== "string" || !/^[A-Za-z_][\w.[\]-]{0,63}$/.test(value)) return null;
  return scrubUpstreamMessage(value) === value ? value : null;
}

function typeForStatus(status: number): OpenAiErrorType {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 400 && status < 500) return "invalid_request_error";
  return "upstream_error";
}

// What a word of a backend's message must not carry. Each is tested on one whitespace-separated word of at most
// MAX_WORD characters, so none can take more than linear time.
const URL_LIKE = /[a-z][a-z0-9+.-]*:\/\//i;
const IPV4 = /(?:^|[^\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]*\d)/;
/** An IPv6 address: the compressed form (`::`) or all eight groups — not a clock time such as `12:30:45`. */
const IPV6 = /^\[?(?:[0-9a-f]{0,4}:){2,7}[0-9a-f.]{0,15}(?:%\w+)?\]?(?::\d{1,5})?$/i;
/** `host:port`, `svc.ns.svc.cluster.local:8000`, `[::1]:8000` (the last label before the port is enough). */
const HOST_PORT = /(?:[a-z][a-z0-9-]*|\]):\d{2,5}(?!\d)/i;
const INTERNAL_HOST = /\w\.(?:local|localdomain|internal|svc|cluster|lan|corp|intranet|home\.arpa)(?![\w-])/i;
const UNIX_PATH = /(?:^|[^\w./-])(?:~|\.{1,2})?\/[^\s/]+\/[^\s/]/;
/** One segment under a directory that exists on a Linux host or a worker image: `/root`, `~/.cache`, `/workspace`. */
const UNIX_ROOT_DIR =
  /^(?:~|\.{1,2})?\/(?:\.?[a-z_-]*cache|home|root|tmp|etc|var|opt|usr|mnt|srv|app|data|workspace|runpod-volume|proc|dev|sys|run|bin|lib|models?)\/?$/i;
/** A file at the root: `/config.json`, `/model.safetensors`. */
const ROOT_FILE = /^\/[\w.-]+\.[a-z][a-z0-9]{0,9}$/i;
/** A route of an HTTP API (`/v1/chat/completions`): a versioned path of lowercase words, no ids in it. */
const API_ROUTE = /^\/v\d{1,2}(?:\/[a-z_]+)+\/?$/;
const WINDOWS_PATH = /(?:^|[^\w])[a-z]:\\|\\\\[\w.$-]+\\/i;
/** Token formats with a prefix no word has: GitHub, GitLab, Slack, Stripe webhooks, RunPod, AWS. */
const DISTINCT_PREFIX_TOKEN =
  /(?:^|[^a-z0-9])(?:ghp|gho|ghu|ghs|ghr|github_pat|glpat|xox[abprs]|whsec|rpa)[-_][a-z0-9_-]{4,}|(?:AKIA|ASIA)[A-Z0-9]{12,}/i;
/**
 * OpenAI-style `sk-`, `pk_`, `rk_`, Hugging Face `hf_`: short prefixes that also start words (`hf_transfer`,
 * `sk-learn`, `HF_HUB_CACHE`), so the rest must not read as a word or an environment variable's name.
 */
const SHORT_PREFIX_TOKEN = /(?:^|[^a-z0-9])(?:sk|pk|rk|hf)[-_]([a-z0-9_-]{4,})/i;
const JWT = /eyJ[\w-]{5,}\.[\w-]{5,}/;
const LONG_HEX = /[0-9a-f]{24,}/i;
/**
 * A run of letters and digits that looks random: base64, base64url, an unprefixed key. From 16 characters with
 * two digits and both cases (`a8F3kL9pQ2xZ7mN1`), from 20 with two digits, from 32 with one — not
 * `Qwen2VLForCausalLM` or `Llama31Instruct`.
 */
const LONG_ALNUM = /[A-Za-z0-9]{16,}/g;
const KEY_VALUE =
  /(?:token|key|secret|password|passwd|pwd|signature|credentials?|auth)s?["']?[:=]["']?(?!\d+(?:\W|$))[^\s"']{2,}/i;
/** A word after which the next one is a credential: `Bearer x`, `Authorization: x`, `password= x`. */
const CREDENTIAL_LABEL =
  /^(?:bearer|basic|token|api[-_]?key|x-api-key|password|passwd|secret|authorization|credentials?)$/i;
const MAX_WORD = 200;
const LEAD = "\"'`([{<";
const TRAIL = "\"'`)]}>,;.:!?";

/**
 * A backend's error message as a client may see it: one line, at most `max` characters, each word that looks like
 * a URL, an address (IP, host:port, cluster-internal host name), a file path or a credential (a known token
 * prefix, a JWT, a long hex or base64 run, `key=value`, the word after `Bearer`/`Authorization:`) replaced by a
 * label (`[url]`, `[address]`, `[path]`, `[redacted]`), the word's quotes and punctuation kept. A word longer than
 * 200 characters is dropped as `[redacted]`. `cut`: the text was cut off, so its last word is dropped.
 */
export function scrubUpstreamMessage(text: string, cut = false, max = UPSTREAM_MESSAGE_MAX_CHARS): string {
  // control and bidi-override characters: a message must not rewrite what a client's terminal or page shows
  const words = text.replace(/[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, " ").split(/\s+/);
  if (cut) words.pop();
  let out = "";
  let redactNext = false;
  for (const word of words) {
    if (word === "") continue;
    const label = redactNext ? "[redacted]" : scrubWord(word);
    redactNext = isCredentialLabel(word);
    out += `${out === "" ? "" : " "}${label}`;
    if (out.length > max) break;
  }
  if (out.length <= max) return out;
  let end = max - 1;
  const last = out.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // do not split a surrogate pair
  return `${out.slice(0, end)}…`;
}

function isCredentialLabel(word: string): boolean {
  const { core } = unwrap(word);
  if (/^(?:bearer|basic)$/i.test(core)) return true;
  return /[:=]$/.test(word) && CREDENTIAL_LABEL.test(core.replace(/[:=]+$/, ""));
}

/** A word's core without the quotes and punctuation around it. */
function unwrap(word: string): { lead: string; core: string; trail: string } {
  let start = 0;
  let end = word.length;
  while (start < end && LEAD.includes(word[start]!)) start += 1;
  while (end > start && TRAIL.includes(word[end - 1]!)) end -= 1;
  if (start > 0 && word[start - 1] === "[" && word.includes("]", start)) start -= 1; // `[::1]:8000`
  return { lead: word.slice(0, start), core: word.slice(start, end), trail: word.slice(end) };
}

function scrubWord(word: string): string {
  if (word.length > MAX_WORD) return "[redacted]";
  const { lead, core, trail } = unwrap(word);
  const label = sensitive(word, core);
  return label === undefined ? word : `${lead}${label}${trail}`;
}

function sensitive(word: string, core: string): string | undefined {
  if (URL_LIKE.test(word)) return "[url]";
  if (
    IPV4.test(word) ||
    HOST_PORT.test(word) ||
    INTERNAL_HOST.test(word) ||
    (core.includes(":") && /[0-9a-f]/i.test(core) && isIpv6(core))
  )
    return "[address]";
  if (isPath(word, core)) return "[path]";
  if (
    DISTINCT_PREFIX_TOKEN.test(word) ||
    looksLikePrefixedToken(word) ||
    JWT.test(word) ||
    LONG_HEX.test(word) ||
    KEY_VALUE.test(word)
  )
    return "[redacted]";
  for (const run of word.match(LONG_ALNUM) ?? []) if (looksRandom(run)) return "[redacted]";
  return undefined;
}

function isIpv6(core: string): boolean {
  if (!IPV6.test(core)) return false;
  if (core.includes("::")) return true;
  let colons = 0;
  for (const c of core) if (c === ":") colons += 1;
  return colons >= 7;
}

function isPath(word: string, core: string): boolean {
  if (API_ROUTE.test(core)) return false;
  return UNIX_PATH.test(word) || UNIX_ROOT_DIR.test(core) || ROOT_FILE.test(core) || WINDOWS_PATH.test(word);
}

function looksLikePrefixedToken(word: string): boolean {
  const rest = SHORT_PREFIX_TOKEN.exec(word)?.[1];
  if (rest === undefined) return false;
  if (/\d/.test(rest)) return true;
  const lower = /[a-z]/.test(rest);
  const upper = /[A-Z]/.test(rest);
  if (lower && upper) return true;
  if (lower) return rest.length >= 20; // `hf_transfer`, `sk-learn`: a word
  return !rest.includes("_"); // `HF_HUB_ENABLE_HF_TRANSFER`: an environment variable's name
}

function looksRandom(run: string): boolean {
  let digits = 0;
  let upper = 0;
  for (let i = 0; i < run.length; i++) {
    const c = run.charCodeAt(i);
    if (c >= 48 && c <= 57) digits += 1;
    else if (c >= 65 && c <= 90) upper += 1;
  }
  const lower = run.length - digits - upper;
  if (digits === run.length) return false; // a number
  if (digits >= 2 && upper > 0 && lower > 0) return true;
  if (run.length >= 20 && digits >= 2) return true;
  return run.length >= 32 && digits >= 1;
}

/**
 * Redis out of reach (down, restarting, being restored): ioredis gives up on a command after its retries
 * (`MaxRetriesPerRequestError`) or refuses it on a closed connection. A 503 the client may retry, not a 500.
 */
export function isRedisUnavailable(error: unknown): boolean {
  const e = error as { name?: unknown; message?: unknown } | undefined;
  if (e?.name === "MaxRetriesPerRequestError") return true;
  return typeof e?.message === "string" && /^(Connection is closed\.|Stream isn't writeable)/.test(e.message);
}

/** Every failure as an OpenAI-shaped error with the right status: bad input is never a 500. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  const e = error as FastifyError;
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new GatewayError(
        413,
        "invalid_request_error",
        "The request body is too large",
        "request_too_large",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return badRequest("Content-Type must be application/json", null, "invalid_content_type");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return badRequest("The request body is empty; send a JSON object", null, "invalid_json");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return badRequest("We could not parse the JSON body of your request", null, "invalid_json");
    default:
      break;
  }
  if (isRedisUnavailable(error))
    return new GatewayError(
      503,
      "server_error",
      "The gateway cannot reach its store right now; retry shortly",
      "store_unavailable",
      null,
      { "retry-after": "2" },
    );
  if (
    e instanceof SyntaxError ||
    (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500)
  ) {
    return badRequest(
      e instanceof SyntaxError ? "We could not parse the JSON body of your request" : e.message,
      null,
      "invalid_request",
    );
  }
  return new GatewayError(
    500,
    "server_error",
    "The gateway failed to handle the request; it has been logged",
    "internal_error",
  );
}

const ERROR_KEY = Buffer.from('"error"');
/** The same first key, for an answer already read as text. */
const ERROR_FIRST_KEY = /^[ \t\r\n]*\{[ \t\r\n]*"error"/;

/**
 * Whether a JSON answer is only an OpenAI error envelope, `{"error": {…}}`: its first key is "error" (success bodies
 * start with "id" or "object"), so only such answers are parsed.
 */
export function isErrorEnvelope(body: Uint8Array | string): boolean {
  if (typeof body === "string" ? !ERROR_FIRST_KEY.test(body) : !startsWithErrorKey(body)) return false;
  try {
    const text =
      typeof body === "string"
        ? body
        : // a view of the same bytes, not a copy
          Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8");
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return false;
    const keys = Object.keys(parsed);
    const error = (parsed as { error?: unknown }).error;
    return keys.length === 1 && typeof error === "object" && error !== null;
  } catch {
    return false;
  }
}

function startsWithErrorKey(body: Uint8Array): boolean {
  let i = 0;
  while (i < body.length && isJsonSpace(body[i])) i += 1;
  if (body[i] !== 0x7b) return false; // {
  i += 1;
  while (i < body.length && isJsonSpace(body[i])) i += 1;
  return Buffer.compare(body.subarray(i, i + ERROR_KEY.length), ERROR_KEY) === 0;
}

const isJsonSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
