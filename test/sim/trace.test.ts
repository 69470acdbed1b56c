import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { detectFormat, parseTraceText, TraceError, TraceFile } from "../../sim/trace";
import { REQUEST_SHAPES } from "../../sim/workloads";

const dir = mkdtempSync(join(tmpdir(), "aiorch-trace-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** The TraceError a parse throws, for asserting on line and field. */
const errorOf = (fn: () => unknown): TraceError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof TraceError) return error;
    throw error;
  }
  throw new Error("expected a TraceError");
};

describe("trace parsing", () => {
  it("reads JSON lines with ISO and Unix timestamps", () => {
    const records = parseTraceText(
      [
        '{"timestamp": "2026-03-02T09:00:00Z", "model": "llama", "tokens": 412}',
        "",
        '{"timestamp": 1772442001.5, "model": "bge", "tokens": 0}',
        '{"timestamp": 1772442002000, "model": "llama", "tokens": 7}',
      ].join("\n"),
      "jsonl",
    );
    expect(records).toEqual([
      { line: 1, time: 1772442000, model: "llama", tokens: 412 },
      { line: 3, time: 1772442001.5, model: "bge", tokens: 0 },
      { line: 4, time: 1772442002, model: "llama", tokens: 7 },
    ]);
  });

  it("reads CSV with or without a header, columns in any order with one", () => {
    expect(parseTraceText("100,llama,5\n101,llama,6\n", "csv").map((r) => r.time)).toEqual([100, 101]);
    const reordered = parseTraceText(
      "# exported\nmodel,tokens,timestamp\nllama,5,2026-03-02T09:00:00Z\n",
      "csv",
    );
    expect(reordered).toEqual([{ line: 3, time: 1772442000, model: "llama", tokens: 5 }]);
    expect(parseTraceText('100,"my,model",5', "csv")[0]?.model).toBe("my,model");
  });

  it("names the line and the field of a bad record", () => {
    const cases: [string, "jsonl" | "csv", number, string | undefined, RegExp][] = [
      ['{"timestamp": 1, "model": "m", "tokens": 1}\n{oops', "jsonl", 2, undefined, /not valid JSON/],
      ['{"timestamp": 1, "model": "m", "tokens": -3}', "jsonl", 1, "tokens", /whole number ≥ 0, got -3/],
      ['{"timestamp": 1, "model": "m", "tokens": 2.5}', "jsonl", 1, "tokens", /got 2.5/],
      ['{"timestamp": 1, "tokens": 2}', "jsonl", 1, "model", /is missing/],
      [
        '{"timestamp": "yesterday", "model": "m", "tokens": 2}',
        "jsonl",
        1,
        "timestamp",
        /"yesterday" is not/,
      ],
      ['[1, "m", 2]', "jsonl", 1, undefined, /expected a JSON object/],
      ["1,m,1\n2,m,abc", "csv", 2, "tokens", /got "abc"/],
      ["1,m,1\n\n3,m", "csv", 3, "tokens", /expected 3 comma-separated fields/],
      ["timestamp,model\n1,m", "csv", 1, "tokens", /missing from the header/],
      ["5,m,1\n4,m,1", "csv", 2, "timestamp", /earlier than line 1's; sort the trace by time/],
      ["2026-02-30X,m,1", "csv", 1, "timestamp", /is not an ISO 8601/],
    ];
    for (const [text, format, line, field, message] of cases) {
      const error = errorOf(() => parseTraceText(text, format, "t.trace"));
      expect({ line: error.line, field: error.field }, text).toEqual({ line, field });
      expect(error.message, text).toMatch(message);
      expect(error.message).toMatch(new RegExp(`^t\\.trace line ${line}`));
    }
    expect(errorOf(() => parseTraceText("1,m,x", "csv", "a.csv")).message).toBe(
      'a.csv line 1, field "tokens": expected a whole number ≥ 0, got "x"',
    );
  });

  it("detects the format from the name or the first line", () => {
    expect(detectFormat("a.csv", "{")).toBe("csv");
    expect(detectFormat("a.ndjson", "1,2,3")).toBe("jsonl");
    expect(detectFormat("trace", '{"timestamp": 1}')).toBe("jsonl");
    expect(detectFormat("trace", "timestamp,model,tokens")).toBe("csv");
  });
});

describe("TraceFile", () => {
  it("validates a file in one pass and replays one model's requests relative to the first record", () => {
    const lines = ["timestamp,model,tokens"];
    for (let i = 0; i < 5000; i++) lines.push(`${1000 + i * 2},${i % 2 ? "bge" : "llama"},${i % 300}`);
    const trace = TraceFile.open(file("big.csv", `${lines.join("\r\n")}\r\n`));
    expect(trace.format).toBe("csv");
    expect(trace.startTime).toBe(1000);
    expect(trace.endTime).toBe(1000 + 4999 * 2);
    expect(Object.fromEntries(trace.models)).toEqual({ llama: 2500, bge: 2500 });
    expect(trace.horizonSeconds).toBe(4999 * 2 + 3600);
    const source = trace.workload("llama", REQUEST_SHAPES.chat).open();
    const first = source.next()!;
    expect(first).toEqual({ time: 0, tokens: 0, serviceSeconds: 0.3 });
    expect(source.next()).toMatchObject({ time: 4, tokens: 2 });
    let n = 2;
    while (source.next()) n++;
    expect(n).toBe(2500);
  });

  it("reports a bad line of a file with its name, line and field", () => {
    const path = file(
      "bad.jsonl",
      '{"timestamp": 1, "model": "m", "tokens": 1}\n{"timestamp": 2, "model": "", "tokens": 1}\n',
    );
    const error = errorOf(() => TraceFile.open(path, "bad.jsonl"));
    expect(error.message).toBe('bad.jsonl line 2, field "model": "" is not a model name');
    expect(errorOf(() => TraceFile.open(file("empty.csv", "\n# nothing\n"), "empty.csv")).message).toMatch(
      /has no records/,
    );
  });
});
