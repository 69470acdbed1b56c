/**
 * `aiorch mcp`: the stack's MCP server (mcp/). Over stdio for a local client (Claude Desktop, an IDE) —
 * `--scope read` (default) or `--scope admin` for the acting tools — or over Streamable HTTP with `--http`, where
 * every client authenticates with an API key of scope read or admin. Redis from REDIS_URL.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { serveMcpHttp, serveMcpStdio } from "../mcp/main";
import { runbooksOf } from "../mcp/resources";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

export async function runMcp(
  argv: readonly string[],
  io: Io,
  dir: string,
  env = process.env,
): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      http: { type: "boolean" },
      port: { type: "string" },
      host: { type: "string" },
      scope: { type: "string" },
      actor: { type: "string" },
    },
    strict: true,
  });
  if (values.http && values.scope !== undefined)
    throw new UsageError("--scope is for stdio; over --http each client's API key carries its scope");
  if (!values.http && (values.port !== undefined || values.host !== undefined))
    throw new UsageError("--port and --host go with --http (stdio needs neither)");
  const scope = values.scope ?? "read";
  if (scope !== "read" && scope !== "admin")
    throw new UsageError(`--scope "${scope}" is not an MCP scope; use read (default) or admin`);
  const port = Number(values.port ?? 8090);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be 0-65535; got "${values.port}"`);
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const readme = join(dir, "README.md");
  const runbooks = existsSync(readme) ? runbooksOf(readFileSync(readme, "utf8")) : undefined;
  const redis = await connectStackRedis(env);
  // stdout carries the protocol over stdio: every log line goes to stderr
  const log = (line: string) => io.err(`${line}\n`);
  try {
    if (values.http) {
      const handle = await serveMcpHttp({
        config,
        redis,
        runbooks,
        log,
        port,
        host: values.host ?? "127.0.0.1",
      });
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      await handle.close();
      return 0;
    }
    const actor = values.actor ?? env.AIORCH_ACTOR ?? env.USER ?? "operator";
    const { closed } = await serveMcpStdio({ config, redis, runbooks, log, actor, scope });
    await closed;
    return 0;
  } finally {
    redis.disconnect();
  }
}
