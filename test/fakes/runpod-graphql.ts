/**
 * Contract fake of RunPod's GraphQL API (`POST /graphql`) for serverless templates and endpoints — a real HTTP
 * server on 127.0.0.1, built from the checklist in providers.md §1.11:
 * - auth by `Authorization: Bearer KEY` or `?api_key=KEY`; a missing or wrong key gets HTTP 401;
 * - errors are HTTP 200 with `errors[]` (validation errors without `data`, execution errors with it);
 * - `saveTemplate` upserts by id and keeps names unique; `deleteTemplate(templateName)` refuses while an
 *   endpoint uses the template;
 * - `saveEndpoint` creates without id and updates with it, validating name, pools and template, and a
 *   `networkVolumeId`: with the `networkVolume` lookup (e.g. `RunpodVolumesFake.volume`) the volume must exist and
 *   `locations` must name its data centre (a volume pins the endpoint there); without it, only the id's form;
 *   `deleteEndpoint(id)` refuses unless workersMin = workersMax = 0;
 * - `myself { endpoints {…} podTemplates {…} }` lists, projected to the fields asked for; unknown fields and
 *   unknown input fields are GraphQL errors, as on the real API.
 * The operation is parsed just enough: operation type, root fields with arguments (literals or `$variables`)
 * and selection sets. Fault injection: queued 429s (with or without Retry-After, non-JSON body), 5xx, a request
 * that never gets an answer, a GraphQL error, and "applied, then answered 500". Every request is recorded.
 * Error texts are the fake's own wording; RunPod does not publish its messages.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const FAKE_GPU_POOLS = [
  "AMPERE_16",
  "AMPERE_24",
  "ADA_24",
  "AMPERE_48",
  "ADA_48_PRO",
  "AMPERE_80",
  "ADA_80_PRO",
  "HOPPER_141",
] as const;

export interface FakeTemplate {
  id: string;
  name: string;
  imageName: string;
  containerDiskInGb: number;
  volumeInGb: number;
  volumeMountPath: string | null;
  dockerArgs: string;
  env: { key: string; value: string }[];
  ports: string | null;
  isServerless: boolean;
  readme: string;
  startSsh: boolean;
  startJupyter: boolean;
  isPublic: boolean;
  containerRegistryAuthId: string | null;
}

export interface FakeEndpoint {
  id: string;
  name: string;
  templateId: string;
  gpuIds: string;
  gpuCount: number;
  workersMin: number;
  workersMax: number;
  idleTimeout: number;
  scalerType: string;
  scalerValue: number;
  locations: string;
  networkVolumeId: string | null;
  flashBootType: "OFF" | "FLASHBOOT";
  executionTimeoutMs: number;
  type: string;
  /** Workers the job API's /health reports running (billed); set by tests. */
  runningWorkers?: number;
}

/** `match`: only requests whose root field is this (e.g. "saveTemplate", "myself"); absent = any request. */
export type FakeFault = { match?: string } & (
  | { kind: "status"; status: number; retryAfter?: string; body?: string }
  | { kind: "hang" }
  | { kind: "graphqlError"; message: string }
  | { kind: "applyThenFail"; status?: number }
);

export interface RecordedRequest {
  method: string;
  path: string;
  /** Query-string parameters (this is where `api_key` would be). */
  params: Record<string, string>;
  authorization: string | undefined;
  /** The parsed JSON body, when it was JSON. */
  body: { query?: string; variables?: Record<string, unknown>; operationName?: string } | undefined;
  /** Root fields of the operation, e.g. ["saveEndpoint"] or ["myself"]. */
  fields: string[];
  variables: Record<string, unknown>;
  /** HTTP status answered; undefined while (or if never) answered. */
  status: number | undefined;
  /** The injected fault that shaped the answer, if any. */
  fault: FakeFault["kind"] | undefined;
}

export interface RunPodFake {
  /** API base to give the client (`{url}/graphql` is the endpoint). */
  readonly url: string;
  readonly apiKey: string;
  readonly requests: RecordedRequest[];
  readonly templates: Map<string, FakeTemplate>;
  readonly endpoints: Map<string, FakeEndpoint>;
  /** Queue a fault for the next `times` matching requests. */
  inject(fault: FakeFault, times?: number): void;
  /** The next `times` deletes of that kind are refused even when allowed (workers draining, RunPod's lag). */
  refuseDeletes(kind: "endpoint" | "template", times: number): void;
  /** Recorded requests whose root fields include `field`. */
  calls(field: string): RecordedRequest[];
  /** Forget state, faults and requests. */
  reset(): void;
  stop(): Promise<void>;
}

// ── a GraphQL subset: operation, fields with arguments, selection sets ────────────────────────────────────

class GraphQLError extends Error {
  constructor(
    message: string,
    readonly code = "BAD_USER_INPUT",
  ) {
    super(message);
  }
}

type Value =
  | { kind: "var"; name: string }
  | { kind: "literal"; value: unknown }
  | { kind: "object"; fields: Record<string, Value> }
  | { kind: "list"; items: Value[] };

interface Field {
  name: string;
  alias: string | undefined;
  args: Record<string, Value>;
  selections: Field[] | undefined;
}

interface Operation {
  type: "query" | "mutation";
  selections: Field[];
}

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  const pattern =
    /\s+|,|#[^\n]*|\.\.\.|[{}()[\]:!$=@]|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z][_0-9A-Za-z]*/y;
  let at = 0;
  while (at < source.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(source);
    if (!match) throw new GraphQLError(`Syntax Error: unexpected character ${JSON.stringify(source[at])}`);
    const token = match[0];
    at += token.length;
    if (/^\s/.test(token) || token === "," || token.startsWith("#")) continue;
    if (token === "...") throw new GraphQLError("Syntax Error: fragments are not supported by this fake");
    tokens.push(token);
  }
  return tokens;
}

function parseOperation(source: string): Operation {
  const tokens = tokenize(source);
  let i = 0;
  const peek = () => tokens[i];
  const next = () => {
    const token = tokens[i++];
    if (token === undefined) throw new GraphQLError("Syntax Error: unexpected end of document");
    return token;
  };
  const expect = (token: string) => {
    const got = next();
    if (got !== token) throw new GraphQLError(`Syntax Error: expected ${token}, found ${got}`);
  };
  const isName = (token: string | undefined) => token !== undefined && /^[_A-Za-z]/.test(token);

  const parseValue = (): Value => {
    const token = next();
    if (token === "$") return { kind: "var", name: next() };
    if (token.startsWith('"')) return { kind: "literal", value: JSON.parse(token) };
    if (/^-?\d/.test(token)) return { kind: "literal", value: Number(token) };
    if (token === "true" || token === "false") return { kind: "literal", value: token === "true" };
    if (token === "null") return { kind: "literal", value: null };
    if (token === "{") {
      const fields: Record<string, Value> = {};
      while (peek() !== "}") {
        const key = next();
        expect(":");
        fields[key] = parseValue();
      }
      next();
      return { kind: "object", fields };
    }
    if (token === "[") {
      const items: Value[] = [];
      while (peek() !== "]") items.push(parseValue());
      next();
      return { kind: "list", items };
    }
    if (isName(token)) return { kind: "literal", value: token }; // enum value
    throw new GraphQLError(`Syntax Error: unexpected ${token}`);
  };

  const parseSelections = (): Field[] => {
    expect("{");
    const fields: Field[] = [];
    while (peek() !== "}") {
      let name = next();
      let alias: string | undefined;
      if (!isName(name)) throw new GraphQLError(`Syntax Error: expected a field name, found ${name}`);
      if (peek() === ":") {
        next();
        alias = name;
        name = next();
      }
      const args: Record<string, Value> = {};
      if (peek() === "(") {
        next();
        while (peek() !== ")") {
          const arg = next();
          expect(":");
          args[arg] = parseValue();
        }
        next();
      }
      const selections = peek() === "{" ? parseSelections() : undefined;
      fields.push({ name, alias, args, selections });
    }
    next();
    return fields;
  };

  let type: Operation["type"] = "query";
  if (peek() !== "{") {
    const keyword = next();
    if (keyword !== "query" && keyword !== "mutation") {
      throw new GraphQLError(`Syntax Error: unexpected ${keyword}; this fake serves queries and mutations`);
    }
    type = keyword;
    if (isName(peek())) next();
    if (peek() === "(") {
      // Variable definitions: their types are not checked, the values are (per input type below).
      let depth = 0;
      do {
        const token = next();
        if (token === "(") depth++;
        if (token === ")") depth--;
      } while (depth > 0);
    }
  }
  const selections = parseSelections();
  if (i !== tokens.length)
    throw new GraphQLError(`Syntax Error: unexpected ${tokens[i]} after the operation`);
  return { type, selections };
}

function resolveValue(value: Value, variables: Record<string, unknown>): unknown {
  switch (value.kind) {
    case "var":
      return variables[value.name];
    case "literal":
      return value.value;
    case "object":
      return Object.fromEntries(
        Object.entries(value.fields).map(([k, v]) => [k, resolveValue(v, variables)]),
      );
    case "list":
      return value.items.map((v) => resolveValue(v, variables));
  }
}

// ── schema subset ─────────────────────────────────────────────────────────────────────────────────────────

/** Output types: field → object type it returns (null = scalar). */
const OUTPUT_TYPES: Record<string, Record<string, string | null>> = {
  Query: { myself: "User" },
  Mutation: {
    saveTemplate: "PodTemplate",
    deleteTemplate: null,
    saveEndpoint: "Endpoint",
    deleteEndpoint: null,
  },
  User: { id: null, email: null, endpoints: "Endpoint", podTemplates: "PodTemplate" },
  Endpoint: {
    id: null,
    name: null,
    templateId: null,
    template: "PodTemplate",
    gpuIds: null,
    gpuCount: null,
    workersMin: null,
    workersMax: null,
    idleTimeout: null,
    scalerType: null,
    scalerValue: null,
    locations: null,
    networkVolumeId: null,
    flashBootType: null,
    executionTimeoutMs: null,
    type: null,
  },
  PodTemplate: {
    id: null,
    name: null,
    imageName: null,
    containerDiskInGb: null,
    volumeInGb: null,
    volumeMountPath: null,
    dockerArgs: null,
    env: "EnvironmentVariable",
    ports: null,
    isServerless: null,
    readme: null,
    startSsh: null,
    startJupyter: null,
    isPublic: null,
    containerRegistryAuthId: null,
  },
  EnvironmentVariable: { key: null, value: null },
};

const ENUMS: Record<string, readonly string[]> = { FlashBootType: ["OFF", "FLASHBOOT"] };

/** Input types: field → GraphQL type (`!` required, `[…]` list). */
const INPUT_TYPES: Record<string, Record<string, string>> = {
  SaveTemplateInput: {
    id: "String",
    name: "String!",
    imageName: "String!",
    containerDiskInGb: "Int!",
    volumeInGb: "Int!",
    volumeMountPath: "String",
    dockerArgs: "String!",
    env: "[EnvironmentVariableInput]!",
    ports: "String",
    isServerless: "Boolean",
    readme: "String",
    startSsh: "Boolean",
    startJupyter: "Boolean",
    isPublic: "Boolean",
    containerRegistryAuthId: "String",
  },
  EndpointInput: {
    id: "String",
    name: "String!",
    templateId: "String",
    gpuIds: "String!",
    gpuCount: "Int",
    workersMin: "Int",
    workersMax: "Int",
    idleTimeout: "Int",
    scalerType: "String",
    scalerValue: "Int",
    locations: "String",
    networkVolumeId: "String",
    flashBootType: "FlashBootType",
    executionTimeoutMs: "Int",
    minCudaVersion: "String",
    allowedCudaVersions: "String",
    instanceIds: "[String]",
    type: "String",
  },
  EnvironmentVariableInput: { key: "String!", value: "String!" },
};

function checkInput(value: unknown, type: string, path: string): void {
  const required = type.endsWith("!");
  const bare = required ? type.slice(0, -1) : type;
  if (value === undefined || value === null) {
    if (required) throw new GraphQLError(`Field "${path}" of required type "${type}" was not provided.`);
    return;
  }
  if (bare.startsWith("[")) {
    if (!Array.isArray(value)) throw new GraphQLError(`Field "${path}": expected a list of ${bare}`);
    for (const [n, item] of value.entries()) checkInput(item, bare.slice(1, -1), `${path}[${n}]`);
    return;
  }
  const ok = (() => {
    if (bare === "String") return typeof value === "string";
    if (bare === "Int") return Number.isInteger(value);
    if (bare === "Boolean") return typeof value === "boolean";
    const values = ENUMS[bare];
    if (values) return values.includes(value as string);
    const fields = INPUT_TYPES[bare];
    if (!fields || typeof value !== "object" || Array.isArray(value)) return false;
    for (const key of Object.keys(value)) {
      if (!(key in fields)) throw new GraphQLError(`Field "${key}" is not defined by type "${bare}".`);
    }
    for (const [key, fieldType] of Object.entries(fields)) {
      checkInput((value as Record<string, unknown>)[key], fieldType, `${path}.${key}`);
    }
    return true;
  })();
  if (!ok) throw new GraphQLError(`Field "${path}": ${bare} cannot represent ${JSON.stringify(value)}`);
}

function checkSelections(fields: Field[] | undefined, typeName: string, path: string): void {
  const type = OUTPUT_TYPES[typeName] ?? {};
  for (const field of fields ?? []) {
    if (!(field.name in type)) {
      throw new GraphQLError(
        `Cannot query field "${field.name}" on type "${typeName}".`,
        "GRAPHQL_VALIDATION_FAILED",
      );
    }
    const child = type[field.name];
    if (child && !field.selections) {
      throw new GraphQLError(
        `Field "${path}${field.name}" of type "${child}" must have a selection of subfields.`,
        "GRAPHQL_VALIDATION_FAILED",
      );
    }
    if (!child && field.selections) {
      throw new GraphQLError(
        `Field "${path}${field.name}" must not have a selection since it is a scalar.`,
        "GRAPHQL_VALIDATION_FAILED",
      );
    }
    if (child) checkSelections(field.selections, child, `${path}${field.name}.`);
  }
}

function project(value: unknown, fields: Field[] | undefined): unknown {
  if (!fields || value === null || value === undefined) return value ?? null;
  if (Array.isArray(value)) return value.map((item) => project(item, fields));
  const source = value as Record<string, unknown>;
  return Object.fromEntries(fields.map((f) => [f.alias ?? f.name, project(source[f.name], f.selections)]));
}

// ── the server ───────────────────────────────────────────────────────────────────────────────────────────

export interface RunPodFakeOptions {
  apiKey?: string;
  /** Resolves a network volume id to the volume, e.g. `RunpodVolumesFake.volume`. @default none (form only) */
  networkVolume?: (id: string) => { dataCenterId: string } | undefined;
}

export async function startRunPodFake(options: RunPodFakeOptions = {}): Promise<RunPodFake> {
  const apiKey = options.apiKey ?? "rpa_FAKEKEY0123456789abcdefghij";
  const templates = new Map<string, FakeTemplate>();
  const endpoints = new Map<string, FakeEndpoint>();
  const requests: RecordedRequest[] = [];
  let faults: FakeFault[] = [];
  const refusals = { endpoint: 0, template: 0 };
  let counter = 0;
  const newId = (prefix: string) => `${prefix}${(++counter).toString(36).padStart(8, "0")}`;

  const checkVolume = (id: string, locations: string) => {
    if (!/^[A-Za-z0-9]+$/.test(id))
      throw new GraphQLError(`Invalid network volume id: ${JSON.stringify(id)}`);
    if (!options.networkVolume) return;
    const volume = options.networkVolume(id);
    if (!volume) throw new GraphQLError(`Network volume ${id} not found`);
    const dcs = locations
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    if (!dcs.includes(volume.dataCenterId)) {
      throw new GraphQLError(
        `Network volume ${id} is in ${volume.dataCenterId}; the endpoint's locations (${dcs.join(",") || "any"}) must include it`,
      );
    }
  };

  const templateInUse = (t: FakeTemplate) => [...endpoints.values()].filter((e) => e.templateId === t.id);

  const resolvers = {
    myself: () => ({
      id: "user_fake",
      email: "fake@example.invalid",
      endpoints: [...endpoints.values()].map((e) => ({
        ...e,
        template: templates.get(e.templateId) ?? null,
      })),
      podTemplates: [...templates.values()],
    }),

    saveTemplate: (args: Record<string, unknown>) => {
      checkInput(args.input, "SaveTemplateInput!", "input");
      const input = args.input as Partial<FakeTemplate> & { id?: string };
      if (input.name!.trim().length < 1) throw new GraphQLError("Template name is required");
      if (input.containerDiskInGb! < 1) throw new GraphQLError("containerDiskInGb must be at least 1");
      if (input.isServerless && input.volumeInGb !== 0) {
        throw new GraphQLError("Serverless templates cannot have a volume (volumeInGb must be 0)");
      }
      const clash = [...templates.values()].find((t) => t.name === input.name && t.id !== input.id);
      if (clash) throw new GraphQLError(`Template name must be unique: "${input.name}" is already taken`);
      const previous = input.id === undefined ? undefined : templates.get(input.id);
      if (input.id !== undefined && !previous) throw new GraphQLError(`Template ${input.id} not found`);
      const saved: FakeTemplate = {
        id: previous?.id ?? newId("tpl"),
        volumeMountPath: null,
        ports: null,
        isServerless: false,
        readme: "",
        startSsh: false,
        startJupyter: false,
        isPublic: false,
        containerRegistryAuthId: null,
        ...previous,
        ...(Object.fromEntries(
          Object.entries(input).filter(([, v]) => v !== undefined),
        ) as Partial<FakeTemplate>),
      } as FakeTemplate;
      templates.set(saved.id, saved);
      return saved;
    },

    deleteTemplate: (args: Record<string, unknown>) => {
      const name = args.templateName;
      if (typeof name !== "string") throw new GraphQLError('Field "templateName" of required type "String!"');
      const template = [...templates.values()].find((t) => t.name === name);
      if (!template) throw new GraphQLError(`Template "${name}" not found`);
      const users = templateInUse(template);
      if (users.length > 0) {
        throw new GraphQLError(
          `Template "${name}" is in use by endpoint ${users.map((e) => e.id).join(", ")}`,
        );
      }
      if (refusals.template > 0) {
        refusals.template--;
        throw new GraphQLError(`Template "${name}" is in use`);
      }
      templates.delete(template.id);
      return null;
    },

    saveEndpoint: (args: Record<string, unknown>) => {
      checkInput(args.input, "EndpointInput!", "input");
      const input = Object.fromEntries(
        Object.entries(args.input as Record<string, unknown>).filter(([, v]) => v !== undefined),
      ) as Partial<FakeEndpoint> & { networkVolumeId?: string | null };
      const previous = input.id === undefined ? undefined : endpoints.get(input.id);
      if (input.id !== undefined && !previous) throw new GraphQLError(`Endpoint ${input.id} not found`);
      if (input.name!.length < 3) throw new GraphQLError("Endpoint name must be at least 3 characters long");
      const pools = input.gpuIds!.split(",").map((s) => s.trim());
      const wanted = pools.filter((p) => p !== "" && !p.startsWith("-"));
      for (const pool of wanted) {
        if (!(FAKE_GPU_POOLS as readonly string[]).includes(pool))
          throw new GraphQLError(`Invalid GPU id: ${pool}`);
      }
      if (wanted.length === 0) throw new GraphQLError("gpuIds must name at least one GPU pool");
      const templateId = input.templateId ?? previous?.templateId;
      if (!templateId) throw new GraphQLError("templateId is required");
      if (!templates.has(templateId)) throw new GraphQLError(`Template ${templateId} not found`);
      const saved: FakeEndpoint = {
        id: previous?.id ?? newId("ep"),
        gpuCount: 1,
        workersMin: 0,
        workersMax: 3,
        idleTimeout: 5,
        scalerType: "QUEUE_DELAY",
        scalerValue: 4,
        locations: "",
        networkVolumeId: null,
        flashBootType: "OFF",
        executionTimeoutMs: 600_000,
        type: "QB",
        ...previous,
        ...(input as Partial<FakeEndpoint>),
        templateId,
      } as FakeEndpoint;
      if (saved.networkVolumeId === "") saved.networkVolumeId = null;
      if (saved.workersMin < 0 || saved.workersMax < 0)
        throw new GraphQLError("Worker counts cannot be negative");
      if (saved.workersMin > saved.workersMax) {
        throw new GraphQLError("workersMin cannot be greater than workersMax");
      }
      if (!["QUEUE_DELAY", "REQUEST_COUNT"].includes(saved.scalerType)) {
        throw new GraphQLError(`Invalid scalerType: ${saved.scalerType}`);
      }
      if (saved.networkVolumeId !== null) checkVolume(saved.networkVolumeId, saved.locations);
      endpoints.set(saved.id, saved);
      return saved;
    },

    deleteEndpoint: (args: Record<string, unknown>) => {
      const id = args.id;
      if (typeof id !== "string") throw new GraphQLError('Field "id" of required type "String!"');
      const endpoint = endpoints.get(id);
      if (!endpoint) throw new GraphQLError(`Endpoint ${id} not found`);
      if (endpoint.workersMin !== 0 || endpoint.workersMax !== 0) {
        throw new GraphQLError(
          "Endpoint must have workersMin and workersMax set to 0 before it can be deleted",
        );
      }
      if (refusals.endpoint > 0) {
        refusals.endpoint--;
        throw new GraphQLError("Endpoint still has running workers; try again once they have stopped");
      }
      endpoints.delete(id);
      return null;
    },
  } satisfies Record<string, (args: Record<string, unknown>) => unknown>;

  const send = (res: ServerResponse, record: RecordedRequest, status: number, body: string, headers = {}) => {
    record.status = status;
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(body);
  };

  const execute = (body: RecordedRequest["body"], record: RecordedRequest): unknown => {
    if (!body || typeof body.query !== "string") {
      return { errors: [{ message: "Must provide query string." }] };
    }
    const variables = body.variables ?? {};
    let operation: Operation;
    try {
      operation = parseOperation(body.query);
      record.fields = operation.selections.map((f) => f.name);
      checkSelections(operation.selections, operation.type === "query" ? "Query" : "Mutation", "");
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      return { errors: [{ message: error.message, extensions: { code: error.code } }] };
    }
    const data: Record<string, unknown> = {};
    const errors: unknown[] = [];
    for (const field of operation.selections) {
      const key = field.alias ?? field.name;
      const resolver = resolvers[field.name as keyof typeof resolvers];
      try {
        const args = Object.fromEntries(
          Object.entries(field.args).map(([k, v]) => [k, resolveValue(v, variables)]),
        );
        data[key] = project(resolver(args), field.selections);
      } catch (error) {
        if (!(error instanceof GraphQLError)) throw error;
        data[key] = null;
        errors.push({ message: error.message, path: [key], extensions: { code: error.code } });
      }
    }
    return errors.length > 0 ? { data, errors } : { data };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let body: RecordedRequest["body"];
    try {
      body = raw ? (JSON.parse(raw) as RecordedRequest["body"]) : undefined;
    } catch {
      body = undefined;
    }
    const record: RecordedRequest = {
      method: req.method ?? "",
      path: url.pathname,
      params: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
      body,
      fields: [],
      variables: body?.variables ?? {},
      status: undefined,
      fault: undefined,
    };
    try {
      if (typeof body?.query === "string")
        record.fields = parseOperation(body.query).selections.map((f) => f.name);
    } catch {
      // reported by execute()
    }
    requests.push(record);

    // The job API's health of an endpoint (api.runpod.ai/v2/{id}/health), for the controller's billing of workers.
    const health = /^\/v2\/([^/]+)\/health$/.exec(url.pathname);
    if (health && req.method === "GET") {
      if (req.headers.authorization !== `Bearer ${apiKey}`)
        return send(res, record, 401, JSON.stringify({ error: "unauthorized" }));
      const endpoint = endpoints.get(health[1]!);
      if (!endpoint) return send(res, record, 404, JSON.stringify({ error: "endpoint not found" }));
      return send(
        res,
        record,
        200,
        JSON.stringify({
          jobs: { completed: 0, failed: 0, inProgress: 0, inQueue: 0, retried: 0 },
          workers: {
            idle: 0,
            initializing: 0,
            ready: 0,
            running: endpoint.runningWorkers ?? 0,
            throttled: 0,
            unhealthy: 0,
          },
        }),
      );
    }
    if (url.pathname !== "/graphql") return send(res, record, 404, JSON.stringify({ error: "not found" }));
    if (req.method !== "POST") return send(res, record, 405, JSON.stringify({ error: "use POST" }));

    const index = faults.findIndex((f) => f.match === undefined || record.fields.includes(f.match));
    const fault = index >= 0 ? faults.splice(index, 1)[0] : undefined;
    record.fault = fault?.kind;
    if (fault?.kind === "hang") return; // never answered; stop() closes the connection
    if (fault?.kind === "status") {
      const headers: Record<string, string> = { "content-type": "text/plain" };
      if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
      return send(res, record, fault.status, fault.body ?? `HTTP ${fault.status}`, headers);
    }

    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const given = bearer ?? url.searchParams.get("api_key") ?? undefined;
    if (given !== apiKey) {
      return send(res, record, 401, JSON.stringify({ error: "Unauthorized: invalid or missing API key" }));
    }
    if (fault?.kind === "graphqlError") {
      const key = record.fields[0] ?? "unknown";
      return send(
        res,
        record,
        200,
        JSON.stringify({ data: { [key]: null }, errors: [{ message: fault.message, path: [key] }] }),
      );
    }
    const result = execute(body, record);
    if (fault?.kind === "applyThenFail") {
      return send(res, record, fault.status ?? 500, "Internal Server Error", {
        "content-type": "text/plain",
      });
    }
    return send(res, record, 200, JSON.stringify(result));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`fake crashed: ${error instanceof Error ? error.message : String(error)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    templates,
    endpoints,
    inject(fault, times = 1) {
      for (let n = 0; n < times; n++) faults.push(fault);
    },
    refuseDeletes(kind, times) {
      refusals[kind] = times;
    },
    calls(field) {
      return requests.filter((r) => r.fields.includes(field));
    },
    reset() {
      templates.clear();
      endpoints.clear();
      requests.length = 0;
      faults = [];
      refusals.endpoint = 0;
      refusals.template = 0;
    },
    stop() {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
