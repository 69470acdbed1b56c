/**
 * Trace replay: real request logs as a workload.
 *
 * Two formats, one record per line:
 * - JSON lines: `{"timestamp": "2026-03-02T09:00:01Z", "model": "llama-3.1-8b", "tokens": 412}`
 * - CSV: `timestamp,model,tokens`, with or without that header (columns may come in any order when the
 *   header is there); blank lines and lines starting with `#` are skipped.
 * `timestamp` is an ISO 8601 date-time or a Unix time in seconds (milliseconds when above 10^11);
 * `tokens` is a whole number ≥ 0 (generated tokens for chat and completion, input tokens for embeddings).
 * Records must be in time order. Every problem is reported with the file, the line number and the field.
 *
 * The file is read in chunks, never whole: `TraceFile.open` makes one pass to validate it and learn its
 * span and models, each replay streams it again.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import {
  type Arrival,
  type ArrivalSource,
  type RequestShape,
  serviceSecondsFor,
  type Workload,
} from "./workloads";

export class TraceError extends Error {
  override name = "TraceError";
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string | undefined,
    readonly detail: string,
  ) {
    super(`${file} line ${line}${field ? `, field "${field}"` : ""}: ${detail}`);
  }
}

export interface TraceRecord {
  readonly line: number;
  /** Unix time in seconds. */
  readonly time: number;
  readonly model: string;
  readonly tokens: number;
}

export type TraceFormat = "jsonl" | "csv";

const FIELDS = ["timestamp", "model", "tokens"] as const;
type Field = (typeof FIELDS)[number];

const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : String(JSON.stringify(v)));

function parseTimestamp(value: unknown, file: string, line: number): number {
  if (typeof value === "number" || (typeof value === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(value))) {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0)
      throw new TraceError(file, line, "timestamp", `${show(value)} is not a Unix time ≥ 0`);
    return n > 1e11 ? n / 1000 : n;
  }
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value.trim())) {
    const ms = Date.parse(value.trim());
    if (Number.isFinite(ms)) return ms / 1000;
  }
  if (value === undefined || value === "")
    throw new TraceError(file, line, "timestamp", "is missing; write an ISO 8601 date-time or Unix seconds");
  throw new TraceError(
    file,
    line,
    "timestamp",
    `${show(value)} is not an ISO 8601 date-time (2026-03-02T09:00:01Z) or Unix seconds`,
  );
}

function parseModel(value: unknown, file: string, line: number): string {
  if (typeof value !== "string" || value.trim() === "")
    throw new TraceError(
      file,
      line,
      "model",
      value === undefined ? "is missing" : `${show(value)} is not a model name`,
    );
  return value.trim();
}

function parseTokens(value: unknown, file: string, line: number): number {
  const n =
    typeof value === "number"
      ? value
      : typeof value === "string" && /^\s*\d+\s*$/.test(value)
        ? Number(value)
        : Number.NaN;
  if (!Number.isInteger(n) || n < 0)
    throw new TraceError(
      file,
      line,
      "tokens",
      value === undefined || value === ""
        ? "is missing; write a whole number ≥ 0"
        : `expected a whole number ≥ 0, got ${show(value)}`,
    );
  return n;
}

/** Split one CSV line; double quotes may enclose a field ("" is a quote inside one). */
function splitCsv(text: string): string[] {
  const out: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      out.push(field.trim());
      field = "";
    } else field += c;
  }
  out.push(field.trim());
  return out;
}

/** Parses lines one at a time; keeps the CSV header and the order check between lines. */
export class TraceParser {
  private columns: Record<Field, number> | undefined;
  private sawData = false;
  private lastTime = Number.NEGATIVE_INFINITY;
  private lastLine = 0;

  constructor(
    readonly format: TraceFormat,
    readonly file = "trace",
  ) {}

  /** The record on this line, or undefined for a blank, comment or header line. */
  parseLine(text: string, line: number): TraceRecord | undefined {
    const trimmed = text.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return undefined;
    const record = this.format === "jsonl" ? this.parseJson(trimmed, line) : this.parseCsv(trimmed, line);
    if (!record) return undefined;
    if (record.time < this.lastTime)
      throw new TraceError(
        this.file,
        line,
        "timestamp",
        `is earlier than line ${this.lastLine}'s; sort the trace by time`,
      );
    this.lastTime = record.time;
    this.lastLine = line;
    this.sawData = true;
    return record;
  }

  private parseJson(text: string, line: number): TraceRecord {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new TraceError(this.file, line, undefined, `not valid JSON (${(error as Error).message})`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new TraceError(
        this.file,
        line,
        undefined,
        'expected a JSON object {"timestamp", "model", "tokens"}',
      );
    const o = value as Record<string, unknown>;
    return {
      line,
      time: parseTimestamp(o.timestamp, this.file, line),
      model: parseModel(o.model, this.file, line),
      tokens: parseTokens(o.tokens, this.file, line),
    };
  }

  private parseCsv(text: string, line: number): TraceRecord | undefined {
    const cells = splitCsv(text);
    if (!this.columns && !this.sawData) {
      const names = cells.map((c) => c.toLowerCase());
      if (names.includes("timestamp")) {
        const columns = {} as Record<Field, number>;
        for (const field of FIELDS) {
          const index = names.indexOf(field);
          if (index < 0) throw new TraceError(this.file, line, field, "column is missing from the header");
          columns[field] = index;
        }
        this.columns = columns;
        return undefined;
      }
      this.columns = { timestamp: 0, model: 1, tokens: 2 };
    }
    const columns = this.columns!;
    const width = Math.max(columns.timestamp, columns.model, columns.tokens) + 1;
    if (cells.length < width)
      throw new TraceError(
        this.file,
        line,
        FIELDS.find((f) => columns[f] >= cells.length),
        `expected ${width} comma-separated fields (timestamp, model, tokens), got ${cells.length}`,
      );
    return {
      line,
      time: parseTimestamp(cells[columns.timestamp], this.file, line),
      model: parseModel(cells[columns.model], this.file, line),
      tokens: parseTokens(cells[columns.tokens], this.file, line),
    };
  }
}

/** Format from the file name (.csv, .jsonl/.ndjson/.json), else from the first non-blank line. */
export function detectFormat(fileName: string, firstLine: string | undefined): TraceFormat {
  if (/\.csv$/i.test(fileName)) return "csv";
  if (/\.(jsonl|ndjson|json)$/i.test(fileName)) return "jsonl";
  return firstLine?.trim().startsWith("{") ? "jsonl" : "csv";
}

/** Parse a whole trace held in a string (tests, small inputs). */
export function parseTraceText(text: string, format: TraceFormat, file = "trace"): TraceRecord[] {
  const parser = new TraceParser(format, file);
  const out: TraceRecord[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const record = parser.parseLine(line, i + 1);
    if (record) out.push(record);
  });
  return out;
}

/** Lines of a file, read in 64 KiB chunks; yields [text, 1-based line number]. */
function* readLines(path: string): Generator<[string, number]> {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(65_536);
    const decoder = new StringDecoder("utf8");
    let pending = "";
    let line = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      pending += decoder.write(buffer.subarray(0, n));
      let nl = pending.indexOf("\n");
      let from = 0;
      while (nl >= 0) {
        yield [pending.slice(from, nl).replace(/\r$/, ""), ++line];
        from = nl + 1;
        nl = pending.indexOf("\n", from);
      }
      pending = pending.slice(from);
    }
    pending += decoder.end();
    if (pending !== "") yield [pending.replace(/\r$/, ""), ++line];
  } finally {
    closeSync(fd);
  }
}

/** A validated trace file: its span, format and the models it mentions with their request counts. */
export class TraceFile {
  private constructor(
    readonly path: string,
    readonly format: TraceFormat,
    readonly startTime: number,
    readonly endTime: number,
    readonly models: ReadonlyMap<string, number>,
  ) {}

  /** Validate the whole file (one streaming pass); throws TraceError naming the line and field. */
  static open(path: string, displayName = path): TraceFile {
    let format: TraceFormat | undefined;
    let parser: TraceParser | undefined;
    let start = Number.NaN;
    let end = Number.NaN;
    const models = new Map<string, number>();
    for (const [text, line] of readLines(path)) {
      if (!parser) {
        if (text.trim() === "") continue;
        format = detectFormat(path, text);
        parser = new TraceParser(format, displayName);
      }
      const record = parser.parseLine(text, line);
      if (!record) continue;
      if (Number.isNaN(start)) start = record.time;
      end = record.time;
      models.set(record.model, (models.get(record.model) ?? 0) + 1);
    }
    if (!parser || Number.isNaN(start))
      throw new TraceError(displayName, 1, undefined, "the trace has no records");
    return new TraceFile(path, format!, start, end, models);
  }

  /** Every record again, streamed from the file. */
  *records(): Generator<TraceRecord> {
    const parser = new TraceParser(this.format, this.path);
    for (const [text, line] of readLines(this.path)) {
      const record = parser.parseLine(text, line);
      if (record) yield record;
    }
  }

  /** Simulated period: from the first record to one hour after the last (so keep-alives can run out). */
  get horizonSeconds(): number {
    return this.endTime - this.startTime + 3600;
  }

  /** The requests of one model as a workload, times relative to the trace's first record. */
  workload(model: string, shape: RequestShape): Workload {
    const trace = this;
    return {
      id: "trace",
      horizonSeconds: this.horizonSeconds,
      activeSeconds: undefined,
      expectedRequests: this.models.get(model) ?? 0,
      open(): ArrivalSource {
        const records = trace.records();
        return {
          next(): Arrival | undefined {
            for (;;) {
              const r = records.next();
              if (r.done) return undefined;
              if (r.value.model !== model) continue;
              return {
                time: r.value.time - trace.startTime,
                tokens: r.value.tokens,
                serviceSeconds: serviceSecondsFor(shape, r.value.tokens),
              };
            }
          },
        };
      },
    };
  }
}
