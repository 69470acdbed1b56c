/**
 * Environment every gateway process gets, in the cluster (the Deployment) and in the benchmark that measures it.
 * Both are glibc malloc settings (the runtime image is Debian-based for that reason):
 *
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates its own arena; Node's libuv and V8 worker
 *   threads then hold freed-but-unreturned memory.
 * - `MALLOC_MMAP_THRESHOLD_=131072`: allocations of 128 KiB and more always get their own mapping, returned to the
 *   system when freed. By default glibc raises that threshold after the first large free (start-up frees the
 *   bundle's source, every stream wave frees buffers), so later large buffers land in the heap and fragment it:
 *   idle RSS went from 93 to 76 MB and 1,000 held streams from about 150 to about 115 MB (bench:gateway).
 */
export const GATEWAY_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
};

/**
 * Node/V8 flags of the gateway process, before the bundle on its command line. The gateway's garbage is short-lived
 * request state, but a stream's lives as long as the stream and is promoted; V8's defaults then let the heap grow
 * to several times the live set before a full collection (a 1,000-stream soak peaked at 194 MB RSS with 50 MB of
 * heap in use). An 8 MB semi-space (young generation, default 16) and full collections once the heap is 25% over
 * the live set, with the malloc settings above, kept it at 128 MB, level after 3 minutes (bench:gateway --soak).
 * A 4 MB semi-space saved another 8 MB but cost 5 % throughput (more scavenges, more premature promotion).
 * V8 sizes the young generation to the allocation rate, so at a moderate load (1,000 req/s) it stayed small and
 * scavenged about twice as often; a 4 MB floor halved the scavenges there (127 → 68 in 12 s, and the slow tail with
 * them: added p99 1.25–1.92 ms in four runs against 0.49–2.67 ms, two of seven over 2 ms), for 2 MB more idle
 * RSS; the 5-minute soak stayed at 127.7 MB, flat.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = [
  "--max-semi-space-size=8",
  "--min-semi-space-size=4",
  "--heap-growing-percent=25",
];

/** Port of the gateway's public, OpenAI-compatible API: the only port the Ingress routes to. */
export const GATEWAY_PORT = 8080;

/** Port of `/metrics`, `/healthz` and `/readyz` of the gateway and of the controller: probes and Prometheus only. */
export const OPS_PORT = 9090;
