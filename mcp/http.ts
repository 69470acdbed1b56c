/**
 * The MCP server over Streamable HTTP (MCP spec 2025-06-18, "Transports"), stateless: every POST to `/mcp` gets a
 * server built for its caller and a transport without sessions (`sessionIdGenerator: undefined`, JSON answers),
 * as the SDK's `simpleStatelessStreamableHttp` example does; GET and DELETE `/mcp` answer 405 there too.
 *
 * Clients authenticate with an API key as `Authorization: Bearer sk-aiorch-…`: scope `read` gets the read tools,
 * `admin` the acting ones too; an `inference` key (the OpenAI API's) is refused with 403, a missing, wrong,
 * revoked or expired one with 401. Meant for the cluster's inside only (never routed publicly).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { ApiKeyStore, ApiKeyVerifier } from "../core/api-keys";
import { redisKeys } from "../core/redis-keys";
import { buildMcpServer, type McpDeps } from "./server";

export interface McpHttpOptions extends McpDeps {
  readonly port: number;
  readonly host: string;
  readonly log?: (line: string) => void;
}

/** A JSON-RPC error answer with no id (the request was not read): what the SDK's examples send outside a session. */
function rpcError(res: ServerResponse, status: number, message: string): void {
  res
    .writeHead(status, { "content-type": "application/json" })
    .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message }, id: null }));
}

function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  return typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

export async function startMcpHttp(
  options: McpHttpOptions,
): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const keys = redisKeys(options.config.redis.keyPrefix);
  const verifier = new ApiKeyVerifier(new ApiKeyStore(options.redis, keys), { now: options.now });
  // a revoked key is dropped from the cache at once, as in the gateway
  const subscriber = options.redis.duplicate();
  subscriber.on("error", () => undefined);
  subscriber.on("message", (_channel: string, hash: string) => verifier.invalidate(hash));
  await subscriber.subscribe(keys.apiKeysChannel);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
      return;
    }
    if (path !== "/mcp") {
      rpcError(res, 404, `Unknown URL ${path}: the MCP endpoint is POST /mcp`);
      return;
    }
    if (req.method !== "POST") {
      rpcError(res, 405, "Method not allowed: this server is stateless, send JSON-RPC with POST /mcp");
      return;
    }
    const auth = await verifier.verify(bearer(req));
    if (!auth.ok) {
      rpcError(res, 401, auth.reason);
      return;
    }
    const { scope, id } = auth.key;
    if (scope !== "read" && scope !== "admin") {
      rpcError(
        res,
        403,
        `This API key has scope "${scope}": it may call the OpenAI API, not MCP; use a key created with --scope read or --scope admin`,
      );
      return;
    }
    const server = buildMcpServer(options, { actor: `mcp:${id}`, scope });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      options.log?.(`mcp: ${req.method} ${req.url}: ${error.stack ?? error.message}`);
      if (!res.headersSent) rpcError(res, 500, "internal error");
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port, options.host, () => {
      http.off("error", reject);
      resolve();
    });
  });
  const port = (http.address() as { port: number }).port;
  return {
    port,
    url: `http://${options.host}:${port}/mcp`,
    close: async () => {
      subscriber.disconnect();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
