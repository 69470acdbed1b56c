/** What a credential looks like, so one written in plain text is caught before it is deployed. */
import { OFFLINE_SECRET_PREFIX } from "../core/config";

const PATTERNS: readonly [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/\brpa_[A-Za-z0-9]{20,}/, "a RunPod API key"],
  [/\bsk-[A-Za-z0-9_-]{20,}/, "an API key (sk-…)"],
  [/\bhf_[A-Za-z0-9]{30,}/, "a Hugging Face token"],
  [/\bAKIA[0-9A-Z]{16}\b/, "an AWS access key"],
  [/\bgh[pousr]_[A-Za-z0-9]{36,}/, "a GitHub token"],
  [/\b(client-key-data|client-certificate-data):\s*\S{20,}/, "kubeconfig credentials"],
  [/\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+/, "a JSON web token"],
  // Offline plans stand secrets in with this marker: wherever it shows up, a secret would.
  [new RegExp(OFFLINE_SECRET_PREFIX), "a secret config value"],
];

/** Names under which a literal value is a credential whatever it looks like. */
const CREDENTIAL_NAME = /(api[_-]?key|token|secret|passw(or)?d|credential|private[_-]?key)/i;

/** What kind of credential `value` looks like, or undefined. Never returns the value itself. */
export function credentialKind(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length < 8) return undefined;
  return PATTERNS.find(([pattern]) => pattern.test(value))?.[1];
}

export const isCredentialName = (name: string): boolean => CREDENTIAL_NAME.test(name);

const INSECURE_SSH = /StrictHostKeyChecking\s*[= ]\s*no\b|UserKnownHostsFile\s*[= ]\s*\/dev\/null/i;

/** Whether a command line or script turns SSH host-key checking off. */
export const disablesHostKeyChecking = (text: unknown): boolean =>
  typeof text === "string" && INSECURE_SSH.test(text);
