/**
 * What every mode of the gateway benchmark stands on: the tools checked, a temp dir, an API key under a
 * throw-away Redis prefix and the fake upstream — then, for all modes but `--against`, the four paths to it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { Redis } from "ioredis";
import { ApiKeyStore } from "../../core/api-keys";
import { redisKeys } from "../../core/redis-keys";
import { residentMb, which } from "../../devkit/process";
import { deleteKeysByPrefix } from "../../devkit/redis";
import {
  makeTempDir,
  onCleanupDeleteRedisKeys,
  type Server,
  startBare,
  startFake,
  startGateway,
  startNginx,
} from "./processes";
import { type GatewayLaunch, type PathName, type Plan, progress, REDIS_URL } from "./settings";

/** The ground of a run: its temp dir, its Redis key prefix and bench key, and the fake upstream. */
export interface Ground {
  readonly dir: string;
  readonly prefix: string;
  readonly key: string;
  /** The requests' headers: JSON and the bench key. */
  readonly headers: Record<string, string>;
  readonly fake: Server;
}

export async function prepareGround(plan: Plan): Promise<Ground> {
  if (!(plan.holdMs > 0)) throw new Error(`--hold-seconds must be a positive number of seconds`);
  const missing = ["wrk", "nginx"].filter((t) => !which(t));
  if (missing.length > 0)
    throw new Error(`${missing.join(" and ")} not found: apt-get install wrk nginx-light`);
  const dir = makeTempDir();

  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: true });
  redis.on("error", () => undefined);
  await redis.connect().catch((error: Error) => {
    throw new Error(`Redis at ${REDIS_URL} is not reachable: ${error.message}`);
  });
  const prefix = `bench${randomBytes(4).toString("hex")}:`;
  onCleanupDeleteRedisKeys(async () => {
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  });
  const { key } = await new ApiKeyStore(redis, redisKeys(prefix)).create({
    name: "bench",
    rpm: 1_000_000_000,
    tpm: 1_000_000_000_000,
  });
  const headers = { "content-type": "application/json", authorization: `Bearer ${key}` };

  progress(
    `node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, ` +
      `${spawnSync(which("nginx")!, ["-v"], { encoding: "utf8" }).stderr.trim()}; temp ${dir}`,
  );
  const fake = await startFake();
  progress(`fake vLLM on ${fake.origin} (pid ${fake.child.proc.pid})`);
  return { dir, prefix, key, headers, fake };
}

/** The four paths to the fake: itself, nginx, the gateway and the bare reference proxy. */
export interface Paths {
  readonly nginx: Server;
  readonly gateway: Server & { opsOrigin: string };
  readonly bare: Server;
  readonly origins: Readonly<Record<PathName, string>>;
  /** The gateway's resident memory before any load, MB. */
  readonly idleRssMb: number;
}

export async function startPaths(ground: Ground, launch: GatewayLaunch): Promise<Paths> {
  const { dir, fake, prefix } = ground;
  const nginx = await startNginx(dir, Number(new URL(fake.origin).port));
  progress(`nginx on ${nginx.origin} (pid ${nginx.child.proc.pid}, 1 worker, upstream keepalive 64)`);
  const gateway = await startGateway(dir, fake.origin, prefix, launch);
  const gatewayPid = gateway.child.proc.pid!;
  const idleRssMb = residentMb(gatewayPid);
  progress(
    `gateway on ${gateway.origin} (pid ${gatewayPid}, key prefix ${prefix}, idle RSS ${idleRssMb.toFixed(1)} MB)`,
  );
  const bare = await startBare(fake.origin);
  progress(
    `bare fastify + undici pass-through (the reference) on ${bare.origin} (pid ${bare.child.proc.pid})`,
  );
  const origins = {
    direct: fake.origin,
    nginx: nginx.origin,
    bare: bare.origin,
    gateway: gateway.origin,
  } as const;
  return { nginx, gateway, bare, origins, idleRssMb };
}
