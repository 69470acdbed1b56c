/**
 * Verda's (formerly DataCrunch) published contract, trimmed to the operations ai-orchestrator uses on
 * `https://api.verda.com/v1`: the OAuth2 token, instance types and availability, startup scripts, instances and
 * their actions, volumes (list, trash, delete).
 *
 * Verda publishes no OpenAPI document; the shapes come from its own SDKs and CLI (read 2026-12):
 * - `verda-cloud/sdk-python` @164e09a (`verda/…` and the mocked responses in `tests/unit_tests/…`), "py" below;
 * - `verda-cloud/verdacloud-sdk-go` @ca1aa5c (`pkg/verda/*.go`: Go structs with JSON tags), "go" below;
 * - `verda-cloud/verda-cli` @7ae1786 (how Verda's own CLI reads prices), "cli" below.
 * A field is required when the Python SDK reads it unconditionally (`d['x']`, or a dataclass field without a
 * default) or the Go SDK's request validation requires it; optional otherwise. Where the two SDKs disagree on a
 * type the union is taken (prices are numbers or numeric strings: go `types.go` `FlexibleFloat`).
 *
 * Request bodies are strict. Neither SDK says what the API does with a field it does not know: the contract fake
 * rejects one (stricter than known), so our adapter cannot drift into sending invented fields. Responses are
 * strict too, so the fake cannot answer a field Verda does not publish. Adapters do not strict-parse real answers
 * (Verda may add fields): they read them through these types, defensively.
 *
 * Pure: zod schemas and types only.
 */
import { z } from "zod";

/** Prices: go `types.go` `FlexibleFloat` (a JSON number or a numeric string; py's tests send "5.00"). */
const price = z.union([z.number(), z.string().regex(/^\d+(\.\d+)?$/)]);

// ── errors ────────────────────────────────────────────────────────────────────────────────────────────────

/** Error codes: py `verda/constants.py` `ErrorCodes`. */
export const VerdaErrorCode = z.enum([
  "invalid_request",
  "unauthorized_request",
  "insufficient_funds",
  "forbidden_action",
  "not_found",
  "server_error",
  "service_unavailable",
]);

/**
 * Error body of any HTTP ≥ 400: py `verda/http_client/_http_client.py` `handle_error` (reads `code`, `message`),
 * go `pkg/verda/errors.go` `APIError` (`code`, `message`, `details`; `status_code` is filled in by the client).
 */
export const VerdaError = z.strictObject({
  code: VerdaErrorCode,
  message: z.string(),
  details: z.string().optional(),
});
export type VerdaError = z.infer<typeof VerdaError>;

// ── auth ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * `POST /oauth2/token`, a JSON body: py `verda/authentication/_authentication.py` (`authenticate`: grant_type,
 * client_id, client_secret; `refresh`: grant_type, refresh_token), go `pkg/verda/auth.go` `TokenRequest` (which
 * also sends client_id/client_secret with a refresh, and falls back to a form body on staging only).
 */
export const TokenRequest = z.discriminatedUnion("grant_type", [
  z.strictObject({
    grant_type: z.literal("client_credentials"),
    client_id: z.string().min(1),
    client_secret: z.string().min(1),
  }),
  z.strictObject({
    grant_type: z.literal("refresh_token"),
    refresh_token: z.string().min(1),
    client_id: z.string().optional(),
    client_secret: z.string().optional(),
  }),
]);
export type TokenRequest = z.input<typeof TokenRequest>;

/** py `_authentication.py` (reads all five), go `auth.go` `TokenResponse`. `expires_in` in seconds. */
export const TokenResponse = z.strictObject({
  access_token: z.string(),
  refresh_token: z.string(),
  scope: z.string(),
  token_type: z.string(),
  expires_in: z.int(),
});
export type TokenResponse = z.infer<typeof TokenResponse>;

// ── instance types and availability ───────────────────────────────────────────────────────────────────────

/** go `pkg/verda/instances_types.go` `InstanceCPU`. */
const Cpu = z.strictObject({ description: z.string(), number_of_cores: z.int() });
/** go `instances_types.go` `InstanceGPU`. */
const Gpu = z.strictObject({ description: z.string(), number_of_gpus: z.int() });
/** go `instances_types.go` `InstanceMemory` (used for both `memory` and `gpu_memory`). */
const Memory = z.strictObject({ description: z.string(), size_in_gigabytes: z.int() });
/** go `instances_types.go` `InstanceStorage` (`description`); py's tests also send `size_in_gigabytes`. */
const Storage = z.strictObject({ description: z.string(), size_in_gigabytes: z.int().optional() });

/**
 * `GET /instance-types?currency=usd|eur` → an array of these: py `verda/instance_types/_instance_types.py` (reads
 * every field but the last three unconditionally), go `pkg/verda/instance_types.go` `InstanceTypeInfo` (adds
 * `dynamic_price`, `max_dynamic_price`). Ids look like `1A100.22V`, `1H100.80S.22V`, `4A100.88V`, `8B300.240V`
 * (py tests `images/`, `volumes/`; go tests): GPU count, GPU model, then a variant and the vCPUs.
 *
 * - `gpu_memory.size_in_gigabytes` is the TOTAL over the instance's GPUs: py
 *   `tests/unit_tests/instance_types/test_instance_types.py` answers 128 GB ("128GB VRAM") for 8× V100 (16 GB
 *   each). Per GPU = total / `gpu.number_of_gpus`. `gpu.description` carries the per-GPU size
 *   ("8x A100 SXM4 40GB": cli `cmd/instancetypes/instancetypes_test.go`).
 * - `price_per_hour` is the price of the WHOLE instance: cli commit 26d3b11 "API price_per_hour is total, not
 *   per-GPU — remove double multiply" (2RTXPRO6000.60V at $2.780/h = 2 × $1.390) and cli `cmd/vm/CLAUDE.md`;
 *   cli `cmd/cost/estimate.go` takes it as the instance's hourly cost as is.
 */
export const InstanceType = z.strictObject({
  id: z.string(),
  instance_type: z.string(),
  price_per_hour: price,
  spot_price: price,
  dynamic_price: price.optional(),
  max_dynamic_price: price.optional(),
  serverless_price: price.nullable().optional(),
  serverless_spot_price: price.nullable().optional(),
  description: z.string(),
  cpu: Cpu,
  gpu: Gpu,
  memory: Memory,
  gpu_memory: Memory,
  storage: Storage,
  best_for: z.array(z.string()),
  /** GPU model, e.g. "V100", "H100" (py docstring; go mock server). */
  model: z.string(),
  name: z.string(),
  p2p: z.string(),
  currency: z.enum(["usd", "eur"]),
  manufacturer: z.string(),
  display_name: z.string(),
  supported_os: z.array(z.string()),
  deploy_warning: z.string().nullable().optional(),
});
export type InstanceType = z.infer<typeof InstanceType>;
export const InstanceTypeList = z.array(InstanceType);

/** Query of `GET /instance-types`: py `_instance_types.py` and go `instance_types.go` send only `currency`. */
export const InstanceTypesQuery = z.strictObject({ currency: z.enum(["usd", "eur"]).optional() });
export type InstanceTypesQuery = z.infer<typeof InstanceTypesQuery>;

/**
 * Query of `GET /instance-availability`. The SDKs disagree on the spot flag's name: py
 * `verda/instances/_instances.py` `get_availabilities` sends `isSpot` ("true"/"false"), go
 * `pkg/verda/instance_availability.go` sends `is_spot=true` and nothing for on-demand. Both omit it for the
 * default (on-demand), which is what we do. `location_code` filters to one location.
 */
export const InstanceAvailabilityQuery = z.strictObject({
  location_code: z.string().optional(),
  isSpot: z.enum(["true", "false"]).optional(),
  is_spot: z.enum(["true", "false"]).optional(),
});
export type InstanceAvailabilityQuery = z.infer<typeof InstanceAvailabilityQuery>;

/** `GET /instance-availability` → an array of these: go `instance_availability.go` `LocationAvailability`. */
export const LocationAvailability = z.strictObject({
  location_code: z.string(),
  availabilities: z.array(z.string()),
});
export type LocationAvailability = z.infer<typeof LocationAvailability>;
export const LocationAvailabilityList = z.array(LocationAvailability);

// ── startup scripts ───────────────────────────────────────────────────────────────────────────────────────

/**
 * `POST /scripts {name, script}` → the new id as plain text (py `verda/startup_scripts/_startup_scripts.py`
 * `create` reads `.text`; py tests answer 201 with the bare id; go `startup_scripts.go` also accepts JSON).
 * Both required: go `CreateStartupScriptRequest.Validate`.
 */
export const CreateScriptRequest = z.strictObject({ name: z.string().min(1), script: z.string().min(1) });
export type CreateScriptRequest = z.input<typeof CreateScriptRequest>;

/** `DELETE /scripts {scripts: [id…]}` → 200, empty (py `_startup_scripts.py` `delete`; go `DeleteMultipleStartupScriptsRequest`). */
export const DeleteScriptsRequest = z.strictObject({ scripts: z.array(z.string()).min(1) });
export type DeleteScriptsRequest = z.input<typeof DeleteScriptsRequest>;

/** `GET /scripts` → an array of these: py `_startup_scripts.py` (id, name, script), go `StartupScript` (+ created_at). */
export const StartupScript = z.strictObject({
  id: z.string(),
  name: z.string(),
  script: z.string(),
  created_at: z.string().optional(),
});
export const StartupScriptList = z.array(StartupScript);

// ── instances ─────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Instance statuses: go `instances_types.go` (new, ordered, provisioning, validating, running, offline, pending,
 * discontinued, unknown, notfound, error, deleting, no_capacity) and py `verda/constants.py` `InstanceStatus`
 * (adds starting_hibernation, hibernating, restoring).
 */
export const InstanceStatus = z.enum([
  "new",
  "ordered",
  "provisioning",
  "validating",
  "running",
  "offline",
  "pending",
  "discontinued",
  "unknown",
  "notfound",
  "error",
  "deleting",
  "no_capacity",
  "starting_hibernation",
  "hibernating",
  "restoring",
]);
export type InstanceStatus = z.infer<typeof InstanceStatus>;

/** py `_instances.py` `Contract`, go `CreateInstanceRequest.Validate`. */
export const Contract = z.enum(["LONG_TERM", "PAY_AS_YOU_GO", "SPOT"]);
/** py `_instances.py` `Pricing`. */
export const Pricing = z.enum(["DYNAMIC_PRICE", "FIXED_PRICE"]);

/** `os_volume`: py `_instances.py` `OSVolume`, go `OSVolumeCreateRequest` (name required, size ≥ 1 GB). */
export const OsVolumeRequest = z.strictObject({
  name: z.string().min(1),
  size: z.int().min(1),
  on_spot_discontinue: z.enum(["keep_detached", "move_to_trash", "delete_permanently"]).optional(),
});

/** A data volume created with the instance: go `volumes_types.go` `VolumeCreateRequest` (no tags here). */
const VolumeCreateRequest = z.strictObject({
  size: z.int().min(1),
  type: z.enum([
    "HDD",
    "NVMe",
    "HDD_Shared",
    "NVMe_Shared",
    "NVMe_Local_Storage",
    "NVMe_Shared_Cluster",
    "NVMe_OS_Cluster",
  ]),
  name: z.string().min(1),
  location_code: z.string().optional(),
  on_spot_discontinue: z.string().optional(),
  instance_id: z.string().optional(),
  instance_ids: z.array(z.string()).optional(),
});

/**
 * Hostname rule of Verda's web frontend, as quoted by cli `cmd/util/hostname.go` `ValidateHostname`: letters,
 * digits and hyphens, at least one letter, no hyphen first or last. Whether the API enforces it: not stated.
 */
export const HOSTNAME = /^(?!-)(?!.*-$)[a-zA-Z0-9-]*[a-zA-Z][a-zA-Z0-9-]*$/;

/**
 * `POST /instances` body: py `_instances.py` `create` (the payload it builds), go `instances_types.go`
 * `CreateInstanceRequest` (instance_type, image, hostname, description required; contract in the enum; at most 10
 * tags). The answer is the new instance's id as plain text (py reads `.text`; py tests answer 200 with the bare
 * id); go `instances.go` notes it is "sometimes JSON" (an `Instance`).
 */
export const CreateInstanceRequest = z.strictObject({
  instance_type: z.string().min(1),
  image: z.string().min(1),
  hostname: z.string().min(1).regex(HOSTNAME, { error: "not a hostname Verda's frontend accepts" }),
  description: z.string().min(1),
  ssh_key_ids: z.array(z.string()).optional(),
  location_code: z.string().optional(),
  os_volume: OsVolumeRequest.nullable().optional(),
  startup_script_id: z.string().nullable().optional(),
  volumes: z.array(VolumeCreateRequest).optional(),
  existing_volumes: z.array(z.string()).optional(),
  is_spot: z.boolean().optional(),
  coupon: z.string().nullable().optional(),
  contract: Contract.optional(),
  pricing: Pricing.optional(),
  tags: z
    .array(z.strictObject({ key: z.string().min(1).max(63), value: z.string().max(127).optional() }))
    .max(10)
    .optional(),
});
export type CreateInstanceRequest = z.input<typeof CreateInstanceRequest>;

/** Query of `GET /instances`: py `_instances.py` `get(status)`, go `instances.go` `Get(status)`. */
export const InstancesQuery = z.strictObject({ status: z.string().optional() });

/** go `tags_types.go` `Tag`. */
const Tag = z.strictObject({ id: z.string(), key: z.string(), value: z.string() });

/**
 * `GET /instances` (array) and `GET /instances/{id}`: py `_instances.py` `Instance` (fields without a default are
 * required), go `instances_types.go` `Instance` (adds os_name, jupyter_token, volume_ids, tags). `ip` and
 * `os_volume_id` are null until the instance is provisioned (py comments).
 *
 * `price_per_hour` of an INSTANCE is per billable unit (per GPU; per vCPU for CPU instances): cli
 * `cmd/util/pricing.go` `InstanceTotalHourlyCost` multiplies it by `gpu.number_of_gpus` ("$2.29/GPU * 4 GPUs =
 * $9.16", `pricing_test.go`), and cli `CLAUDE.md` insists on it. UNVERIFIED: cli `cmd/cost/running.go` and
 * `cmd/vm/status_view.go` show the raw figure as the instance's hourly cost, so Verda's CLI contradicts itself.
 */
export const Instance = z.strictObject({
  id: z.string(),
  instance_type: z.string(),
  price_per_hour: price,
  hostname: z.string(),
  description: z.string(),
  status: InstanceStatus,
  created_at: z.string(),
  ssh_key_ids: z.array(z.string()),
  cpu: Cpu,
  gpu: Gpu,
  memory: Memory,
  storage: Storage,
  gpu_memory: Memory,
  ip: z.string().nullable().optional(),
  os_volume_id: z.string().nullable().optional(),
  location: z.string().optional(),
  image: z.string().nullable().optional(),
  startup_script_id: z.string().nullable().optional(),
  is_spot: z.boolean().optional(),
  contract: Contract.nullable().optional(),
  pricing: Pricing.nullable().optional(),
  os_name: z.string().optional(),
  jupyter_token: z.string().nullable().optional(),
  volume_ids: z.array(z.string()).nullable().optional(),
  tags: z.array(Tag).nullable().optional(),
});
export type Instance = z.infer<typeof Instance>;
export const InstanceList = z.array(Instance);

/**
 * Actions of `PUT /instances`: go `instances_types.go` (boot, start, shutdown, delete, discontinue, hibernate,
 * configure_spot, force_shutdown, delete_stuck, deploy, transfer), py `constants.py` `Actions` (adds restore).
 */
export const InstanceAction = z.enum([
  "boot",
  "start",
  "shutdown",
  "delete",
  "discontinue",
  "hibernate",
  "restore",
  "configure_spot",
  "force_shutdown",
  "delete_stuck",
  "deploy",
  "transfer",
]);

/**
 * `PUT /instances` body: py `_instances.py` `action` (id as a list, `volume_ids` null when not given,
 * `delete_permanently` only when true), go `InstanceActionRequest`. Per go: `volume_ids` omitted → the API's
 * default (the OS volume is deleted, other volumes detached); `[]` → no volume deleted; ids → those deleted.
 * `delete_permanently` applies to the listed volumes only (py docstring).
 */
export const InstanceActionRequest = z.strictObject({
  id: z.union([z.string(), z.array(z.string()).min(1)]),
  action: InstanceAction,
  volume_ids: z.array(z.string()).nullable().optional(),
  delete_permanently: z.boolean().optional(),
});
export type InstanceActionRequest = z.input<typeof InstanceActionRequest>;

/**
 * Answer of `PUT /instances`: go `instances.go` `Action` — 204 (no body), or 202 (all done) / 207 (some failed)
 * with an array of `InstanceActionResult` (`status` "success" or "error" in go's tests, with `error` and
 * `statusCode` on a failure). py's tests answer a bare 202.
 */
export const InstanceActionResult = z.strictObject({
  action: z.string(),
  instanceId: z.string(),
  status: z.string(),
  error: z.string().optional(),
  statusCode: z.int().optional(),
});
export type InstanceActionResult = z.infer<typeof InstanceActionResult>;
export const InstanceActionResultList = z.array(InstanceActionResult);

// ── volumes ───────────────────────────────────────────────────────────────────────────────────────────────

/** Volume statuses: py `constants.py` `VolumeStatus`, go `volumes_types.go` status constants. */
export const VolumeStatus = z.enum([
  "ordered",
  "creating",
  "created",
  "attached",
  "attaching",
  "detached",
  "detaching",
  "deleting",
  "deleted",
  "cloning",
  "restoring",
  "exported",
  "canceled",
  "canceling",
]);

/** go `volumes_types.go` `VolumeAttachedInstance`; py tests' `instances[]` lack os_volume_id and auto_rental_extension. */
export const VolumeAttachedInstance = z.strictObject({
  id: z.string(),
  ip: z.string().nullable(),
  instance_type: z.string(),
  status: z.string(),
  hostname: z.string(),
  os_volume_id: z.string().nullable().optional(),
  auto_rental_extension: z.boolean().nullable().optional(),
});

/** Fields common to a volume and a trashed one. */
const volumeFields = {
  id: z.string(),
  status: VolumeStatus,
  name: z.string(),
  size: z.int(),
  type: z.string(),
  is_os_volume: z.boolean(),
  created_at: z.string(),
  instance_id: z.string().nullable().optional(),
  instances: z.array(VolumeAttachedInstance).nullable().optional(),
  location: z.string().optional(),
  contract: z.string().nullable().optional(),
  target: z.string().nullable().optional(),
  ssh_key_ids: z.array(z.string()).optional(),
  base_hourly_cost: z.number().nullable().optional(),
  monthly_price: z.number().nullable().optional(),
  currency: z.string().nullable().optional(),
  tags: z.array(Tag).nullable().optional(),
};

/**
 * `GET /volumes` (array; the volumes not deleted, optionally `?status=`) and `GET /volumes/{id}`: py
 * `verda/volumes/_volumes.py` `Volume` (id, status, name, size, type, is_os_volume, created_at required), go
 * `volumes_types.go` `Volume`.
 */
export const Volume = z.strictObject({
  ...volumeFields,
  deleted_at: z.string().nullable().optional(),
  pseudo_path: z.string().nullable().optional(),
  mount_command: z.string().nullable().optional(),
  create_directory_command: z.string().nullable().optional(),
  filesystem_to_fstab_command: z.string().nullable().optional(),
  long_term: z.unknown().optional(),
});
export type Volume = z.infer<typeof Volume>;
export const VolumeList = z.array(Volume);

/** Query of `GET /volumes`: py `_volumes.py` `get(status)`, go `volumes.go` `ListVolumesByStatus`. */
export const VolumesQuery = z.strictObject({ status: z.string().optional() });

/**
 * `GET /volumes/trash` → an array of these: go `volumes_types.go` `VolumeInTrash` (`deleted_at`,
 * `is_permanently_deleted`); py `_volumes.py` `get_in_trash` reads them as `Volume`.
 */
export const VolumeInTrash = z.strictObject({
  ...volumeFields,
  deleted_at: z.string(),
  is_permanently_deleted: z.boolean().optional(),
});
export type VolumeInTrash = z.infer<typeof VolumeInTrash>;
export const VolumeInTrashList = z.array(VolumeInTrash);

/**
 * `DELETE /volumes/{id}` body: py `_volumes.py` `delete_by_id` (`{is_permanent}`: true removes it for good, false
 * moves it to the trash; py tests answer 202). go `volumes.go` `DeleteVolume` sends no body and `?force=true`
 * instead; what `force` does is not documented.
 */
export const DeleteVolumeRequest = z.strictObject({ is_permanent: z.boolean().optional() });
export type DeleteVolumeRequest = z.input<typeof DeleteVolumeRequest>;
