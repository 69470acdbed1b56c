/**
 * Speech-to-text uploads (`POST /v1/audio/transcriptions`): a multipart/form-data body, read whole (within its own
 * body limit), checked enough to answer a clear 400/413 before anything is queued or forwarded, then sent to the
 * worker as the very bytes the client sent (the boundary and every part unchanged; nothing is re-encoded).
 *
 * Rules:
 * 1. The body is split by RFC 7578 / RFC 2046 §5.1.1: `--boundary` delimiters, each part's headers up to a blank
 *    line, `Content-Disposition: form-data; name="…"` (and `filename="…"` for the file), the close delimiter
 *    `--boundary--`. A body that does not parse so is a 400 `invalid_multipart`, never a 500.
 * 2. The form is OpenAI's `CreateTranscriptionRequest` (https://platform.openai.com/docs/api-reference/audio/createTranscription):
 *    `file` and `model` required; `response_format` one of json, text, srt, verbose_json, vtt. What the engine does
 *    with the others (language, prompt, temperature, timestamp_granularities[]) is the engine's to judge.
 * 3. The file may be up to 25 MB, OpenAI's upload limit for transcriptions (its speech-to-text guide,
 *    https://platform.openai.com/docs/guides/speech-to-text#overview), which vLLM enforces as 25 MiB citing that
 *    page (`MAX_AUDIO_CLIP_FILESIZE_MB = 25`, `len(audio_data) / 1024**2 > MAX_AUDIO_CLIP_FILESIZE_MB`, in
 *    vllm/entrypoints/openai/serving_transcription.py). The whole body may carry 1 MiB more for the other fields.
 * 4. No stream: the gateway relays a transcription as one answer (vLLM's transcription stream is its own extension).
 */

import { badRequest, GatewayError } from "./errors";
import type { Endpoint, InferenceRequest } from "./validate";

/** The largest audio file a transcription may upload (rule 3). */
export const MAX_AUDIO_FILE_BYTES = 25 * 1024 * 1024;
/** The largest transcription body: the file and 1 MiB for the form's other fields and part headers. */
export const MAX_AUDIO_BODY_BYTES = MAX_AUDIO_FILE_BYTES + 1024 * 1024;
/** More parts than a transcription form has fields (with room for repeated `timestamp_granularities[]`). */
const MAX_PARTS = 64;
/** A text field longer than this is no transcription parameter (`prompt` is the longest, a few hundred tokens). */
const MAX_FIELD_BYTES = 64 * 1024;

/** OpenAI's `response_format` values for transcriptions (rule 2). */
const RESPONSE_FORMATS = ["json", "text", "srt", "verbose_json", "vtt"];

/** What the multipart parser leaves on the request: the form's text fields and the file's size, with the bytes. */
export interface MultipartUpload {
  /** The form's `model` field when there is one (read by the refusal's audit line, as a JSON body's is). */
  readonly model?: string;
  /** Text fields by name; a name given more than once (`timestamp_granularities[]`) keeps every value. */
  readonly fields: Readonly<Record<string, string | string[]>>;
  /** The uploaded file, when there is one. */
  readonly file?: { readonly name: string; readonly filename: string; readonly bytes: number };
  /** The body exactly as it arrived, and its Content-Type (with the boundary): what goes upstream. */
  readonly raw: Buffer;
  readonly contentType: string;
}

const invalid = (message: string) => badRequest(message, null, "invalid_multipart");

/** The boundary of a `multipart/form-data` Content-Type, or the 400. */
export function boundaryOf(contentType: string): string {
  const [type, ...params] = contentType.split(";");
  if (type?.trim().toLowerCase() !== "multipart/form-data")
    throw invalid("Content-Type must be multipart/form-data for /v1/audio/transcriptions");
  for (const param of params) {
    const eq = param.indexOf("=");
    if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== "boundary") continue;
    let value = param.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    // RFC 2046 §5.1.1: 1 to 70 characters
    if (value.length >= 1 && value.length <= 70) return value;
  }
  throw invalid("The multipart Content-Type has no valid boundary parameter");
}

const CRLF = Buffer.from("\r\n");
const HEADERS_END = Buffer.from("\r\n\r\n");

/** Split a multipart/form-data body (rule 1); throws the 400 (or 413 for the file) naming what is wrong. */
export function parseMultipart(raw: Buffer, contentType: string): MultipartUpload {
  const boundary = boundaryOf(contentType);
  const delimiter = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  // the first delimiter opens the body or follows a preamble line
  let at = raw.subarray(0, delimiter.length).equals(delimiter) ? 0 : raw.indexOf(next);
  if (at === -1) throw invalid("The multipart body has no part delimited by its boundary");
  if (at > 0) at += 2;
  const fields: Record<string, string | string[]> = {};
  let file: MultipartUpload["file"];
  for (let parts = 0; ; parts++) {
    let cursor = at + delimiter.length;
    if (raw[cursor] === 0x2d && raw[cursor + 1] === 0x2d) break; // "--": the close delimiter
    // transport padding (spaces, tabs) may follow a delimiter before its CRLF
    while (raw[cursor] === 0x20 || raw[cursor] === 0x09) cursor++;
    if (raw[cursor] !== 0x0d || raw[cursor + 1] !== 0x0a)
      throw invalid("The multipart body is malformed: a boundary delimiter is not followed by a line break");
    if (parts === MAX_PARTS) throw invalid(`The multipart body has more than ${MAX_PARTS} parts`);
    const headersStart = cursor + 2;
    const headersEnd = raw.indexOf(HEADERS_END, headersStart - 2);
    if (headersEnd === -1 || headersEnd - headersStart > 8 * 1024)
      throw invalid("The multipart body is malformed: a part's headers do not end with a blank line");
    const contentStart = headersEnd + 4;
    const end = raw.indexOf(next, contentStart);
    if (end === -1)
      throw invalid(
        "The multipart body is cut off: the last part is not closed by the boundary (--boundary--)",
      );
    const disposition = dispositionOf(
      raw.toString("latin1", headersStart, Math.max(headersStart, headersEnd)),
    );
    const size = Math.max(0, end - contentStart);
    if (disposition.filename !== undefined) {
      if (disposition.name === "file") {
        if (file) throw badRequest("The form has more than one file; send one audio file as file", "file");
        file = { name: disposition.name, filename: disposition.filename, bytes: size };
      }
    } else {
      if (size > MAX_FIELD_BYTES)
        throw badRequest(`The form field ${disposition.name} is too long`, disposition.name);
      const value = raw.toString("utf8", contentStart, contentStart + size);
      const prior = fields[disposition.name];
      fields[disposition.name] =
        prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
    }
    at = end + 2;
  }
  const model = typeof fields.model === "string" ? fields.model : undefined;
  return { ...(model !== undefined ? { model } : {}), fields, file, raw, contentType };
}

/** `name` and `filename` of a part's Content-Disposition (RFC 7578 §4.2); the 400 when there is none. */
function dispositionOf(headers: string): { name: string; filename?: string } {
  for (const line of headers.split(CRLF.toString())) {
    const colon = line.indexOf(":");
    if (colon === -1 || line.slice(0, colon).trim().toLowerCase() !== "content-disposition") continue;
    const value = line.slice(colon + 1);
    if (!/^\s*form-data\s*(;|$)/i.test(value)) break;
    const name = paramOf(value, "name");
    if (name === undefined || name.length === 0) break;
    const filename = paramOf(value, "filename");
    return filename === undefined ? { name } : { name, filename };
  }
  throw invalid('The multipart body is malformed: a part has no Content-Disposition: form-data; name="…"');
}

/** A parameter of a header value: quoted (backslash escapes) or a token. */
function paramOf(value: string, param: string): string | undefined {
  const match = new RegExp(`;\\s*${param}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, "i").exec(value);
  if (!match) return undefined;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2];
}

/** Rules 2–4: the upload as an inference request, or the 400/413 naming the field. */
export function validateTranscription(endpoint: Endpoint, upload: unknown): InferenceRequest {
  if (!isUpload(upload))
    throw badRequest(
      "Send the transcription as multipart/form-data with a file and a model field (as the OpenAI clients do)",
      null,
      "invalid_content_type",
    );
  const { fields, file } = upload;
  const model = upload.model;
  if (model === undefined || model.length === 0)
    throw badRequest("you must provide a model parameter", "model");
  if (model.length > 256) throw badRequest("model is too long", "model");
  if (!file) throw badRequest("you must provide a file parameter: the audio file to transcribe", "file");
  if (file.bytes === 0) throw badRequest("The audio file is empty", "file");
  if (file.bytes > MAX_AUDIO_FILE_BYTES)
    throw new GatewayError(
      413,
      "invalid_request_error",
      `The audio file is ${(file.bytes / 1024 / 1024).toFixed(1)} MB; uploads are limited to 25 MB: split or compress it`,
      "request_too_large",
      "file",
    );
  const format = fields.response_format;
  if (format !== undefined && (typeof format !== "string" || !RESPONSE_FORMATS.includes(format)))
    throw badRequest(`response_format must be one of ${RESPONSE_FORMATS.join(", ")}`, "response_format");
  const stream = fields.stream;
  if (stream !== undefined && !(typeof stream === "string" && /^(false|0|)$/i.test(stream.trim())))
    throw badRequest("stream is not supported on /v1/audio/transcriptions; drop stream", "stream");
  const body: Record<string, unknown> = {};
  for (const name in fields) if (name !== "model") body[name] = fields[name];
  body.model = model;
  return {
    endpoint,
    model,
    stream: false,
    wantsUsage: false,
    body,
    upload: { bytes: upload.raw, contentType: upload.contentType },
  };
}

const isUpload = (v: unknown): v is MultipartUpload =>
  v !== null && typeof v === "object" && Buffer.isBuffer((v as MultipartUpload).raw);
