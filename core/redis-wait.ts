/**
 * Waiting for Redis at start-up, shared by the gateway and the controller. Both start their ops server
 * (/metrics, /healthz, /readyz) first, then wait here until Redis answers PING: one clear log line per attempt,
 * capped backoff, retried for as long as it takes (in the cluster Redis may come up after them), and stopped at
 * once by a signal (SIGTERM while waiting ends the process cleanly instead of crash-looping it).
 */
import { Redis } from "ioredis";
import { type RedisConnection, redisClientOptions } from "./config/runtime";

export interface RedisWaitOptions {
  /** Who waits, the prefix of the log lines: `gateway`, `controller`. */
  readonly role: string;
  /** The Redis URL as configured; logged without credentials or query (see `redisUrlForLogs`). */
  readonly url: string;
  /** One attempt: resolves when Redis answers PING, rejects with why not. Must settle in bounded time. */
  readonly ping: () => Promise<unknown>;
  readonly log: (line: string) => void;
  /** Aborting it ends the wait (resolves false) without another attempt. */
  readonly signal?: AbortSignal;
  /** Sleep `ms`, resolving early when `signal` aborts. @default a timer */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Clock, for the "answered after" line. @default Date.now */
  readonly now?: () => number;
  /** Pause after the first failed attempt; doubled after each further one. @default 500 */
  readonly firstDelayMs?: number;
  /** Longest pause between attempts. @default 5000 */
  readonly maxDelayMs?: number;
  /** Text that must never reach a log line (a password), masked in error messages. */
  readonly secrets?: readonly string[];
  /** Told after each failed attempt, with a one-line reason (for /readyz). */
  readonly onFailure?: (reason: string) => void;
}

/** Pause after failed attempt `attempt` (1-based): first, doubled each time, at most max. */
export function redisRetryDelayMs(attempt: number, firstDelayMs = 500, maxDelayMs = 5_000): number {
  return Math.min(maxDelayMs, firstDelayMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

/**
 * Wait until `ping` succeeds. Resolves true when Redis answered, false when `signal` aborted first.
 * Logs `<role>: waiting for Redis at redis://host:port (attempt N, last error: …); …` after every failed
 * attempt, and once Redis answers after failures, how long it took.
 */
export async function waitForRedis(options: RedisWaitOptions): Promise<boolean> {
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;
  const { signal } = options;
  const where = redisUrlForLogs(options.url);
  const secrets = [...(options.secrets ?? []), ...urlSecrets(options.url)].filter((s) => s.length > 0);
  const started = now();
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) return false;
    let error: unknown;
    try {
      await untilAborted(options.ping(), signal);
      if (signal?.aborted) return false;
      if (attempt > 1) {
        const seconds = ((now() - started) / 1000).toFixed(1);
        options.log(`${options.role}: Redis at ${where} answered after ${attempt} attempts (${seconds} s)`);
      }
      return true;
    } catch (e) {
      error = e;
    }
    if (signal?.aborted) return false;
    const delayMs = redisRetryDelayMs(attempt, options.firstDelayMs, options.maxDelayMs);
    const reason = `waiting for Redis at ${where} (attempt ${attempt}, last error: ${describe(error, secrets)})`;
    options.onFailure?.(reason);
    options.log(
      `${options.role}: ${reason}; next attempt in ${formatSeconds(delayMs)}, /readyz answers 503 until Redis answers`,
    );
    await sleep(delayMs, signal);
  }
}

/**
 * A Redis URL fit for a log line: scheme, host, port and database; user, password and query (which may carry
 * a password too) left out.
 */
export function redisUrlForLogs(url: string): string {
  try {
    const parsed = new URL(url);
    const db = parsed.pathname && parsed.pathname !== "/" ? parsed.pathname : "";
    return `${parsed.protocol}//${parsed.host}${db}`;
  } catch {
    // not a URL: drop anything up to an @ and after a ?, the places credentials could be
    return url.replace(/^([a-z]+:\/\/)?[^@/]*@/i, "$1").replace(/\?.*$/, "");
  }
}

/**
 * One attempt of a dedicated connection: connect, PING, disconnect; no retries, no queueing, at most about
 * `timeoutMs` for the connection and as long for the answer. Rejects with the connection's own error
 * (`connect ECONNREFUSED 10.0.0.5:6379`, `getaddrinfo ENOTFOUND redis`, `WRONGPASS …`) rather than ioredis's
 * generic "Connection is closed".
 */
export async function pingRedisOnce(connection: RedisConnection, timeoutMs = 2_000): Promise<void> {
  const client = new Redis(connection.url, {
    ...redisClientOptions(connection),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    disconnectTimeout: 0, // destroy the socket at once (ioredis would otherwise hold the process up to 2 s)
  });
  let first: Error | undefined;
  client.on("error", (error: Error) => {
    first ??= error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw first ?? error;
  } finally {
    client.disconnect();
  }
}

/** `waitForRedis` on a configured connection: one fresh client per attempt, its password never in a log line. */
export function waitForRedisConnection(
  connection: RedisConnection,
  options: Omit<RedisWaitOptions, "url" | "ping" | "secrets">,
): Promise<boolean> {
  return waitForRedis({
    ...options,
    url: connection.url,
    ping: () => pingRedisOnce(connection),
    secrets: connection.password ? [connection.password] : [],
  });
}

/** Thrown by a process's start when a signal stopped it while it was still waiting (for Redis); exit 0. */
export class StartAborted extends Error {
  override name = "StartAborted";
  constructor(role: string) {
    super(`${role}: stopped while starting`);
  }
}

/**
 * A process entry's life: start (given a signal that stops a start still waiting for Redis), then close on
 * SIGTERM/SIGINT and exit — 0 after a clean close or a start stopped while waiting, 1 when start or close fails.
 */
export function runUntilSignal(
  role: string,
  start: (signal: AbortSignal) => Promise<{ close(): Promise<void> }>,
  log: (line: string) => void,
): void {
  const abort = new AbortController();
  let handle: { close(): Promise<void> } | undefined;
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    log(`${role}: ${signal}, closing`);
    abort.abort(); // a start still under way stops (or closes what it started) and rejects with StartAborted
    handle?.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  start(abort.signal).then(
    (started) => {
      handle = started;
    },
    (error: Error) => {
      if (error instanceof StartAborted) process.exit(0);
      log(`${role}: failed to start: ${error.message}`);
      process.exit(1);
    },
  );
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `promise`, or (when `signal` aborts first) undefined at once, so a stop never waits for an attempt. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const stop = () => resolve(undefined);
    signal.addEventListener("abort", stop, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", stop);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", stop);
        reject(error);
      },
    );
  });
}

function urlSecrets(url: string): string[] {
  try {
    const parsed = new URL(url);
    const found = [parsed.password, parsed.searchParams.get("password") ?? ""];
    try {
      found.push(decodeURIComponent(parsed.password));
    } catch {
      // a malformed escape: the raw form is masked
    }
    return found;
  } catch {
    return [];
  }
}

function describe(error: unknown, secrets: readonly string[]): string {
  let text =
    (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim() || "no answer";
  text = text.replace(/(rediss?:\/\/)[^@\s/]*@/gi, "$1");
  for (const secret of secrets) text = text.split(secret).join("***");
  return text;
}

function formatSeconds(ms: number): string {
  return ms < 100 ? `${ms} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}
