/**
 * Contract fake of RunPod REST v2 network volumes (https://api.runpod.io/v2/network-volumes) as a real HTTP
 * server on 127.0.0.1. REST v1 (`rest.runpod.io/v1/networkvolumes`) was retired on 15 Nov 2026, so v1 paths —
 * and the unhyphenated `/v2/networkvolumes` — are 404 here, as on RunPod.
 *
 * Sources: runpod/docs `api-reference-v2/openapi.json` (Aug 2026: paths, `NetworkVolume`,
 * `CreateNetworkVolumeRequest`, `UpdateNetworkVolumeRequest`, `ListNetworkVolumesResponse`, `ErrorResponse`, the
 * shared 401/403/404/422/429 responses and the RateLimit headers), `api-reference-v2/migrate-from-v1.mdx`,
 * runpod/runpod-plugins-official `runpod-migrate/reference/rest-v1-to-v2.md`, and reference/providers.md §1.1/§1.4.
 *
 * Documented, and held here:
 * - Bearer auth only; a missing or wrong key is 401. Every error is `application/problem+json`
 *   `{title, status, detail, errors?: string[]}`.
 * - `GET /v2/network-volumes` → 200 `{networkVolumes: [...]}` (wrapped, not paginated).
 * - `POST /v2/network-volumes {name, size, dataCenter, type?}` → **201** with the volume
 *   `{id, name, size, dataCenter, type}`; `size` is a whole number of GB from 10 to 4096; `type` is STANDARD or
 *   HIGH_PERFORMANCE and, when left out, the data centre's primary tier; names are not unique (two creates with
 *   one name make two volumes). Unknown body fields (e.g. v1's `dataCenterId`) are a 422 whose `errors` read
 *   `$: additional properties 'dataCenterId' not allowed` (the spec's example). A data centre without network
 *   volumes is a 400 whose detail lists the data centres that have them (the migration guide).
 * - `GET /v2/network-volumes/{id}` → 200 the volume; 404 when gone.
 * - `PATCH /v2/network-volumes/{id} {name?, size?}` → 200 the volume; only given fields change; a smaller size
 *   is a 400 ("size decrease attempted"), an equal one is accepted; an empty body is refused.
 * - `DELETE /v2/network-volumes/{id}` → **204** without a body, then 404.
 * - `RateLimit` / `RateLimit-Policy` headers on every authenticated answer, as structured-field lists with minute,
 *   hour and day windows (`"minute";r=59;t=60, …` / `"minute";q=60;w=60, …`, the spec's 60/3000/50000 example);
 *   a 429 carries `Retry-After` in whole seconds (inject one with `rateLimitNext`).
 *
 * ASSUMPTIONS where the docs are silent (the fake chooses the v2 convention and says so):
 * - Schema violations (missing or mistyped fields, size out of bounds, a bad `type`, an empty PATCH body) are 422
 *   "Request validation failed." with one string per failure in `errors`; only the additional-properties wording
 *   is RunPod's, the other `errors` strings and all `detail` texts are the fake's own.
 * - A body that is not JSON is a 400 (BadRequest: "malformed").
 * - Every data centre in `dataCenters` offers both tiers; the primary tier is `defaultType` (STANDARD).
 * - Other methods on a known path are 405 with `Allow` (the spec's MethodNotAllowedError).
 * - The quotas in the RateLimit headers are reported but not enforced.
 *
 * Fault injection (5xx after acting, 429 with Retry-After, a dropped connection, a request never answered), the
 * request log and the clock come from the shared harness in ./fake-api-server. `exists` is the lookup
 * `RunpodServerlessFake` takes (`volumeExists`) to refuse an endpoint's unknown network volume.
 */
import type { z } from "zod";
import { ListNetworkVolumesResponse, NetworkVolume } from "../../core/contracts/runpod";
import type { RecordedRequest, Reply } from "./fake-api-server";
import { invalid, notAllowed, problem, RunpodApiFake } from "./runpod-common";

export type FakeVolumeType = "STANDARD" | "HIGH_PERFORMANCE";

/** A volume as REST v2 shows it (`NetworkVolume`). */
export interface FakeNetworkVolume {
  id: string;
  name: string;
  /** GB. */
  size: number;
  dataCenter: string;
  type: FakeVolumeType;
}

/** Data centres the fake offers network volumes in (a subset of RunPod's); others are a 400. */
export const FAKE_DATA_CENTERS = [
  "EU-RO-1",
  "EU-SE-1",
  "EU-CZ-1",
  "EU-NL-1",
  "EUR-IS-1",
  "US-TX-3",
  "US-KS-2",
  "US-GA-1",
  "CA-MTL-1",
] as const;

export interface RunpodVolumesFakeOptions {
  apiKey: string;
  /** @default FAKE_DATA_CENTERS */
  dataCenters?: readonly string[];
  /** The tier a create without `type` gets (ASSUMPTION: the same everywhere). @default "STANDARD" */
  defaultType?: FakeVolumeType;
  now?: () => number;
}

const VOLUME_TYPES: readonly FakeVolumeType[] = ["STANDARD", "HIGH_PERFORMANCE"];
const CREATE_FIELDS = new Set(["name", "size", "dataCenter", "type"]);
const PATCH_FIELDS = new Set(["name", "size"]);
const MIN_GB = 10;
const MAX_GB = 4096;
export class RunpodVolumesFake extends RunpodApiFake {
  readonly volumes = new Map<string, FakeNetworkVolume>();
  readonly dataCenters: ReadonlySet<string>;
  readonly defaultType: FakeVolumeType;
  private seq = 0;

  constructor(options: RunpodVolumesFakeOptions) {
    super(options.apiKey, options.now);
    this.dataCenters = new Set(options.dataCenters ?? FAKE_DATA_CENTERS);
    this.defaultType = options.defaultType ?? "STANDARD";
  }

  /** The API host to give the client (`apiBase`); REST v2 is under `/v2`. */
  get apiBase(): string {
    return this.url;
  }

  /** The volume with this id, if it exists (mutable: tests change it as if someone used the console). */
  readonly volume = (id: string): FakeNetworkVolume | undefined => this.volumes.get(id);

  /** Whether a volume with this id exists (`RunpodServerlessFake`'s `volumeExists`). */
  readonly exists = (id: string): boolean => this.volumes.has(id);

  /** Create a volume directly (another stack's, or one made in the console). */
  seedVolume(
    name: string,
    size: number,
    dataCenter: string,
    type: FakeVolumeType = this.defaultType,
  ): FakeNetworkVolume {
    const volume = { id: this.newId(), name, size, dataCenter, type };
    this.volumes.set(volume.id, volume);
    return volume;
  }

  /** Forget volumes, faults and requests. */
  reset(): void {
    this.volumes.clear();
    this.clearFaults();
    (this.requests as RecordedRequest[]).length = 0;
  }

  protected successSchema(req: RecordedRequest): z.ZodType | undefined {
    if (req.path === "/v2/network-volumes")
      return req.method === "GET" ? ListNetworkVolumesResponse : NetworkVolume;
    return /^\/v2\/network-volumes\/[^/]+$/.test(req.path) ? NetworkVolume : undefined;
  }

  protected route(req: RecordedRequest): Reply {
    const p = req.path;
    if (p === "/v2/network-volumes") {
      if (req.method === "GET") return { status: 200, json: { networkVolumes: [...this.volumes.values()] } };
      if (req.method === "POST") return this.create(req);
      return notAllowed("GET, POST");
    }
    const one = /^\/v2\/network-volumes\/([^/]+)$/.exec(p);
    if (one) {
      if (!["GET", "PATCH", "DELETE"].includes(req.method)) return notAllowed("GET, PATCH, DELETE");
      const volume = this.volumes.get(decodeURIComponent(one[1] ?? ""));
      if (!volume) return problem(404, "Not Found", "network volume not found");
      if (req.method === "GET") return { status: 200, json: volume };
      if (req.method === "PATCH") return this.patch(volume, req);
      this.volumes.delete(volume.id);
      return { status: 204 };
    }
    return problem(404, "Not Found", `no route ${req.method} ${p}`);
  }

  private create(req: RecordedRequest): Reply {
    const parsed = jsonObject(req);
    if ("reply" in parsed) return parsed.reply;
    const { body } = parsed;
    const errors = [
      ...unknownFields(body, CREATE_FIELDS),
      ...["name", "size", "dataCenter"]
        .filter((k) => body[k] === undefined)
        .map((k) => `$: missing property '${k}'`),
      ...checkName(body.name),
      ...checkSize(body.size),
      ...(body.dataCenter !== undefined && !(typeof body.dataCenter === "string" && body.dataCenter !== "")
        ? ["$.dataCenter: must be a non-empty string"]
        : []),
      ...(body.type !== undefined && !VOLUME_TYPES.includes(body.type as FakeVolumeType)
        ? [`$.type: must be one of ${VOLUME_TYPES.join(", ")}`]
        : []),
    ];
    if (errors.length > 0) return invalid(errors);
    const dataCenter = body.dataCenter as string;
    if (!this.dataCenters.has(dataCenter)) {
      return problem(
        400,
        "Bad Request",
        `data center ${dataCenter} does not support network volumes; supported: ${[...this.dataCenters].join(", ")}`,
      );
    }
    const volume = this.seedVolume(
      body.name as string,
      body.size as number,
      dataCenter,
      (body.type as FakeVolumeType | undefined) ?? this.defaultType,
    );
    return { status: 201, json: volume };
  }

  private patch(volume: FakeNetworkVolume, req: RecordedRequest): Reply {
    const parsed = jsonObject(req);
    if ("reply" in parsed) return parsed.reply;
    const { body } = parsed;
    const errors = [
      ...unknownFields(body, PATCH_FIELDS),
      ...(Object.keys(body).length === 0 ? ["$: must have at least 1 properties"] : []),
      ...checkName(body.name),
      ...checkSize(body.size),
    ];
    if (errors.length > 0) return invalid(errors);
    if (typeof body.size === "number" && body.size < volume.size) {
      return problem(
        400,
        "Bad Request",
        `size cannot be reduced: the network volume has ${volume.size} GB, ${body.size} GB asked`,
      );
    }
    if (typeof body.name === "string") volume.name = body.name;
    if (typeof body.size === "number") volume.size = body.size;
    return { status: 200, json: volume };
  }

  /** RunPod-like ids: 10 lowercase letters and digits. */
  private newId(): string {
    return `nv${(++this.seq).toString(36).padStart(8, "0")}`;
  }
}

/** The request body as a JSON object, or the problem to answer. */
function jsonObject(req: RecordedRequest): { body: Record<string, unknown> } | { reply: Reply } {
  if (req.rawBody.trim() === "" || typeof req.body === "string") {
    return { reply: problem(400, "Bad Request", "request body must be JSON") };
  }
  if (!isObj(req.body)) return { reply: invalid(["$: must be an object"]) };
  return { body: req.body };
}

function unknownFields(body: Record<string, unknown>, allowed: ReadonlySet<string>): string[] {
  return Object.keys(body)
    .filter((k) => !allowed.has(k))
    .map((k) => `$: additional properties '${k}' not allowed`);
}

function checkName(name: unknown): string[] {
  if (name === undefined) return [];
  return typeof name === "string" && name.length >= 1 ? [] : ["$.name: must be a string of length >= 1"];
}

function checkSize(size: unknown): string[] {
  if (size === undefined) return [];
  return Number.isInteger(size) && (size as number) >= MIN_GB && (size as number) <= MAX_GB
    ? []
    : [`$.size: must be an integer from ${MIN_GB} to ${MAX_GB}`];
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
