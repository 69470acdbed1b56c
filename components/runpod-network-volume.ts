import * as pulumi from "@pulumi/pulumi";
import * as api from "./runpod-api";

// A RunPod network volume as a dynamic provider over RunPod's REST v2 API
// (`https://api.runpod.io/v2/network-volumes`). v2, because REST v1 (`rest.runpod.io/v1/networkvolumes`) was
// deprecated and retired on 15 Nov 2026 (providers.md §1.1); v2 is RunPod's current REST API. The volume is the
// weight cache of RunPod serverless endpoints: a worker mounts it at /runpod-volume, so weights are downloaded once
// per data centre and later workers load them from there. As in runpod-endpoint.ts, Pulumi serializes the provider object *by value*: its methods
// may use this module's constants and functions and `./runpod-api`, but never a client, a logger, a
// `pulumi.Config` or the API key — those are built inside each method from the inputs.

/** RunPod's size bounds for a network volume in REST v2 (`CreateNetworkVolumeRequest.size`), in GB. */
const MIN_GB = 10;
const MAX_GB = 4096;
/** What the Pulumi engine sends for a value not known yet (preview); validation skips it. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/** A RunPod data centre id such as "EU-RO-1" or "US-TX-3" (the same rule as the endpoint's dataCenterIds). */
const DATA_CENTER_ID = /^[A-Z]{2}(-[A-Z0-9]+)*$/;

export { MAX_GB as RUNPOD_NETWORK_VOLUME_MAX_GB, MIN_GB as RUNPOD_NETWORK_VOLUME_MIN_GB };

/** The Pulumi type token of the dynamic resource (for the policy pack and plan output). */
export const RUNPOD_NETWORK_VOLUME_TYPE = "pulumi-nodejs:dynamic/runpod:NetworkVolume";

/** The dynamic resource's inputs after `check`. */
export interface RunPodNetworkVolumeInputs {
  name: string;
  sizeGb: number;
  dataCenterId: string;
  /** Storage tier (v2 `type`); immutable. Absent: the data centre's primary tier, and whatever the volume has. */
  storageType?: api.NetworkVolumeType;
  /** RunPod API host (REST v2 lives at `{apiBase}/v2`). */
  apiBase?: string;
  apiKey: string;
}

export interface RunPodNetworkVolumeOutputs extends RunPodNetworkVolumeInputs {
  volumeId: string;
}

const show = (value: unknown): string => (value === undefined ? "nothing" : JSON.stringify(value));
const isInt = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value);

/** The message for a size below what the volume already has; names the field, both sizes and the way out. */
export function shrinkRefusal(fromGb: number, toGb: number): string {
  return (
    `sizeGb cannot go from ${fromGb} to ${toGb} GB: RunPod network volumes only grow, and replacing the volume ` +
    `would delete the cached model weights. Keep sizeGb at ${fromGb} or more; to start over with an empty ` +
    "smaller volume on purpose, also change its name (that replaces it)"
  );
}

/**
 * Field-named validation of inputs; each reason says what to write instead. Values equal to the engine's unknown
 * marker are skipped. With `olds` (the previous inputs of the same volume), a smaller size is refused too.
 */
export function validateNetworkVolumeInputs(
  inputs: Readonly<Record<string, unknown>>,
  olds?: Readonly<Record<string, unknown>>,
): pulumi.dynamic.CheckFailure[] {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });
  const known = (key: string) => inputs[key] !== UNKNOWN;
  const { name, sizeGb, dataCenterId, storageType, apiBase, apiKey } = inputs;

  if (known("name") && (typeof name !== "string" || name.trim() === "")) {
    fail("name", `name must be a non-empty string, e.g. "aiorch-prod-weights"; got ${show(name)}`);
  }
  if (known("sizeGb") && !(isInt(sizeGb) && sizeGb >= MIN_GB && sizeGb <= MAX_GB)) {
    fail(
      "sizeGb",
      `sizeGb must be a whole number of GB from ${MIN_GB} to ${MAX_GB} (RunPod's limits); got ${show(sizeGb)}` +
        (isInt(sizeGb) && sizeGb > MAX_GB ? `: use ${MAX_GB} or less` : ""),
    );
  }
  if (known("dataCenterId") && !(typeof dataCenterId === "string" && DATA_CENTER_ID.test(dataCenterId))) {
    fail(
      "dataCenterId",
      `dataCenterId must be a RunPod data centre id such as "EU-RO-1" or "US-TX-3"; got ${show(dataCenterId)}`,
    );
  }
  if (
    known("storageType") &&
    storageType !== undefined &&
    !api.NETWORK_VOLUME_TYPES.includes(storageType as api.NetworkVolumeType)
  ) {
    fail(
      "storageType",
      `storageType must be one of ${api.NETWORK_VOLUME_TYPES.map((t) => `"${t}"`).join(", ")} (or left out for ` +
        `the data centre's default); got ${show(storageType)}`,
    );
  }
  if (
    known("apiBase") &&
    apiBase !== undefined &&
    !(typeof apiBase === "string" && /^https?:\/\/[^\s/]+/.test(apiBase))
  ) {
    fail(
      "apiBase",
      `apiBase must be an http(s) URL such as "${api.DEFAULT_RUNPOD_API_BASE}"; got ${show(apiBase)}`,
    );
  }
  if (known("apiKey") && (typeof apiKey !== "string" || apiKey.trim() === "")) {
    // Never echo the value: it is a credential.
    fail(
      "apiKey",
      "apiKey is required: set it with `pulumi config set --secret ai-orchestrator:runpodApiKey …`",
    );
  }
  // A shrink of the same volume (a new name, data centre or tier is a new volume, which may be any size).
  if (
    olds !== undefined &&
    isInt(olds.sizeGb) &&
    isInt(sizeGb) &&
    sizeGb < olds.sizeGb &&
    !replaced(olds, inputs).length
  ) {
    fail("sizeGb", shrinkRefusal(olds.sizeGb, sizeGb));
  }
  return failures;
}

/**
 * A new data centre or storage tier is a new volume: RunPod cannot move a volume or change its tier. A new name
 * is one too: v2 could rename in place, but the name is how a lost create is found again, and a rename is the
 * documented way to start over with a smaller volume (see `shrinkRefusal`). A storage tier left out keeps the
 * volume's, whatever it is.
 */
const REPLACE_KEYS = ["name", "dataCenterId"] as const;

const replaced = (olds: Readonly<Record<string, unknown>>, news: Readonly<Record<string, unknown>>) => {
  const keys: string[] = REPLACE_KEYS.filter((k) => news[k] !== UNKNOWN && olds[k] !== news[k]);
  const tier = news.storageType;
  if (tier !== undefined && tier !== UNKNOWN && olds.storageType !== undefined && olds.storageType !== tier) {
    keys.push("storageType");
  }
  return keys;
};

/**
 * The dynamic provider over REST v2 `/v2/network-volumes`. `tuning` shortens retries and timeouts (tests); the
 * default suits the real API.
 *
 * - create: adopts a volume with the same name in the same data centre (grown if smaller), else creates one
 *   (`POST`, 201); a create whose answer was lost is resolved by listing, never repeated blindly (see
 *   `api.createNetworkVolume`).
 * - diff: name, dataCenterId or a different storageType → replace (create the new one first, so endpoints move
 *   over before the old one goes); a larger sizeGb → grow in place (`PATCH {size}`); a smaller one is refused
 *   (RunPod cannot shrink, and a replace would throw the cached weights away). `apiKey` and `apiBase` are how to
 *   reach RunPod: changing only them is no diff.
 * - read: refreshes name, size, data centre and storage tier; a volume that is gone (404, and not listed) drops
 *   out of the state.
 * - delete: `DELETE /v2/network-volumes/{id}` (204); already gone (404, and not listed) is done.
 */
export function createRunPodNetworkVolumeProvider(
  tuning: Partial<api.RetryTuning> = {},
): pulumi.dynamic.ResourceProvider<RunPodNetworkVolumeInputs, RunPodNetworkVolumeOutputs> {
  const clientFor = (p: { apiKey: string; apiBase?: string }) =>
    api.runpodClient({ apiKey: p.apiKey, apiBase: p.apiBase, tuning });
  const outsOf = (
    inputs: RunPodNetworkVolumeInputs,
    volume: api.NetworkVolume,
  ): RunPodNetworkVolumeOutputs => ({
    ...inputs,
    name: volume.name,
    sizeGb: volume.size,
    dataCenterId: volume.dataCenter,
    // What the volume has, so a later explicit storageType is compared with the real tier.
    ...(api.NETWORK_VOLUME_TYPES.includes(volume.type as api.NetworkVolumeType)
      ? { storageType: volume.type as api.NetworkVolumeType }
      : {}),
    volumeId: volume.id,
  });

  return {
    async check(olds, news) {
      const hasOlds = olds !== undefined && Object.keys(olds).length > 0;
      return {
        inputs: news,
        failures: validateNetworkVolumeInputs(
          news as unknown as Record<string, unknown>,
          hasOlds ? (olds as unknown as Record<string, unknown>) : undefined,
        ),
      };
    },

    async diff(_id, olds, news) {
      const replaces = replaced(
        olds as unknown as Record<string, unknown>,
        news as unknown as Record<string, unknown>,
      );
      const resized = news.sizeGb !== olds.sizeGb;
      // `olds` are the last known outputs, so this also catches a volume grown outside Pulumi and then refreshed.
      if (replaces.length === 0 && isInt(news.sizeGb) && news.sizeGb < olds.sizeGb) {
        throw new Error(
          `RunPodNetworkVolume ${olds.name} (${olds.volumeId}): ${shrinkRefusal(olds.sizeGb, news.sizeGb)}`,
        );
      }
      return { changes: replaces.length > 0 || resized, replaces, deleteBeforeReplace: false };
    },

    async create(inputs) {
      const volume = await api.createNetworkVolume(clientFor(inputs), {
        name: inputs.name,
        size: inputs.sizeGb,
        dataCenter: inputs.dataCenterId,
        ...(inputs.storageType !== undefined ? { type: inputs.storageType } : {}),
      });
      return { id: volume.id, outs: outsOf(inputs, volume) };
    },

    async read(id, props) {
      if (!props) return { id };
      const volume = await api.getNetworkVolume(clientFor(props), id);
      if (!volume) return { id: "", props: {} as RunPodNetworkVolumeOutputs };
      return { id, props: outsOf(props, volume) };
    },

    async update(id, olds, news) {
      if (news.sizeGb < olds.sizeGb) {
        throw new Error(
          `RunPodNetworkVolume ${olds.name} (${id}): ${shrinkRefusal(olds.sizeGb, news.sizeGb)}`,
        );
      }
      if (news.sizeGb === olds.sizeGb) {
        return { outs: { ...news, storageType: news.storageType ?? olds.storageType, volumeId: id } };
      }
      const volume = await api.updateNetworkVolume(clientFor(news), id, { size: news.sizeGb });
      return { outs: outsOf(news, volume) };
    },

    async delete(id, props) {
      await api.deleteNetworkVolume(clientFor(props), id);
    },
  };
}

const provider = createRunPodNetworkVolumeProvider();

export interface RunPodNetworkVolumeArgs {
  /** Volume name as RunPod shows it; RunPod does not keep names unique, so a lost create is found by name and data centre. @default "{project}-{stack}-{resource name}" */
  readonly name?: pulumi.Input<string>;
  /** Size in GB, 10–4096 (REST v2's bounds); it can only grow (RunPod refuses to shrink a volume), so leave room for the models to come. */
  readonly sizeGb: pulumi.Input<number>;
  /** RunPod data centre of the volume, e.g. "EU-RO-1"; endpoints that mount it run only there. */
  readonly dataCenterId: pulumi.Input<string>;
  /** Storage tier, "STANDARD" or "HIGH_PERFORMANCE"; set at creation, so changing it replaces the volume. @default the data centre's primary tier */
  readonly storageType?: pulumi.Input<api.NetworkVolumeType>;
  /** RunPod API key; pass a secret (`config.requireSecret("runpodApiKey")`). It is kept in the state only as a secret. */
  readonly apiKey: pulumi.Input<string>;
  /** RunPod API host; REST v2 is `{apiBase}/v2` (a contract fake in tests). @default "https://api.runpod.io" */
  readonly apiBase?: pulumi.Input<string>;
}

/**
 * A RunPod network volume (`pulumi-nodejs:dynamic/runpod:NetworkVolume`), the weight cache of RunPod serverless
 * endpoints: pass the `volumeId` and `dataCenterId` of one volume per data centre to `RunPodServerlessEndpoint` in
 * `networkVolumeIds` and `networkVolumeDataCenterIds`. Deleting the resource deletes the volume and the weights on it.
 */
export class RunPodNetworkVolume extends pulumi.dynamic.Resource {
  /** RunPod network volume id. */
  declare readonly volumeId: pulumi.Output<string>;
  /** RunPod data centre the volume (and every endpoint that mounts it) lives in. */
  declare readonly dataCenterId: pulumi.Output<string>;
  /** Size in GB as RunPod reports it. */
  declare readonly sizeGb: pulumi.Output<number>;
  /** Storage tier as RunPod reports it ("STANDARD" or "HIGH_PERFORMANCE"). */
  declare readonly storageType: pulumi.Output<string | undefined>;

  constructor(name: string, args: RunPodNetworkVolumeArgs, opts?: pulumi.CustomResourceOptions) {
    const volumeName = args.name ?? `${pulumi.getProject()}-${pulumi.getStack()}-${name}`;
    // Plain values are checked now; outputs and promises once resolved, by the provider's check.
    const plain = (value: unknown) =>
      pulumi.Output.isInstance(value) || isPromiseLike(value) ? UNKNOWN : value;
    const failures = validateNetworkVolumeInputs({
      name: plain(volumeName),
      sizeGb: plain(args.sizeGb),
      dataCenterId: plain(args.dataCenterId),
      storageType: plain(args.storageType),
      apiBase: plain(args.apiBase),
      // Checked again by the provider once resolved; here only whether one was given at all.
      apiKey: args.apiKey === undefined ? undefined : UNKNOWN,
    });
    if (failures.length > 0) {
      throw new Error(`RunPodNetworkVolume ${name}: ${failures.map((f) => f.reason).join("; ")}`);
    }
    super(
      provider,
      name,
      {
        volumeId: undefined,
        name: volumeName,
        sizeGb: args.sizeGb,
        dataCenterId: args.dataCenterId,
        storageType: args.storageType,
        apiBase: args.apiBase,
        apiKey: pulumi.secret(args.apiKey),
      },
      {
        ...opts,
        additionalSecretOutputs: [...new Set([...(opts?.additionalSecretOutputs ?? []), "apiKey"])],
      },
      "runpod",
      "NetworkVolume",
    );
  }
}

function isPromiseLike(value: unknown): boolean {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
