/**
 * The harness every provider contract fake shares: a node:http server on 127.0.0.1 with fault injection and a
 * request log, a manual clock, status timelines with per-second cost accrual — and a contract check: a fake names
 * the published response schema (`core/contracts/*`) of each reply it makes, and a reply that does not match it is
 * recorded and answered as a 500, so a fake cannot drift into our own guesses without every test noticing.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { z } from "zod";

/** A clock tests move by hand; fakes and adapters read the same one. */
export class ManualClock {
  constructor(public ms = Date.UTC(2026, 0, 5, 12, 0, 0)) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
  /** A sleep that advances this clock instead of waiting (for adapters' retry backoff). */
  readonly sleep = async (ms: number): Promise<void> => {
    this.ms += ms;
  };
}

/** What a fault does to one matching request. */
export type Fault =
  /** Answer this status with this body (e.g. a plain-text 429, a 500, a provider error JSON). */
  | { type: "status"; status: number; body?: string; json?: unknown; headers?: Record<string, string> }
  /** 200 with a body that is not what the API promises. */
  | { type: "garbage"; status?: number; body?: string }
  /** Never answer (the client's timeout fires); with `process`, the request takes effect first. */
  | { type: "timeout"; process?: boolean }
  /** The request takes effect (e.g. the instance is created), then the answer is an error. */
  | { type: "process-then-fail"; status?: number; body?: string }
  /** Drop the connection without an answer. */
  | { type: "reset"; process?: boolean };

export interface FaultMatch {
  readonly method?: string;
  /** Substring of, or pattern for, the path (without query). */
  readonly path?: string | RegExp;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: IncomingMessage["headers"];
  readonly body: unknown;
  readonly rawBody: string;
  /** The body's bytes as they arrived (a proxying route forwards these, not the utf-8 text). */
  readonly rawBytes?: Buffer;
  readonly atMs: number;
  /** The fault applied to it, if any. */
  readonly fault?: Fault["type"];
}

export interface Reply {
  readonly status: number;
  readonly json?: unknown;
  readonly text?: string;
  readonly headers?: Record<string, string>;
}

interface FaultRule {
  fault: Fault;
  match: FaultMatch;
  remaining: number;
}

/** Base of every provider fake: a node:http server with fault injection and a request log. */
export abstract class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly now: () => number;
  private readonly faults: FaultRule[] = [];
  private server?: Server;
  private baseUrl?: string;

  constructor(now?: () => number) {
    this.now = now ?? Date.now;
  }

  get url(): string {
    if (!this.baseUrl) throw new Error("fake not started");
    return this.baseUrl;
  }

  /** Apply `fault` to the next `times` requests that match. */
  inject(fault: Fault, options: FaultMatch & { times?: number } = {}): this {
    const { times = 1, ...match } = options;
    this.faults.push({ fault, match, remaining: times });
    return this;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Requests to paths matching, optionally by method. */
  requestsTo(path: string | RegExp, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => matches(r.method, r.path, { path, ...(method ? { method } : {}) }));
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.dispatch(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "fake_crashed", msg: String(err) }));
        }
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
    return this.baseUrl;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Handle one request that no fault intercepted. */
  protected abstract handle(req: RecordedRequest): Reply | Promise<Reply>;

  /**
   * A route that answers on the raw response (a proxy streaming a body through as it comes) instead of with a
   * `Reply`; undefined (the default) when `handle` answers. Faults still apply before it; no schema check after.
   */
  protected streamingRoute(_req: RecordedRequest): ((res: ServerResponse) => Promise<void>) | undefined {
    return undefined;
  }

  /**
   * Replies of this fake that broke the provider's published response schema (each was answered as a 500 with
   * `fake_contract_violation`). A test may assert this stays empty; a violation already fails the request.
   */
  readonly contractViolations: string[] = [];

  /**
   * The published schema the JSON body of this reply must match (from `core/contracts/*`), or undefined when
   * the reply has no published shape to check (a fault, plain text). Fakes override it per route.
   */
  protected responseSchema(_req: RecordedRequest, _reply: Reply): z.ZodType | undefined {
    return undefined;
  }

  private checked(req: RecordedRequest, reply: Reply): Reply {
    const schema = this.responseSchema(req, reply);
    if (!schema) return reply;
    const problems = schemaViolations(schema, reply.json);
    if (problems.length === 0) return reply;
    const where = `${req.method} ${req.path} → ${reply.status}`;
    for (const p of problems) this.contractViolations.push(`${where}: ${p}`);
    return { status: 500, json: { error: "fake_contract_violation", where, problems } };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBytes = Buffer.concat(chunks);
    const rawBody = rawBytes.toString("utf8");
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = rawBody;
    }
    const method = req.method ?? "GET";
    const rule = this.faults.find((f) => f.remaining > 0 && matches(method, url.pathname, f.match));
    if (rule) rule.remaining--;
    const recorded: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body,
      rawBody,
      rawBytes,
      atMs: this.now(),
      ...(rule ? { fault: rule.fault.type } : {}),
    };
    this.requests.push(recorded);

    if (!rule) {
      const streaming = this.streamingRoute(recorded);
      if (streaming) return streaming(res);
      return send(res, this.checked(recorded, await this.handle(recorded)));
    }
    const fault = rule.fault;
    switch (fault.type) {
      case "status":
        return send(res, {
          status: fault.status,
          ...(fault.json !== undefined ? { json: fault.json } : { text: fault.body ?? "" }),
          headers: {
            ...(fault.json === undefined ? { "content-type": "text/plain; charset=utf-8" } : {}),
            ...fault.headers,
          },
        });
      case "garbage":
        return send(res, {
          status: fault.status ?? 200,
          text: fault.body ?? '<html><body>502 Bad Gateway</body></html>\u0000{"id":',
          headers: { "content-type": "application/json" },
        });
      case "timeout":
        if (fault.process) await this.handle(recorded);
        return; // hold the connection open; close() ends it
      case "process-then-fail":
        await this.handle(recorded);
        return send(res, {
          status: fault.status ?? 500,
          text: fault.body ?? "Internal Server Error",
          headers: { "content-type": "text/plain" },
        });
      case "reset":
        if (fault.process) await this.handle(recorded);
        req.socket.destroy();
        return;
    }
  }
}

function matches(method: string, path: string, match: FaultMatch): boolean {
  if (match.method && match.method.toUpperCase() !== method.toUpperCase()) return false;
  if (match.path === undefined) return true;
  return typeof match.path === "string" ? path.includes(match.path) : match.path.test(path);
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers };
  let body = "";
  if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    headers["content-type"] ??= "application/json";
  } else if (reply.text !== undefined) {
    body = reply.text;
    headers["content-type"] ??= "text/plain; charset=utf-8";
  }
  res.writeHead(reply.status, headers);
  res.end(body);
}

/**
 * The status history of one instance: scheduled steps (the walk) plus overrides (stop, delete). Status at any
 * time is the last event at or before it, so tests step a ManualClock instead of sleeping.
 */
export class Timeline<S extends string> {
  private events: { at: number; status: S }[];

  constructor(start: number, walk: readonly { status: S; afterMs: number }[]) {
    let at = start;
    this.events = walk.map((step) => {
      at += step.afterMs;
      return { at, status: step.status };
    });
  }

  statusAt(t: number): S | undefined {
    let current: S | undefined;
    for (const e of this.events) if (e.at <= t) current = e.status;
    return current;
  }

  /** First time the instance entered `status`, if it has by `t`. */
  enteredAt(status: S, t: number): number | undefined {
    return this.events.find((e) => e.status === status && e.at <= t)?.at;
  }

  /** Change status at `t`, dropping any step scheduled later. */
  set(status: S, t: number): void {
    this.events = this.events.filter((e) => e.at <= t);
    this.events.push({ at: t, status });
  }

  /** Schedule further steps from `t` on, dropping any step scheduled later. */
  walkFrom(t: number, walk: readonly { status: S; afterMs: number }[]): void {
    this.events = this.events.filter((e) => e.at <= t);
    let at = t;
    for (const step of walk) {
      at += step.afterMs;
      this.events.push({ at, status: step.status });
    }
  }

  /** Milliseconds spent in any of `statuses` up to `t`. */
  msIn(statuses: readonly S[], t: number): number {
    let total = 0;
    this.events.forEach((e, i) => {
      if (e.at > t || !statuses.includes(e.status)) return;
      const next = this.events[i + 1];
      const end = next && next.at <= t ? next.at : t;
      total += Math.max(0, end - e.at);
    });
    return total;
  }
}

/** USD for `ms` at `usdPerHour`, billed per started second. */
export function perSecondUsd(ms: number, usdPerHour: number): number {
  return (Math.ceil(ms / 1000) * usdPerHour) / 3600;
}

/**
 * Where a value breaks a schema, one line per problem (`runtime.ports.0.public: expected number, received string`;
 * an unknown key reads `unrecognized key "publicIp"`); empty when it matches.
 */
export function schemaViolations(schema: z.ZodType, value: unknown): string[] {
  const result = schema.safeParse(value);
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return `${path || "(body)"}: ${issue.message}`;
  });
}
