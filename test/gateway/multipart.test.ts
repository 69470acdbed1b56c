/** The multipart/form-data reader of transcription uploads (gateway/multipart.ts), on bodies laid out by RFC 7578. */
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../gateway/errors";
import {
  boundaryOf,
  MAX_AUDIO_FILE_BYTES,
  parseMultipart,
  validateTranscription,
} from "../../gateway/multipart";

const CT = "multipart/form-data; boundary=XyZ";
const body = (text: string) => Buffer.from(text.replace(/\n/g, "\r\n"), "latin1");

const refusal = (fn: () => unknown): GatewayError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
};

describe("boundaryOf", () => {
  it("reads a token or a quoted boundary, whatever the case of the names", () => {
    expect(boundaryOf("multipart/form-data; boundary=abc")).toBe("abc");
    expect(boundaryOf('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c"')).toBe("a b:c");
  });

  it("refuses another type, a missing boundary and one over 70 characters", () => {
    for (const type of [
      "application/json",
      "multipart/form-data",
      `multipart/form-data; boundary=${"a".repeat(71)}`,
    ])
      expect(refusal(() => boundaryOf(type)).code).toBe("invalid_multipart");
  });
});

describe("parseMultipart", () => {
  it("fields and the file, after a preamble and with transport padding after a delimiter", () => {
    const raw = body(
      'preamble to ignore\n--XyZ  \nContent-Disposition: form-data; name="model"\n\nwhisper\n' +
        '--XyZ\nContent-Disposition: form-data; name="timestamp_granularities[]"\n\nword\n' +
        '--XyZ\nContent-Disposition: form-data; name="timestamp_granularities[]"\n\nsegment\n' +
        '--XyZ\ncontent-disposition: form-data; name="file"; filename="a \\"quoted\\" name.wav"\nContent-Type: audio/wav\n\n' +
        "RIFF\u0000\u00ff\n--XyZ--\nepilogue",
    );
    const upload = parseMultipart(raw, CT);
    expect(upload.model).toBe("whisper");
    expect(upload.fields).toEqual({ model: "whisper", "timestamp_granularities[]": ["word", "segment"] });
    expect(upload.file).toEqual({ name: "file", filename: 'a "quoted" name.wav', bytes: 6 });
    expect(upload.raw).toBe(raw);
  });

  it("a text field in UTF-8 stays UTF-8", () => {
    const raw = Buffer.concat([
      body('--XyZ\nContent-Disposition: form-data; name="prompt"\n\n'),
      Buffer.from("Zoë, Ærø"),
      body("\n--XyZ--\n"),
    ]);
    expect(parseMultipart(raw, CT).fields.prompt).toBe("Zoë, Ærø");
  });

  it.each([
    ["no delimiter", "hello"],
    ["cut off inside a part", '--XyZ\nContent-Disposition: form-data; name="model"\n\nwhis'],
    ["headers without a blank line", '--XyZ\nContent-Disposition: form-data; name="model"'],
    ["no Content-Disposition", "--XyZ\nContent-Type: text/plain\n\nx\n--XyZ--\n"],
    [
      "a disposition that is not form-data",
      '--XyZ\nContent-Disposition: attachment; name="a"\n\nx\n--XyZ--\n',
    ],
    ["a delimiter not followed by a line break", "--XyZjunk\n\nx\n--XyZ--\n"],
  ])("%s: 400 invalid_multipart", (_label, text) => {
    const error = refusal(() => parseMultipart(body(text), CT));
    expect(error.status).toBe(400);
    expect(error.code).toBe("invalid_multipart");
  });

  it("two files: 400 naming file", () => {
    const part = '--XyZ\nContent-Disposition: form-data; name="file"; filename="a.wav"\n\nx\n';
    expect(refusal(() => parseMultipart(body(`${part}${part}--XyZ--\n`), CT)).param).toBe("file");
  });

  it("more than 64 parts: 400", () => {
    const part = '--XyZ\nContent-Disposition: form-data; name="x"\n\n1\n';
    expect(refusal(() => parseMultipart(body(`${part.repeat(65)}--XyZ--\n`), CT)).message).toMatch(
      /64 parts/,
    );
  });
});

describe("validateTranscription", () => {
  const upload = (fields: string, fileBytes?: number) =>
    parseMultipart(
      Buffer.concat([
        body(fields),
        fileBytes === undefined
          ? Buffer.alloc(0)
          : Buffer.concat([
              body('--XyZ\nContent-Disposition: form-data; name="file"; filename="a.wav"\n\n'),
              Buffer.alloc(fileBytes),
              body("\n"),
            ]),
        body("--XyZ--\n"),
      ]),
      CT,
    );
  const model = '--XyZ\nContent-Disposition: form-data; name="model"\n\nwhisper\n';

  it("an upload with a model and a file: the request, forwarding the same bytes and Content-Type", () => {
    const given = upload(`${model}--XyZ\nContent-Disposition: form-data; name="language"\n\nen\n`, 3);
    const req = validateTranscription("transcription", given);
    expect(req).toMatchObject({ endpoint: "transcription", model: "whisper", stream: false });
    expect(req.body).toEqual({ language: "en", model: "whisper" });
    expect(req.upload).toEqual({ bytes: given.raw, contentType: CT });
  });

  it("a file of exactly 25 MiB passes; one byte more is a 413 naming file", () => {
    expect(validateTranscription("transcription", upload(model, MAX_AUDIO_FILE_BYTES)).model).toBe("whisper");
    const error = refusal(() =>
      validateTranscription("transcription", upload(model, MAX_AUDIO_FILE_BYTES + 1)),
    );
    expect([error.status, error.param, error.code]).toEqual([413, "file", "request_too_large"]);
  });

  it("a JSON body (not an upload): 400 asking for multipart", () => {
    expect(refusal(() => validateTranscription("transcription", { model: "whisper" })).code).toBe(
      "invalid_content_type",
    );
  });

  it("stream=false is accepted, stream=true refused", () => {
    const stream = (v: string) => `${model}--XyZ\nContent-Disposition: form-data; name="stream"\n\n${v}\n`;
    expect(validateTranscription("transcription", upload(stream("false"), 1)).stream).toBe(false);
    expect(refusal(() => validateTranscription("transcription", upload(stream("true"), 1))).param).toBe(
      "stream",
    );
  });
});
