/**
 * Message shapes the gateway and controller exchange through Redis (DESIGN.md §3). Keys are named in
 * `redis-keys.ts`; this module says what is stored under them and how it is encoded.
 */
import type { ConfigurableProviderId } from "./catalog";

/**
 * How the gateway authenticates to a backend. `bearer`: the per-worker token stored in the route (the engine's
 * --api-key). `provider-key`: the provider's API key from the gateway's own environment (RunPod serverless).
 * `none`: a local server without auth.
 */
export type BackendAuth =
  | { kind: "bearer"; token: string }
  | { kind: "provider-key"; envVar: string }
  | { kind: "none" };

/**
 * The certificate a backend must present (a worker outside the cluster, DESIGN.md §6): clients trust it and
 * nothing else — it is the only CA, and the peer's SHA-256 fingerprint must equal `fingerprint256`.
 */
export interface RouteTls {
  /** The worker's self-signed certificate, PEM (public; the key never leaves the worker). */
  readonly certPem: string;
  /** SHA-256 of the certificate, `AB:CD:…` as Node's `X509Certificate.fingerprint256` formats it. */
  readonly fingerprint256: string;
}

/** A ready backend of a model, as the controller publishes it in `routes(model)` (field = worker id). */
export interface Route {
  readonly workerId: string;
  readonly provider: ConfigurableProviderId;
  /** OpenAI base URL including `/v1`, e.g. `http://10.0.0.5:8000/v1` or `https://api.runpod.ai/v2/abc/openai/v1`. */
  readonly baseUrl: string;
  readonly auth: BackendAuth;
  /** Requests one backend should serve at once (the model's targetConcurrency, or more for a managed endpoint). */
  readonly capacity: number;
  /** What the backend costs per second while billed, for per-request cost attribution. */
  readonly usdPerSecond: number;
  /** Pinned certificate; when present, `baseUrl` is https and clients never fall back to anything unpinned. */
  readonly tls?: RouteTls;
}

const PEM_CERTIFICATE =
  /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;
const FINGERPRINT_256 = /^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/;

/** A route's `tls` field: undefined when absent, null when present but unusable. */
function decodeRouteTls(value: unknown): RouteTls | undefined | null {
  if (value === undefined) return undefined;
  if (!value || typeof value !== "object") return null;
  const { certPem, fingerprint256 } = value as Partial<RouteTls>;
  if (typeof certPem !== "string" || !PEM_CERTIFICATE.test(certPem)) return null;
  if (typeof fingerprint256 !== "string" || !FINGERPRINT_256.test(fingerprint256)) return null;
  return { certPem, fingerprint256 };
}

export function encodeRoute(route: Route): string {
  return JSON.stringify(route);
}

/**
 * Decode a route; undefined for anything malformed (a bad entry must not take the gateway down). A route whose
 * pin is malformed, or that pins a certificate but is not https, is dropped whole: it must never turn into an
 * unpinned route.
 */
export function decodeRoute(text: string): Route | undefined {
  try {
    const r = JSON.parse(text) as Partial<Route>;
    if (typeof r.workerId !== "string" || typeof r.baseUrl !== "string" || typeof r.provider !== "string")
      return undefined;
    if (!r.auth || typeof r.auth !== "object" || !["bearer", "provider-key", "none"].includes(r.auth.kind))
      return undefined;
    const tls = decodeRouteTls(r.tls);
    if (tls === null || (tls && !/^https:\/\//i.test(r.baseUrl))) return undefined;
    return {
      workerId: r.workerId,
      provider: r.provider,
      baseUrl: r.baseUrl.replace(/\/+$/, ""),
      auth: r.auth,
      capacity: typeof r.capacity === "number" && r.capacity > 0 ? r.capacity : 1,
      usdPerSecond: typeof r.usdPerSecond === "number" && r.usdPerSecond >= 0 ? r.usdPerSecond : 0,
      ...(tls ? { tls } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Published on the routes channel whenever a model's set of ready backends changes. */
export interface RoutesChanged {
  readonly model: string;
}

/** Published on the demand channel when a request starts waiting for a model with no ready backend. */
export interface DemandSignal {
  readonly model: string;
  readonly requestId: string;
  /** Deadline of the waiting request, epoch ms. */
  readonly deadlineMs: number;
}

/**
 * Member of `inflight(model)`, scored by its expiry (ms): `<workerId>|<holder>|<count>` — `count` requests in flight
 * on the worker through one gateway replica (`holder`), which renews the score while they run. Without a count
 * (`<workerId>|<requestId>`, one lease per request) the member counts as one request.
 */
export const inflightMember = (workerId: string, holder: string, count?: number): string =>
  count === undefined ? `${workerId}|${holder}` : `${workerId}|${holder}|${count}`;
export const workerOfInflightMember = (member: string): string => member.slice(0, member.indexOf("|"));
/** How many requests a member of `inflight(model)` stands for (see `inflightMember`). */
export function inflightCountOfMember(member: string): number {
  const last = member.lastIndexOf("|");
  if (last <= member.indexOf("|")) return 1;
  const count = Number(member.slice(last + 1));
  return Number.isInteger(count) && count > 0 ? count : 1;
}

/** An API key record (hash `apiKey(sha256)`); the raw key is never stored. */
/**
 * What an API key may do: `inference` the OpenAI API only (the default, and what a key stored without a scope
 * is), `read` the read-only MCP tools, `admin` the MCP tools that act too. A key of one scope is refused by the
 * other surface: an MCP key cannot call the OpenAI API and an inference key cannot use MCP.
 */
export const KEY_SCOPES = ["inference", "read", "admin"] as const;
export type KeyScope = (typeof KEY_SCOPES)[number];

export function isKeyScope(value: string): value is KeyScope {
  return (KEY_SCOPES as readonly string[]).includes(value);
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  /** First characters of the key, shown in listings so people can tell keys apart. */
  readonly prefix: string;
  /** SHA-256 of the raw key, hex. */
  readonly hash: string;
  /** Models the key may use; empty = every model of the stack. */
  readonly models: readonly string[];
  readonly rpm?: number;
  readonly tpm?: number;
  readonly monthlyBudgetUsd?: number;
  /** Epoch ms after which the key stops working. */
  readonly expiresAtMs?: number;
  readonly revoked: boolean;
  readonly createdAtMs: number;
  /** What the key may do (see KEY_SCOPES); a record stored before scopes existed reads as `inference`. */
  readonly scope: KeyScope;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed";

/** Status record of an async job (hash `job(id)`). */
export interface JobRecord {
  readonly id: string;
  readonly model: string;
  readonly keyId: string;
  readonly endpoint: string;
  readonly status: JobStatus;
  readonly createdAtMs: number;
  readonly completedAtMs?: number;
  readonly attempts: number;
  /** JSON text of the upstream answer (succeeded) or of the error (failed). */
  readonly result?: string;
}

/** Month and day keys of the spend ledger, in UTC. */
export const ledgerMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
export const ledgerDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Spend is kept in integer micro-dollars so concurrent HINCRBY never loses a fraction. */
export const toMicroUsd = (usd: number): number => Math.round(usd * 1_000_000);
export const fromMicroUsd = (micro: number): number => micro / 1_000_000;
