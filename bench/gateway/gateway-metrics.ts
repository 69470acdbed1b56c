/** What the gateway process says of itself on its `/metrics` (Prometheus default metrics of Node). */
import { request } from "undici";

/** One scrape of the gateway's `/metrics` (on its ops origin): a series' value by its name and labels as printed, NaN when absent. */
async function scrapeGateway(opsOrigin: string): Promise<(series: string) => number> {
  const text = await (await request(`${opsOrigin}/metrics`)).body.text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const space = line.lastIndexOf(" ");
    if (!line.startsWith("#") && space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return (series) => values.get(series) ?? Number.NaN;
}

/** V8 heap in use and external memory of the gateway, MB, from its Prometheus default metrics. */
export async function gatewayHeap(
  opsOrigin: string,
): Promise<{ heapMb: number; heapTotalMb: number; externalMb: number }> {
  const value = await scrapeGateway(opsOrigin);
  const gauge = (name: string): number => {
    const bytes = value(name);
    if (Number.isNaN(bytes)) throw new Error(`${name} missing from /metrics`);
    return bytes / 1024 / 1024;
  };
  return {
    heapMb: gauge("nodejs_heap_size_used_bytes"),
    heapTotalMb: gauge("nodejs_heap_size_total_bytes"),
    externalMb: gauge("nodejs_external_memory_bytes"),
  };
}

/** The gateway's event-loop delay (max, p99) and GC pauses by kind since it started, from its default metrics. */
export async function gatewayPauses(opsOrigin: string): Promise<string> {
  const value = await scrapeGateway(opsOrigin);
  const ms = (seconds: number) => `${(seconds * 1000).toFixed(1)} ms`;
  const gc = ["minor", "major", "incremental", "weakcb"].map((kind) => {
    const count = value(`nodejs_gc_duration_seconds_count{kind="${kind}"}`);
    const sum = value(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`);
    return Number.isNaN(count) ? `${kind} —` : `${kind} ${count}× ${ms(sum)}`;
  });
  return (
    `event-loop delay max ${ms(value("nodejs_eventloop_lag_max_seconds"))}, ` +
    `p99 ${ms(value("nodejs_eventloop_lag_p99_seconds"))}; GC ${gc.join(", ")}`
  );
}
