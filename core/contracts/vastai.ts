/**
 * Vast.ai's published contract, trimmed to the operations ai-orchestrator uses: search offers
 * (`POST /api/v0/bundles/`), create an instance from an offer (`PUT /api/v0/asks/{id}/`), show one instance
 * (`GET /api/v0/instances/{id}/`), list instances page by page (`GET /api/v1/instances/`), destroy
 * (`DELETE /api/v0/instances/{id}/`) and, for the fakes, stop/start (`PUT /api/v0/instances/{id}/`).
 *
 * Sources (local mirrors): vast-ai/docs @c624622 `api-reference/openapi/yaml/*.yaml` (the per-endpoint OpenAPI files
 * that build `api-reference/openapi.yaml`), `api-reference/creating-instances-with-api.mdx`,
 * `api-reference/rate-limits-and-errors.mdx`, `cli/reference/show-instance*.mdx`; vast-ai/vast-cli @5567983
 * `vastai/api/{offers,instances,query,client}.py`, `vastai/cli/commands/instances.py`, `vastai/SKILL.md`, `vast.py`.
 * Where the sources disagree the schema follows the one the published client (vast-cli) actually sends or reads, and
 * says so.
 *
 * Request bodies are strict. What Vast.ai does with an unknown field is not published (the CLI itself sends two
 * fields the OpenAPI file does not list, `client_id` and `extra`, so the real API at least tolerates those): strict
 * bodies are stricter than known, on purpose, so a field we invent fails in the contract fake. Responses are strict
 * too, listing the fields the spec documents (optional unless the spec or the published client relies on them), so
 * a fake cannot answer a field Vast.ai does not publish. Adapters do not strict-parse real answers (Vast adds
 * fields); they read them through these types.
 *
 * Pure: zod schemas, types and constants only.
 */
import { z } from "zod";

// ── limits (create_instance.yaml `x-input-validation`, list: show_instances.yaml) ─────────────────────────────

/**
 * `env.max_length: 256` beside `env.max_total_length: 32768` (create_instance.yaml `x-input-validation`): read as a
 * limit per variable, since the total has a limit of its own. Whether it counts the value alone or also the key is
 * not published; the schema applies it to each key and each value.
 */
export const VAST_ENV_MAX_LENGTH = 256;
/** `env.max_total_length` (create_instance.yaml): counted here as the sum of all keys and values. */
export const VAST_ENV_MAX_TOTAL_LENGTH = 32_768;
/** `args.max_length: 4096`, "Combined length of args, args_str and onstart" (create_instance.yaml). */
export const VAST_ARGS_MAX_LENGTH = 4_096;
/** `label.max_length: 256` (create_instance.yaml). */
export const VAST_LABEL_MAX_LENGTH = 256;
/** `image.max_length: 1024` (create_instance.yaml). */
export const VAST_IMAGE_MAX_LENGTH = 1_024;
/** `disk.min: 8.0` GB (create_instance.yaml). */
export const VAST_DISK_MIN_GB = 8;
/** `limit`: "Default 25, max 25" instances per page (show_instances.yaml). */
export const VAST_LIST_PAGE_MAX = 25;

// ── errors ────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * The common error body: `{success: false, error, msg}` (rate-limits-and-errors.mdx: "Some endpoints omit the boolean
 * `success`. Some omit `error` and return only `msg` or `message`"); the `Error` component of every yaml.
 */
export const ErrorResponse = z.strictObject({
  success: z.boolean().optional(),
  error: z.string().optional(),
  msg: z.string().optional(),
  message: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;

/** A 429 as JSON: `{detail}` (create_instance.yaml, show_instance.yaml, show_instances.yaml); often plain text. */
export const RateLimitResponse = z.strictObject({ detail: z.string() });

// ── search offers: POST /api/v0/bundles/ ──────────────────────────────────────────────────────────────────

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** A filter on one offer field: `{op: value}` with the operators search_offers.yaml lists. */
export const OfferFilter = z.strictObject({
  eq: scalar.optional(),
  neq: scalar.optional(),
  gt: z.number().optional(),
  gte: z.number().optional(),
  lt: z.number().optional(),
  lte: z.number().optional(),
  in: z.array(scalar).optional(),
  notin: z.array(scalar).optional(),
});

const filter = OfferFilter.optional();

/**
 * vast-ai/docs api-reference/openapi/yaml/search_offers.yaml, request body. `type`: the yaml's enum is
 * `ondemand | bid | reserved` while its own example and vast-cli `vastai/api/offers.py` send `"on-demand"`; both
 * are accepted here. `gpu_name` values are Vast's display names with spaces ("RTX 4090", "A100 SXM4": vast-cli
 * `vastai/data/query.py`; the CLI turns `RTX_4090` into `RTX 4090` in `vastai/api/query.py` parse_query).
 * `gpu_ram` is per GPU in MB (the CLI multiplies GB by 1000: `offers_mult`).
 */
export const SearchOffersRequest = z.strictObject({
  limit: z.int().min(1).optional(),
  type: z.enum(["ondemand", "on-demand", "bid", "reserved"]).optional(),
  /** GB of disk the prices are computed for (and the instance gets). */
  allocated_storage: z.number().optional(),
  /** `[[field, "asc" | "desc"], …]`. */
  order: z.array(z.tuple([z.string(), z.enum(["asc", "desc"])])).optional(),
  verified: filter,
  rentable: filter,
  rented: filter,
  gpu_name: filter,
  reliability: filter,
  num_gpus: filter,
  gpu_ram: filter,
  duration: filter,
  machine_id: filter,
  dlperf_per_dphtotal: filter,
  dph_total: filter,
  flops_per_dphtotal: filter,
  geolocation: filter,
  gpu_arch: filter,
  dlperf: filter,
  cuda_max_good: filter,
  inet_down: filter,
  inet_up: filter,
  inet_down_cost: filter,
  inet_up_cost: filter,
  driver_version: filter,
  compute_cap: filter,
  cpu_arch: filter,
  has_avx: filter,
  cpu_cores: filter,
  cpu_cores_effective: filter,
  cpu_ghz: filter,
  cpu_ram: filter,
  datacenter: filter,
  external: filter,
  disk_bw: filter,
  disk_space: filter,
  bw_nvlink: filter,
  gpu_max_power: filter,
  gpu_max_temp: filter,
  gpu_mem_bw: filter,
  gpu_total_ram: filter,
  gpu_frac: filter,
  gpu_display_active: filter,
  direct_port_count: filter,
  host_id: filter,
  id: filter,
  min_bid: filter,
  mobo_name: filter,
  pci_gen: filter,
  pcie_bw: filter,
  storage_cost: filter,
  static_ip: filter,
  total_flops: filter,
  os_version: filter,
  ubuntu_version: filter,
  verification: filter,
  vms_enabled: filter,
});
export type SearchOffersRequest = z.input<typeof SearchOffersRequest>;

/** The `search` / `instance` price breakdowns of offers and instances (search_offers.yaml, show_instance.yaml). */
const PriceBreakdown = z.strictObject({
  gpuCostPerHour: z.number(),
  diskHour: z.number(),
  totalHour: z.number(),
  discountTotalHour: z.number(),
  discountedTotalPerHour: z.number(),
});

/**
 * One offer: vast-ai/docs api-reference/openapi/yaml/search_offers.yaml, the 200 example (the schema itself says only
 * `additionalProperties: true`; types follow the example values). Required: what the docs' own client code reads
 * unconditionally (creating-instances-with-api.mdx: `offer['id']`, `num_gpus`, `gpu_name`, `dph_total`).
 * `gpu_ram` is MB per GPU (24576 for a 24 GB card: binary MB), `gpu_total_ram` MB over all GPUs.
 */
export const VastOffer = z.strictObject({
  id: z.int(),
  ask_contract_id: z.int().optional(),
  bundle_id: z.int().optional(),
  bundled_results: z.unknown().optional(),
  bw_nvlink: z.number().optional(),
  compute_cap: z.number().optional(),
  cpu_arch: z.string().optional(),
  cpu_cores: z.number().optional(),
  cpu_cores_effective: z.number().optional(),
  cpu_ghz: z.number().optional(),
  cpu_name: z.string().optional(),
  cpu_ram: z.number().optional(),
  credit_discount_max: z.number().optional(),
  cuda_max_good: z.number().optional(),
  direct_port_count: z.int().optional(),
  disk_bw: z.number().optional(),
  disk_name: z.string().optional(),
  disk_space: z.number().optional(),
  dlperf: z.number().nullable().optional(),
  dlperf_per_dphtotal: z.number().nullable().optional(),
  dph_base: z.number().optional(),
  dph_total: z.number(),
  driver_version: z.string().optional(),
  driver_vers: z.number().optional(),
  duration: z.number().optional(),
  end_date: z.number().nullable().optional(),
  external: z.boolean().nullable().optional(),
  flops_per_dphtotal: z.number().optional(),
  geolocation: z.string().nullable().optional(),
  geolocode: z.number().nullable().optional(),
  gpu_arch: z.string().optional(),
  gpu_display_active: z.boolean().optional(),
  gpu_frac: z.number().optional(),
  gpu_ids: z.array(z.int()).optional(),
  gpu_lanes: z.number().optional(),
  gpu_mem_bw: z.number().optional(),
  gpu_name: z.string(),
  gpu_ram: z.number().optional(),
  gpu_total_ram: z.number().optional(),
  gpu_max_power: z.number().optional(),
  gpu_max_temp: z.number().optional(),
  has_avx: z.number().optional(),
  host_id: z.int().optional(),
  hosting_type: z.int().optional(),
  hostname: z.string().nullable().optional(),
  inet_down: z.number().optional(),
  inet_down_cost: z.number().optional(),
  inet_up: z.number().optional(),
  inet_up_cost: z.number().optional(),
  is_bid: z.boolean().optional(),
  logo: z.string().optional(),
  machine_id: z.int().optional(),
  min_bid: z.number().optional(),
  mobo_name: z.string().optional(),
  num_gpus: z.int(),
  os_version: z.string().nullable().optional(),
  pci_gen: z.number().optional(),
  pcie_bw: z.number().optional(),
  public_ipaddr: z.string().optional(),
  reliability: z.number().optional(),
  reliability_mult: z.number().optional(),
  rentable: z.boolean().optional(),
  rented: z.boolean().optional(),
  score: z.number().optional(),
  start_date: z.number().nullable().optional(),
  static_ip: z.boolean().optional(),
  storage_cost: z.number().optional(),
  storage_total_cost: z.number().optional(),
  total_flops: z.number().optional(),
  verification: z.string().optional(),
  vericode: z.number().optional(),
  vram_costperhour: z.number().optional(),
  webpage: z.string().nullable().optional(),
  vms_enabled: z.boolean().optional(),
  expected_reliability: z.number().optional(),
  is_vm_deverified: z.boolean().optional(),
  resource_type: z.string().optional(),
  cluster_id: z.int().nullable().optional(),
  avail_vol_ask_id: z.int().nullable().optional(),
  avail_vol_dph: z.number().nullable().optional(),
  avail_vol_size: z.number().nullable().optional(),
  nw_disk_min_bw: z.number().nullable().optional(),
  nw_disk_max_bw: z.number().nullable().optional(),
  nw_disk_avg_bw: z.number().nullable().optional(),
  rn: z.int().optional(),
  dph_total_adj: z.number().optional(),
  reliability2: z.number().optional(),
  discount_rate: z.number().nullable().optional(),
  discounted_hourly: z.number().nullable().optional(),
  discounted_dph_total: z.number().nullable().optional(),
  search: PriceBreakdown.optional(),
  instance: PriceBreakdown.optional(),
  time_remaining: z.string().optional(),
  time_remaining_isbid: z.string().optional(),
  internet_up_cost_per_tb: z.number().optional(),
  internet_down_cost_per_tb: z.number().optional(),
});
export type VastOffer = z.infer<typeof VastOffer>;

/** vast-ai/docs api-reference/openapi/yaml/search_offers.yaml, 200: `{offers: [...]}`. */
export const SearchOffersResponse = z.strictObject({ offers: z.array(VastOffer) });
export type SearchOffersResponse = z.infer<typeof SearchOffersResponse>;

// ── create instance: PUT /api/v0/asks/{id}/ ─────────────────────────────────────────────────────────────────

/**
 * `env`: create_instance.yaml types it as a string of Docker flags, but creating-instances-with-api.mdx ("the `env`
 * field is a JSON object (dict)… port mappings use the Docker `-p` syntax as keys with `"1"` as the value") and the
 * CLI (vastai/cli/util.py parse_env → `{"KEY": "v", "-p 8000:8000": "1"}`) send an object: the object it is.
 */
const CreateEnv = z
  .record(z.string().max(VAST_ENV_MAX_LENGTH), z.string().max(VAST_ENV_MAX_LENGTH))
  .check((ctx) => {
    const total = Object.entries(ctx.value).reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (total > VAST_ENV_MAX_TOTAL_LENGTH)
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message: `env totals ${total} characters; at most ${VAST_ENV_MAX_TOTAL_LENGTH}`,
      });
  });

/**
 * vast-ai/docs api-reference/openapi/yaml/create_instance.yaml, request body (with its `x-input-validation`).
 * `runtype: "args"` keeps the image's ENTRYPOINT and passes `args` to it (creating-instances-with-api.mdx, "Entrypoint
 * Behavior"); in args mode `onstart` overrides the entrypoint (vast-cli vastai/cli/commands/instances.py: `--entrypoint`
 * is sent as `onstart`, "If you use the args launch mode, you can override the entrypoint with --entrypoint").
 * `client_id: "me"`, which vast-cli sends, is not in the spec and not in this schema.
 */
export const CreateInstanceRequest = z
  .strictObject({
    image: z.string().max(VAST_IMAGE_MAX_LENGTH),
    template_hash_id: z.string().optional(),
    label: z.string().max(VAST_LABEL_MAX_LENGTH).optional(),
    /** GB of local disk. */
    disk: z.number().min(VAST_DISK_MIN_GB).optional(),
    runtype: z
      .enum(["ssh", "jupyter", "args", "ssh_proxy", "ssh_direct", "jupyter_proxy", "jupyter_direct"])
      .optional(),
    target_state: z.enum(["running", "stopped"]).optional(),
    /** Bid per machine in $/hour: only for interruptible instances. */
    price: z.number().min(0.001).max(128).optional(),
    env: CreateEnv.optional(),
    cancel_unavail: z.boolean().optional(),
    vm: z.boolean().optional(),
    onstart: z.string().optional(),
    args: z.array(z.string()).optional(),
    args_str: z.string().optional(),
    use_jupyter_lab: z.boolean().optional(),
    jupyter_dir: z.string().optional(),
    python_utf8: z.boolean().optional(),
    lang_utf8: z.boolean().optional(),
    force: z.boolean().optional(),
    user: z.string().optional(),
    image_login: z.string().optional(),
    volume_info: z
      .strictObject({
        create_new: z.boolean().optional(),
        volume_id: z.int().optional(),
        size: z.int().optional(),
        mount_path: z.string().optional(),
      })
      .optional(),
  })
  .check((ctx) => {
    const { args, args_str, onstart } = ctx.value;
    const combined = (args ?? []).join(" ").length + (args_str ?? "").length + (onstart ?? "").length;
    if (combined > VAST_ARGS_MAX_LENGTH)
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        path: ["args"],
        message: `args, args_str and onstart total ${combined} characters; at most ${VAST_ARGS_MAX_LENGTH}`,
      });
  });
export type CreateInstanceRequest = z.input<typeof CreateInstanceRequest>;

/** vast-ai/docs api-reference/openapi/yaml/create_instance.yaml, 200: `{success, new_contract}` (the instance id). */
export const CreateInstanceResponse = z.strictObject({ success: z.boolean(), new_contract: z.int() });
export type CreateInstanceResponse = z.infer<typeof CreateInstanceResponse>;

/**
 * create_instance.yaml 400/403/404/410: `{success: false, error, msg, ask_id}`. An offer that is gone answers 404
 * `error: "invalid_args"`, msg "…no_such_ask Instance type by id N is not available.", or (cancel_unavail) 410
 * `error: "no_such_ask"`.
 */
export const CreateInstanceError = z.strictObject({
  success: z.boolean().optional(),
  error: z.string().optional(),
  msg: z.string().optional(),
  ask_id: z.int().optional(),
});

// ── instances ─────────────────────────────────────────────────────────────────────────────────────────────

/** `ports` of a running instance: `{"8000/tcp": [{HostIp, HostPort}]}` (show_instances.yaml; HostPort is a string). */
export const VastPortMap = z.record(
  z.string(),
  z.array(z.strictObject({ HostIp: z.string().optional(), HostPort: z.string() })),
);

/**
 * Container state (`actual_status`): null while provisioning, then loading, running, stopped, frozen, exited,
 * rebooting, unknown, offline (cli/reference/show-instance.mdx; `created` in vast-cli vastai/SKILL.md).
 */
export const ActualStatus = z.enum([
  "created",
  "loading",
  "running",
  "stopped",
  "frozen",
  "exited",
  "rebooting",
  "unknown",
  "offline",
]);
export type ActualStatus = z.infer<typeof ActualStatus>;

/**
 * One instance: vast-ai/docs api-reference/openapi/yaml/show_instances.yaml (v1 list items) and show_instance.yaml
 * (`Instance`), fields of both. Two conflicts, settled by what vast-cli reads: `ports` (show_instance.yaml: an array
 * of integers; show_instances.yaml and vast.py wait_for_instance/ssh-url: `ports["5000/tcp"][0]["HostPort"]`) and
 * `extra_env` (show_instance.yaml: strings; show_instances.yaml and vastai/api/instances.py: `[key, value]` pairs).
 * Required: `id`, and `start_date` and `extra_env`, which vastai/api/instances.py reads unconditionally.
 * `cur_state` is `running`, `stopped` or `unloaded` ("released on destroy", cli/reference/show-instance.mdx);
 * `intended_status` `running`, `stopped` or `frozen`.
 */
export const VastInstance = z.strictObject({
  id: z.int(),
  actual_status: z.string().nullable().optional(),
  cur_state: z.string().optional(),
  next_state: z.string().optional(),
  intended_status: z.string().optional(),
  label: z.string().nullable().optional(),
  template_id: z.int().nullable().optional(),
  template_hash_id: z.string().nullable().optional(),
  template_name: z.string().nullable().optional(),
  image_uuid: z.string().optional(),
  image_args: z.array(z.string()).optional(),
  image_runtype: z.string().optional(),
  extra_env: z.array(z.tuple([z.string(), z.string()])),
  onstart: z.string().nullable().optional(),
  jupyter_token: z.string().optional(),
  status_msg: z.string().nullable().optional(),
  public_ipaddr: z.string().optional(),
  local_ipaddrs: z.string().optional(),
  ssh_host: z.string().optional(),
  ssh_idx: z.string().optional(),
  ssh_port: z.int().optional(),
  machine_dir_ssh_port: z.int().optional(),
  machine_id: z.int().optional(),
  bundle_id: z.int().optional(),
  start_date: z.number(),
  end_date: z.number().optional(),
  uptime_mins: z.number().nullable().optional(),
  duration: z.number().optional(),
  cpu_arch: z.string().optional(),
  cpu_cores: z.int().optional(),
  cpu_cores_effective: z.number().optional(),
  cpu_name: z.string().optional(),
  cpu_ram: z.int().optional(),
  cpu_util: z.number().optional(),
  mem_limit: z.number().nullable().optional(),
  mem_usage: z.number().nullable().optional(),
  vmem_usage: z.number().nullable().optional(),
  gpu_name: z.string().optional(),
  gpu_arch: z.string().optional(),
  gpu_totalram: z.int().optional(),
  gpu_ram: z.int().optional(),
  gpu_util: z.number().nullable().optional(),
  gpu_temp: z.number().nullable().optional(),
  gpu_frac: z.number().optional(),
  gpu_lanes: z.int().optional(),
  gpu_mem_bw: z.number().optional(),
  bw_nvlink: z.number().optional(),
  disk_name: z.string().optional(),
  disk_space: z.number().optional(),
  disk_bw: z.number().optional(),
  disk_util: z.number().optional(),
  disk_usage: z.number().optional(),
  direct_port_count: z.int().optional(),
  direct_port_start: z.int().optional(),
  direct_port_end: z.int().optional(),
  /** "Port mappings. Only present on running instances." */
  ports: VastPortMap.nullable().optional(),
  static_ip: z.boolean().optional(),
  geolocation: z.string().optional(),
  verification: z.string().optional(),
  rentable: z.boolean().optional(),
  host_id: z.int().optional(),
  hosting_type: z.int().optional(),
  min_bid: z.number().optional(),
  is_bid: z.boolean().optional(),
  dph_base: z.number().optional(),
  dph_total: z.number().optional(),
  dlperf: z.number().nullable().optional(),
  dlperf_per_dphtotal: z.number().nullable().optional(),
  flops_per_dphtotal: z.number().optional(),
  total_flops: z.number().optional(),
  score: z.number().nullable().optional(),
  reliability2: z.number().optional(),
  os_version: z.string().nullable().optional(),
  mobo_name: z.string().optional(),
  pci_gen: z.number().optional(),
  pcie_bw: z.number().optional(),
  num_gpus: z.int().optional(),
  logo: z.string().optional(),
  webpage: z.string().nullable().optional(),
  search: PriceBreakdown.optional(),
  instance: PriceBreakdown.optional(),
  storage_cost: z.number().optional(),
  storage_total_cost: z.number().optional(),
  vram_costperhour: z.number().optional(),
  credit_balance: z.number().nullable().optional(),
  credit_discount: z.number().nullable().optional(),
  credit_discount_max: z.number().nullable().optional(),
  client_run_time: z.number().optional(),
  host_run_time: z.number().optional(),
  external: z.boolean().optional(),
  time_remaining: z.string().optional(),
  time_remaining_isbid: z.string().optional(),
  country_code: z.string().nullable().optional(),
  volume_info: z.array(z.record(z.string(), z.unknown())).optional(),
});
export type VastInstance = z.infer<typeof VastInstance>;

/**
 * vast-ai/docs api-reference/openapi/yaml/show_instance.yaml, 200: `{instances: Instance}`; `null` for an instance
 * the account does not (or no longer) have (vastai/api/instances.py show_instance returns None then).
 */
export const ShowInstanceResponse = z.strictObject({ instances: VastInstance.nullable() });
export type ShowInstanceResponse = z.infer<typeof ShowInstanceResponse>;

/**
 * vast-ai/docs api-reference/openapi/yaml/show_instances.yaml, query parameters (strings on the wire; `order_by`,
 * `select_cols` and `select_filters` are JSON). Keyset paging: pass the previous answer's `next_token` as
 * `after_token`.
 */
export const ListInstancesQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^-?\d+$/)
    .optional(),
  after_token: z.string().optional(),
  order_by: z.string().optional(),
  select_cols: z.string().optional(),
  select_filters: z.string().optional(),
});
export type ListInstancesQuery = z.input<typeof ListInstancesQuery>;

/**
 * vast-ai/docs api-reference/openapi/yaml/show_instances.yaml, 200. `next_token` is required: the spec promises it
 * (`null` when no more pages), and it is what tells a v1 page from the old v0 list `{instances}`.
 */
export const ListInstancesResponse = z.strictObject({
  success: z.boolean().optional(),
  instances_found: z.int().optional(),
  total_instances: z.int().optional(),
  label_counts: z.record(z.string(), z.int()).optional(),
  next_token: z.string().nullable(),
  instances: z.array(VastInstance),
});
export type ListInstancesResponse = z.infer<typeof ListInstancesResponse>;

/** show_instances.yaml 400: invalid filter/order column or an invalid `after_token`. */
export const ListInstancesError = z.strictObject({
  error: z.enum(["invalid_request", "invalid_token"]),
  msg: z.string(),
});

/** vast-ai/docs api-reference/openapi/yaml/destroy_instance.yaml, 200: `{success, msg?}`. 404: `error: "not_found"`. */
export const DestroyInstanceResponse = z.strictObject({ success: z.boolean(), msg: z.string().optional() });
export type DestroyInstanceResponse = z.infer<typeof DestroyInstanceResponse>;

/** vast-ai/docs api-reference/openapi/yaml/{stop,start,label}_instance.yaml (`manage_instance.yaml`), request. */
export const ManageInstanceRequest = z.strictObject({
  state: z.enum(["running", "stopped"]).optional(),
  label: z.string().max(1_024).optional(),
});
export type ManageInstanceRequest = z.input<typeof ManageInstanceRequest>;

/** stop_instance.yaml `SimpleBooleanSuccessResponse`. */
export const ManageInstanceResponse = z.strictObject({ success: z.boolean() });
