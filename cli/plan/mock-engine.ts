/**
 * Runs the real Pulumi program under Pulumi's mock engine and records every resource it registers, with its
 * parent and its inputs as the engine would receive them — secrets kept as markers so they print as [secret].
 * One Pulumi runtime per process: call `evaluateProgram` once.
 */
import * as pulumi from "@pulumi/pulumi";
// MockMonitor is exported by the runtime but not by its typings; subclassing it keeps the engine's behaviour.
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { OFFLINE_SECRET_PREFIX } from "../../core/config";

export const SECRET_MARK = "[secret]";
export const UNKNOWN_MARK = "[unknown]";

/** The Pulumi program itself threw (a component's early check, a bad config it reads). */
export class ProgramError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = "ProgramError";
  }
}

export interface PlannedResource {
  readonly urn: string;
  readonly type: string;
  readonly name: string;
  /** URN of the parent; undefined for the stack itself. */
  readonly parent?: string;
  /** Custom resources are managed by a provider; component resources only group. */
  readonly custom: boolean;
  /** Inputs with secrets replaced by `[secret]`. */
  readonly inputs: Record<string, unknown>;
  /** Inputs exactly as registered (secrets in the clear) — for policy checks, never for printing. */
  readonly rawInputs: Record<string, unknown>;
  /** Dotted paths of inputs that were registered as secrets. */
  readonly secretPaths: readonly string[];
  /** URNs it waits for: its `dependsOn` (a component's stands for its children) and the resources its inputs come from. */
  readonly dependencies: readonly string[];
}

export interface ProgramEvaluation {
  readonly resources: readonly PlannedResource[];
  /** Stack outputs with secrets masked. */
  readonly outputs: Record<string, unknown>;
}

const SIG = pulumi.runtime.specialSigKey;
const SECRET_SIG = pulumi.runtime.specialSecretSig;
const RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * Replace Pulumi's wire markers: secrets → `[secret]` (every leaf of a secret object, so its keys still show),
 * resource references → their URN, unknowns → `[unknown]`.
 */
function unwrap(
  value: unknown,
  path: string,
  secretPaths: string[] | undefined,
  reveal: boolean,
  inSecret = false,
): unknown {
  if (value === UNKNOWN) return UNKNOWN_MARK;
  if (Array.isArray(value))
    return value.map((v, i) => unwrap(v, `${path}[${i}]`, secretPaths, reveal, inSecret));
  if (value === null || typeof value !== "object")
    return inSecret && !reveal && value !== null ? SECRET_MARK : value;
  const record = value as Record<string, unknown>;
  if (record[SIG] === SECRET_SIG) {
    secretPaths?.push(path);
    return unwrap(record.value, path, undefined, reveal, true);
  }
  if (record[SIG] === RESOURCE_SIG) return record.urn;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    out[k] = unwrap(v, path ? `${path}.${k}` : k, secretPaths, reveal, inSecret);
  }
  return out;
}

/** Stack outputs arrive resolved; a secret there can only be recognised by its offline placeholder. */
function maskPlaceholders(value: unknown): unknown {
  if (typeof value === "string") return value.includes(OFFLINE_SECRET_PREFIX) ? SECRET_MARK : value;
  if (Array.isArray(value)) return value.map(maskPlaceholders);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskPlaceholders(v)]));
  }
  return value;
}

/** A stable stand-in for the random suffix Pulumi appends to auto-named objects. */
function autoNameSuffix(name: string): string {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h.toString(16).padStart(8, "0").slice(0, 8);
}

/** Values the mock engine returns for outputs a real provider would compute. */
function computedState(type: string, name: string, n: number): Record<string, unknown> {
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
    case "random:index/randomString:RandomString":
      // A recognisable placeholder: if it ever shows up outside a secret, the plan reports a leak.
      return { result: `${OFFLINE_SECRET_PREFIX}random:${name}` };
    case "random:index/randomBytes:RandomBytes":
      return {
        base64: `${OFFLINE_SECRET_PREFIX}random:${name}`,
        hex: `${OFFLINE_SECRET_PREFIX}random:${name}`,
      };
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      return {
        certPem: `-----BEGIN CERTIFICATE-----\noffline plan certificate ${name}\n-----END CERTIFICATE-----\n`,
      };
    case "tls:index/certRequest:CertRequest":
      return {
        certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\noffline ${name}\n-----END CERTIFICATE REQUEST-----\n`,
      };
    case "command:remote:Command":
      return { stdout: `${OFFLINE_SECRET_PREFIX}command-stdout:${name}`, stderr: "" };
    case "tls:index/privateKey:PrivateKey":
      return {
        privateKeyOpenssh: `${OFFLINE_SECRET_PREFIX}private-key:${name}`,
        privateKeyPem: `${OFFLINE_SECRET_PREFIX}private-key:${name}`,
        publicKeyOpenssh: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfflinePlanKey ${name}`,
      };
    case "pulumi-nodejs:dynamic/runpod:Endpoint":
      return {
        endpointId: `offline-${name}`,
        templateId: `offline-template-${name}`,
        templateName: `${name}-template`,
      };
    case "hcloud:index/server:Server":
      return {
        ipv4Address: `192.0.2.${n % 250}`,
        ipv6Address: `2001:db8::${n.toString(16)}`,
        status: "running",
      };
    default:
      return {};
  }
}

/** The URN the mock engine gives a resource: a child's type is prefixed with its parent's. */
function urnOf(
  project: string,
  stack: string,
  parent: string | undefined,
  type: string,
  name: string,
): string {
  const qualified = parent ? `${parent.split("::")[2]?.split("$").pop()}$${type}` : type;
  return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
  getDependenciesList(): string[];
}

/**
 * Evaluate a Pulumi program offline.
 * @param runProgram loads the program (e.g. `() => require("./index.ts")`); its exports become stack outputs
 */
export async function evaluateProgram(options: {
  project: string;
  stack: string;
  config: Record<string, string>;
  secretKeys: string[];
  runProgram: () => Record<string, unknown> | Promise<Record<string, unknown>>;
}): Promise<ProgramEvaluation> {
  const resources: PlannedResource[] = [];
  let counter = 0;
  const mocks: pulumi.runtime.Mocks = {
    newResource: (args) => {
      counter += 1;
      // hcloud takes numeric ids (network, placement group, firewall); numeric strings satisfy every provider.
      const state: Record<string, unknown> = {
        ...args.inputs,
        ...computedState(args.type, args.name, counter),
      };
      const metadata = args.inputs?.metadata as Record<string, unknown> | undefined;
      if (args.type.startsWith("kubernetes:") && args.custom && metadata && metadata.name === undefined) {
        state.metadata = { ...metadata, name: `${args.name}-${autoNameSuffix(args.name)}` };
      }
      return { id: String(1000 + counter), state };
    },
    // data sources answer with their inputs, plus the id a lookup by name returns
    call: (args) =>
      args.token === "hcloud:index/getSshKey:getSshKey" ? { id: 4242, ...args.inputs } : args.inputs,
  };

  class RecordingMonitor extends MockMonitor {
    override async registerResource(req: RegisterRequest, callback: (err: unknown, resp: unknown) => void) {
      const type = req.getType();
      const name = req.getName();
      const parent = req.getParent() || undefined;
      const wire = req.getObject()?.toJavaScript() ?? {};
      const secretPaths: string[] = [];
      const urn = urnOf(options.project, options.stack, parent, type, name);
      resources.push({
        urn,
        type,
        name,
        parent,
        custom: req.getCustom(),
        inputs: unwrap(wire, "", secretPaths, false) as Record<string, unknown>,
        rawInputs: unwrap(wire, "", undefined, true) as Record<string, unknown>,
        secretPaths,
        dependencies: [...new Set(req.getDependenciesList())],
      });
      return super.registerResource(req, callback);
    }
  }

  pulumi.runtime.setAllConfig(options.config, options.secretKeys);
  await pulumi.runtime.setMocks(mocks, options.project, options.stack, true);
  pulumi.runtime.setMockOptions(new RecordingMonitor(mocks), options.project, options.stack, true);

  // A throwing program must surface as one error, not as an unhandled rejection inside Pulumi's stack resource.
  let programError: unknown;
  const outputs = await pulumi.runtime.runInPulumiStack(async () => {
    try {
      return await options.runProgram();
    } catch (error) {
      programError = error;
      return {};
    }
  });
  await pulumi.runtime.disconnect(); // waits until every registration (also those inside apply) has landed
  if (programError !== undefined) throw new ProgramError(programError);
  return { resources, outputs: maskPlaceholders(outputs ?? {}) as Record<string, unknown> };
}
