/**
 * Just enough validation of request bodies to answer a clear 400 before anything is queued or forwarded;
 * fields the gateway does not interpret pass through to the engine untouched.
 */
import { badRequest } from "./errors";

export type Endpoint = "chat" | "completion" | "embedding" | "image";

export const ENDPOINT_PATHS: Readonly<Record<Endpoint, string>> = {
  chat: "/chat/completions",
  completion: "/completions",
  embedding: "/embeddings",
  image: "/images/generations",
};

/** Model kinds an endpoint serves (a completion model may also be asked through chat templates). */
export const ENDPOINT_KINDS: Readonly<Record<Endpoint, readonly string[]>> = {
  chat: ["chat"],
  completion: ["chat", "completion"],
  embedding: ["embedding"],
  image: ["image"],
};

export interface InferenceRequest {
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly stream: boolean;
  readonly wantsUsage: boolean;
  /** Completion tokens the client allows (max_tokens / max_completion_tokens), if it said. */
  readonly maxTokens?: number;
  readonly body: Record<string, unknown>;
  /** The body's JSON text as the client sent it: forwarded as is when nothing in it changes (no re-serializing). */
  readonly json?: string;
}

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
  const streaming = stream === true && (endpoint === "chat" || endpoint === "completion");
  if (stream === true && !streaming) throw badRequest(`stream is not supported on this endpoint`, "stream");
  if (streamOptions && !streaming)
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
    case "image": {
      if (typeof body.prompt !== "string" || body.prompt.length === 0)
        throw badRequest("prompt must be a non-empty string", "prompt");
      positiveInt(body, "n");
      break;
    }
  }
  const maxTokens = positiveInt(body, "max_tokens") ?? positiveInt(body, "max_completion_tokens");
  return {
    endpoint,
    model,
    stream: streaming,
    wantsUsage: streaming && isObject(streamOptions) && streamOptions.include_usage === true,
    maxTokens,
    body,
    json,
  };
}
