/**
 * Reads the text of `Pulumi.<stack>.yaml` into raw config values, the way the Pulumi CLI would hand them to the
 * program — except that secrets (`{ secure: "v1:…" }`) cannot be decrypted offline and become placeholders.
 */
import { LineCounter, parseDocument } from "yaml";
import { type ConfigProblem, StackConfigError } from "./errors";
import type { RawConfigValue } from "./load";

/** Marks a value that stands in for a secret offline; any place it shows up is a secret's place. */
export const OFFLINE_SECRET_PREFIX = "aiorch-offline-secret:";
export const offlineSecretPlaceholder = (key: string): string => `${OFFLINE_SECRET_PREFIX}${key}`;

/**
 * Parse a stack file's text.
 * @param fileName shown in messages about malformed YAML (`Pulumi.dev.yaml:12:3: …`)
 * @throws StackConfigError for malformed YAML or a file without a `config:` mapping
 */
export function parseStackFile(text: string, fileName: string): Record<string, RawConfigValue> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new StackConfigError(
      doc.errors.map((e): ConfigProblem => {
        const at = e.linePos?.[0];
        return {
          key: at ? `${fileName}:${at.line}:${at.col}` : fileName,
          message: `malformed YAML: ${e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}`,
        };
      }),
    );
  }
  const root: unknown = doc.toJS();
  if (root === null || root === undefined) return {};
  if (typeof root !== "object" || Array.isArray(root)) {
    throw new StackConfigError([{ key: fileName, message: "must be a YAML mapping with a `config:` key" }]);
  }
  const config = (root as { config?: unknown }).config;
  if (config === undefined || config === null) return {};
  if (typeof config !== "object" || Array.isArray(config)) {
    throw new StackConfigError([
      { key: `${fileName}: config`, message: "must be a mapping of `project:key: value`" },
    ]);
  }

  const out: Record<string, RawConfigValue> = {};
  for (const [key, value] of Object.entries(config)) {
    out[key] = isSecureValue(value)
      ? { value: offlineSecretPlaceholder(key), secret: true }
      : { value, secret: false };
  }
  return out;
}

/** `pulumi config set --secret` writes `{ secure: "v1:…" }`. */
function isSecureValue(value: unknown): boolean {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { secure?: unknown }).secure === "string"
  );
}

/** The project name from `Pulumi.yaml` text. */
export function parseProjectFile(text: string, fileName = "Pulumi.yaml"): string {
  const doc = parseDocument(text);
  const name = doc.errors.length === 0 ? doc.get("name") : undefined;
  if (typeof name !== "string" || name.length === 0) {
    throw new StackConfigError([{ key: fileName, message: "must set `name:` to the project name" }]);
  }
  return name;
}
