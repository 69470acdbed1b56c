/**
 * MCP process entry (`aiorch mcp`): connect to the stack's Redis, then serve the MCP server over stdio (a local
 * client such as Claude Desktop starts the command) or over Streamable HTTP (`http.ts`, API keys as bearer).
 *
 * Over stdio the caller is the local operator, who already reaches the stack's Redis (as with `aiorch keys`): the
 * audit trail names them `mcp:local:<actor>`, with the scope the command was given (read by default).
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import { startMcpHttp } from "./http";
import { buildMcpServer } from "./server";

export interface McpProcessOptions {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  readonly runbooks?: string;
  readonly log: (line: string) => void;
}

/** Serve over stdio until the client closes stdin. */
export async function serveMcpStdio(
  options: McpProcessOptions & { actor: string; scope: "read" | "admin" },
): Promise<{ closed: Promise<void> }> {
  const server = buildMcpServer(options, { actor: `mcp:local:${options.actor}`, scope: options.scope });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once("end", () => resolve());
  });
  await server.connect(transport);
  options.log(`aiorch mcp: serving stack ${options.config.stack} over stdio (scope ${options.scope})`);
  return { closed };
}

export async function serveMcpHttp(options: McpProcessOptions & { port: number; host: string }) {
  const handle = await startMcpHttp(options);
  options.log(
    `aiorch mcp: serving stack ${options.config.stack} on ${handle.url} (Authorization: Bearer <read or admin key>)`,
  );
  return handle;
}
