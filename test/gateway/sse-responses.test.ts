/** The SSE tap reading a Responses API stream (typed events, usage as input/output tokens, no [DONE]). */
import { describe, expect, it } from "vitest";
import { usageOf } from "../../gateway/inference";
import { SseUsageTap, usageFrom } from "../../gateway/sse";

const frame = (type: string, fields: Record<string, unknown>, seq: number): string =>
  `event: ${type}\ndata: ${JSON.stringify({ ...fields, type, sequence_number: seq })}\n\n`;

const completed = (usage: Record<string, number>) => ({
  response: { id: "resp_1", object: "response", status: "completed", output: [], usage },
});

const decode = (bytes: Uint8Array | undefined): string => (bytes ? Buffer.from(bytes).toString("utf8") : "");

describe("SSE tap, Responses mode", () => {
  it("passes every event as it came, counts deltas and reads the usage of response.completed", () => {
    const tap = new SseUsageTap(true, "responses");
    const stream =
      frame("response.created", { response: { id: "resp_1", usage: null } }, 0) +
      frame(
        "response.output_text.delta",
        { delta: "a", item_id: "m", output_index: 0, content_index: 0 },
        1,
      ) +
      frame(
        "response.output_text.delta",
        { delta: " b", item_id: "m", output_index: 0, content_index: 0 },
        2,
      ) +
      frame("response.completed", completed({ input_tokens: 7, output_tokens: 2, total_tokens: 9 }), 3);
    // split mid-frame: the tap waits for each frame's blank line
    const cut = stream.indexOf("delta") + 3;
    const out =
      decode(tap.push(Buffer.from(stream.slice(0, cut)))) + decode(tap.push(Buffer.from(stream.slice(cut))));
    expect(out + decode(tap.flush())).toBe(stream);
    expect(tap.contentFrames).toBe(2);
    expect(tap.events).toBe(4);
    expect(tap.sawDone).toBe(true);
    expect(tap.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
  });

  it("response.incomplete ends the stream too", () => {
    const tap = new SseUsageTap(true, "responses");
    tap.push(Buffer.from(frame("response.incomplete", completed({ input_tokens: 1, output_tokens: 4 }), 0)));
    expect(tap.sawDone).toBe(true);
    expect(tap.usage).toEqual({ prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 });
  });

  it("an upstream error event is reshaped to OpenAI's ResponseErrorEvent with its message scrubbed", () => {
    const tap = new SseUsageTap(true, "responses");
    const out = decode(
      tap.push(
        Buffer.from(
          frame("response.created", { response: { id: "r" } }, 0) +
            frame(
              "error",
              {
                code: "internal",
                message: "CUDA failed at /opt/venv/lib/python3.12/site-packages/x.py",
                param: null,
              },
              1,
            ),
        ),
      ),
    );
    expect(tap.sawError).toBe(true);
    const last = out.trim().split("\n\n").at(-1)!;
    expect(last.startsWith("event: error\ndata: ")).toBe(true);
    const event = JSON.parse(last.slice(last.indexOf("data: ") + 6)) as Record<string, unknown>;
    expect(event).toMatchObject({ type: "error", code: "internal", param: null, sequence_number: 1 });
    expect(event.message).not.toContain("/opt/venv");
  });

  it("response.failed keeps its shape, with the backend's error message scrubbed", () => {
    const tap = new SseUsageTap(true, "responses");
    const failed = {
      response: {
        id: "r",
        status: "failed",
        error: { code: "server_error", message: "boom in /home/vllm/secret/path.py" },
        usage: { input_tokens: 2, output_tokens: 0 },
      },
    };
    const out = decode(tap.push(Buffer.from(frame("response.failed", failed, 5))));
    expect(out.startsWith("event: response.failed\ndata: ")).toBe(true);
    const event = JSON.parse(out.slice(out.indexOf("data: ") + 6)) as {
      response: { error: { message: string } };
    };
    expect(event.response.error.message).not.toContain("/home/vllm");
    expect(tap.sawDone).toBe(true);
    expect(tap.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 0 });
  });

  it("chat mode is unchanged: an event-named frame is passed through and not read", () => {
    const tap = new SseUsageTap(false);
    const text = frame("response.completed", completed({ input_tokens: 1, output_tokens: 1 }), 0);
    expect(decode(tap.push(Buffer.from(text)))).toBe(text);
    expect(tap.usage).toBeUndefined();
  });
});

describe("usage of a whole answer", () => {
  it("a Responses answer's input/output tokens are booked as prompt/completion tokens", () => {
    const body = Buffer.from(
      JSON.stringify({
        id: "resp_1",
        object: "response",
        output: [],
        usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 },
      }),
    );
    expect(usageOf(body)).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  });

  it("chat usage is taken as it is", () => {
    const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 };
    expect(usageFrom(usage)).toBe(usage);
    expect(usageFrom(null)).toBeUndefined();
  });
});
