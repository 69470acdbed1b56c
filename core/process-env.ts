/**
 * Environment every gateway process gets, in the cluster (the Deployment) and in the benchmark that measures it.
 *
 * `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates its own malloc arena; Node's libuv and V8 worker
 * threads then hold tens of MB of freed-but-unreturned memory, which shows as RSS growth over a long soak.
 */
export const GATEWAY_PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };
