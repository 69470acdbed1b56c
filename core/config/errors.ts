/**
 * Turns schema issues into messages that name the config key and say what to write instead:
 * `ai-orchestrator:models[1].gpu: "RTX_5090" is not a known GPU; known: …`.
 */
import type { z } from "zod";

export interface ConfigProblem {
  /** Full config key with path, e.g. `ai-orchestrator:models[1].gpu`. */
  readonly key: string;
  readonly message: string;
}

export class StackConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  ${p.key}: ${p.message}`).join("\n"),
    );
    this.name = "StackConfigError";
  }
}

export const show = (v: unknown): string => {
  if (typeof v === "string") return `"${v}"`;
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
};

const noun = (expected: string): string =>
  ({
    int: "a whole number",
    number: "a number",
    string: "a string",
    boolean: "true or false",
    array: "a list",
    object: "an object (a YAML mapping)",
  })[expected] ?? expected;

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Parse-level error map: the generic wording for issues a field did not word itself. */
export function describeIssue(issue: z.core.$ZodRawIssue): string {
  const input = issue.input;
  switch (issue.code) {
    case "invalid_type":
      return input === undefined ? "is required" : `expected ${noun(issue.expected)}, got ${show(input)}`;
    case "too_small": {
      const min = Number(issue.minimum);
      if (issue.origin === "array") return `needs at least ${plural(min, "entry", "entries")}`;
      if (issue.origin === "string")
        return min <= 1 ? "must not be empty" : `needs at least ${min} characters`;
      return `must be ${issue.inclusive ? "at least" : "greater than"} ${min}; got ${show(input)}`;
    }
    case "too_big": {
      const max = Number(issue.maximum);
      if (issue.origin === "array") return `takes at most ${plural(max, "entry", "entries")}`;
      if (issue.origin === "string") return `takes at most ${max} characters`;
      return `must be ${issue.inclusive ? "at most" : "less than"} ${max}; got ${show(input)}`;
    }
    case "invalid_value":
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}; got ${show(input)}`;
    case "invalid_format":
      return `${show(input)} is not a valid ${issue.format}`;
    default:
      return issue.message ?? `invalid value ${show(input)}`;
  }
}

/** `["models", 1, "gpu", 0]` → `models[1].gpu[0]`; stops at an index into a scalar the user wrote for a list. */
export function formatPath(path: readonly PropertyKey[], input: unknown): string {
  let out = "";
  let cursor: unknown = input;
  for (const segment of path) {
    if (typeof segment === "number") {
      if (!Array.isArray(cursor)) break; // `gpu: RTX_5090` was accepted as `[RTX_5090]`: name `gpu`, not `gpu[0]`
      out += `[${segment}]`;
    } else {
      const name = String(segment);
      out += /^[A-Za-z_][\w-]*$/.test(name) ? (out ? `.${name}` : name) : `[${JSON.stringify(name)}]`;
    }
    cursor =
      cursor !== null && typeof cursor === "object"
        ? (cursor as Record<PropertyKey, unknown>)[segment]
        : undefined;
  }
  return out;
}

/** Field names a schema accepts at `path`, for "did you mean" hints on unknown fields. */
export function fieldsAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  const inner = (key: string) => def[key] as z.core.$ZodType;
  switch (def.type) {
    case "optional":
    case "default":
    case "nullable":
    case "prefault":
    case "readonly":
      return fieldsAt(inner("innerType"), path);
    case "pipe":
      return [...new Set([...fieldsAt(inner("in"), path), ...fieldsAt(inner("out"), path)])];
    case "union":
      return [...new Set((def.options as z.core.$ZodType[]).flatMap((o) => fieldsAt(o, path)))];
    case "object": {
      const shape = def.shape as Record<string, z.core.$ZodType>;
      if (path.length === 0) return Object.keys(shape);
      const next = shape[String(path[0])];
      return next ? fieldsAt(next, path.slice(1)) : [];
    }
    case "array":
      return path.length === 0 ? [] : fieldsAt(inner("element"), path.slice(1));
    case "record": {
      if (path.length > 0) return fieldsAt(inner("valueType"), path.slice(1));
      const keyDef = inner("keyType")._zod.def as unknown as {
        type: string;
        entries?: Record<string, string>;
      };
      return keyDef.type === "enum" && keyDef.entries ? Object.values(keyDef.entries) : [];
    }
    default:
      return [];
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The closest known name, when it is close enough to be a typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === name.toLowerCase() ? 0 : editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

export function unknownFieldMessage(field: string, known: readonly string[], what = "field"): string {
  const guess = closest(field, known);
  const hint = guess ? `did you mean "${guess}"? ` : "";
  return `unknown ${what} "${field}"; ${hint}known: ${known.join(", ") || "(none)"}`;
}

/** What the keys of a mapping are, where "field" would be vague. */
const FIELD_NOUNS: Readonly<Record<string, string>> = { providers: "provider", prices: "provider" };

/** Every issue of a failed parse as key-named problems. */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  schema: z.core.$ZodType,
  input: unknown,
  keyOf: (path: string) => string,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const known = fieldsAt(schema, issue.path);
      const what = FIELD_NOUNS[formatPath(issue.path, input)] ?? "field";
      for (const field of issue.keys) {
        problems.push({
          key: keyOf(formatPath([...issue.path, field], input)),
          message: unknownFieldMessage(field, known, what),
        });
      }
      continue;
    }
    problems.push({ key: keyOf(formatPath(issue.path, input)), message: issue.message });
  }
  return problems;
}
