/**
 * The benchmark's reference path: the least a Node proxy built on fastify and undici can do — no keys, limits,
 * accounting, routing or usage tap; the body goes upstream as the client's text and the answer comes back chunk
 * by chunk. Measured beside the gateway in the same run, it tells what the gateway's own work costs apart from
 * what Node itself costs on the machine (on the benchmark's 2-vCPU VM every wake-up of a process is expensive, so a
 * Node proxy's time to first token is far above nginx's whatever it does).
 *
 * Usage: `node -r tsx/cjs bench/gateway/bare-proxy.ts UPSTREAM_ORIGIN PORT` (prints `{"port":N}` once listening).
 */
import Fastify from "fastify";
import { Pool } from "undici";

async function main(): Promise<void> {
  const [upstream, portText] = process.argv.slice(2);
  if (!upstream || portText === undefined)
    throw new Error("usage: bare-proxy.ts UPSTREAM_ORIGIN PORT (0 for any free port)");
  const pool = new Pool(upstream);
  const app = Fastify({ logger: false });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) =>
    done(null, body),
  );
  app.post("/v1/*", async (request, reply) => {
    const answer = await pool.request({
      path: request.url,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: request.body as string,
    });
    reply.hijack();
    reply.raw.writeHead(answer.statusCode, {
      "content-type": String(answer.headers["content-type"] ?? "application/json"),
    });
    for await (const chunk of answer.body) reply.raw.write(chunk);
    reply.raw.end();
  });
  await app.listen({ host: "127.0.0.1", port: Number(portText) });
  const address = app.server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" ? address?.port : 0 })}\n`);
  const stop = () => void app.close().then(() => pool.close().then(() => process.exit(0)));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: Error) => {
  process.stderr.write(`bare-proxy: ${error.message}\n`);
  process.exit(1);
});
