/**
 * RunPod serverless is a managed backend: RunPod queues requests and scales its own workers. The controller finds
 * the endpoint the stack declared (by name), routes through its OpenAI path, steers `workersMin`/`workersMax`
 * (restoring bounds RunPod lowers on idle endpoints, and setting max 0 at a budget cap) and reads `/health` for
 * worker counts, which the ledger bills.
 */
import { PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config";
import { apiBaseOf, type HttpRuntimeOptions, isRecord, num, ProviderHttp, str } from "./http";

type Settings = NonNullable<RuntimeConfig["providers"]["runpod-serverless"]>;

export interface ManagedEndpoint {
  readonly id: string;
  readonly name: string;
  readonly templateId: string;
  readonly gpuIds: string;
  readonly workersMin: number;
  readonly workersMax: number;
  /**
   * The endpoint's other settings as RunPod reports them (idle timeout, scaler, locations, network volume,
   * FlashBoot). An update sends them back: a save resets what it leaves out, which would unmount the weight cache
   * and drop the data-centre pin on the first scaling step.
   */
  readonly settings: Readonly<Record<string, unknown>>;
}

/** Endpoint fields an update must carry besides identity and bounds. */
const KEPT_FIELDS = [
  "idleTimeout",
  "scalerType",
  "scalerValue",
  "locations",
  "networkVolumeId",
  "flashBootType",
] as const;

export interface EndpointHealth {
  /** Workers RunPod bills right now (running, including their idle timeout). */
  readonly running: number;
  readonly idle: number;
  readonly initializing: number;
  readonly inQueue: number;
  readonly inProgress: number;
}

export interface RunPodServerlessOptions extends HttpRuntimeOptions {
  readonly settings: Settings;
  readonly apiKey: string | undefined;
  /** Host of the job API (`/v2/{id}/health`, `/v2/{id}/openai/v1`). @default "https://api.runpod.ai" */
  readonly jobApiBase?: string;
}

const ENDPOINTS = `query Endpoints { myself { endpoints { id name templateId gpuIds workersMin workersMax ${KEPT_FIELDS.join(" ")} } } }`;
const SAVE =
  "mutation SaveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { id workersMin workersMax } }";

export class RunPodServerlessManager {
  readonly id = "runpod-serverless" as const;
  private readonly graphql: ProviderHttp;
  private readonly jobs: ProviderHttp;
  readonly jobApiBase: string;

  constructor(options: RunPodServerlessOptions) {
    const apiKey = options.apiKey ?? "";
    const auth = { headers: async () => ({ authorization: `Bearer ${apiKey}` }) };
    const common = { ...options, provider: "runpod-serverless" as const, auth, secrets: () => [apiKey] };
    this.graphql = new ProviderHttp({
      ...common,
      baseUrl: apiBaseOf(
        options.settings.apiBase,
        PROVIDERS["runpod-serverless"].apiBase,
        "runpod-serverless",
      ),
    });
    this.jobApiBase = (options.jobApiBase ?? "https://api.runpod.ai").replace(/\/+$/, "");
    this.jobs = new ProviderHttp({ ...common, baseUrl: this.jobApiBase });
    if (!apiKey) throw this.graphql.error("configure", "auth", "no API key (RUNPOD_API_KEY is empty)");
  }

  /** The OpenAI base URL (with /v1) of an endpoint. */
  openaiBaseUrl(endpointId: string): string {
    return `${this.jobApiBase}/v2/${endpointId}/openai/v1`;
  }

  private async query(
    operation: string,
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const json = await this.graphql.json({
      operation,
      method: "POST",
      path: "/graphql",
      json: { query, variables },
    });
    if (!isRecord(json)) throw this.graphql.unexpected(operation, "not a GraphQL answer", json);
    const errors = json.errors;
    // GraphQL errors arrive with HTTP 200.
    if (Array.isArray(errors) && errors.length > 0) {
      const message = str(isRecord(errors[0]) ? errors[0].message : undefined) ?? "GraphQL error";
      throw this.graphql.error(
        operation,
        /no longer any instances|capacity/i.test(message) ? "capacity" : "fatal",
        message,
      );
    }
    if (!isRecord(json.data)) throw this.graphql.unexpected(operation, "no data", json);
    return json.data;
  }

  async endpoints(): Promise<ManagedEndpoint[]> {
    const data = await this.query("list endpoints", ENDPOINTS);
    const list = isRecord(data.myself) && Array.isArray(data.myself.endpoints) ? data.myself.endpoints : [];
    return list.filter(isRecord).flatMap((e) => {
      const id = str(e.id);
      const name = str(e.name);
      if (!id || !name) return [];
      return [
        {
          id,
          name,
          templateId: str(e.templateId) ?? "",
          gpuIds: str(e.gpuIds) ?? "",
          workersMin: num(e.workersMin) ?? 0,
          workersMax: num(e.workersMax) ?? 0,
          settings: Object.fromEntries(
            KEPT_FIELDS.flatMap((f) => (e[f] === undefined || e[f] === null ? [] : [[f, e[f]]])),
          ),
        },
      ];
    });
  }

  async find(name: string): Promise<ManagedEndpoint | undefined> {
    return (await this.endpoints()).find((e) => e.name === name);
  }

  /** Set the worker bounds; RunPod's update needs the endpoint's whole input again, so every setting goes back. */
  async setBounds(
    endpoint: ManagedEndpoint,
    workersMin: number,
    workersMax: number,
  ): Promise<ManagedEndpoint> {
    await this.query("set worker bounds", SAVE, {
      input: {
        ...endpoint.settings,
        id: endpoint.id,
        name: endpoint.name,
        templateId: endpoint.templateId,
        gpuIds: endpoint.gpuIds,
        workersMin,
        workersMax,
      },
    });
    return { ...endpoint, workersMin, workersMax };
  }

  async health(endpointId: string): Promise<EndpointHealth> {
    const json = await this.jobs.json({
      operation: "health",
      method: "GET",
      path: `/v2/${endpointId}/health`,
    });
    const workers = isRecord(json) && isRecord(json.workers) ? json.workers : {};
    const jobs = isRecord(json) && isRecord(json.jobs) ? json.jobs : {};
    // The docs show only idle and running; other fields appear in clients' code: treat every one as optional.
    return {
      running: num(workers.running) ?? 0,
      idle: num(workers.idle) ?? 0,
      initializing: num(workers.initializing) ?? 0,
      inQueue: num(jobs.inQueue) ?? 0,
      inProgress: num(jobs.inProgress) ?? 0,
    };
  }
}
