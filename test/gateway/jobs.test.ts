import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "./harness";

let h: Harness;
let key: string;

beforeAll(async () => {
  h = await createHarness();
  key = await h.createKey();
});
afterAll(() => h.close());

const headers = () => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });
const submit = (url: string, body: Record<string, unknown>) =>
  fetch(`${url}/v1/jobs`, { method: "POST", headers: headers(), body: JSON.stringify(body) });
const chatJob = (model: string, extra: Record<string, unknown> = {}) => ({
  endpoint: "/v1/chat/completions",
  body: { model, messages: [{ role: "user", content: "summarise" }], max_tokens: 4 },
  ...extra,
});

async function waitForJob(url: string, id: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${url}/v1/jobs/${id}`, { headers: headers() })).json()) as Record<
      string,
      unknown
    >;
    if (job.status === "succeeded" || job.status === "failed" || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("async jobs", () => {
  it("202 with a job id, then the result", async () => {
    const { url } = await h.start();
    const response = await submit(url, chatJob("chat"));
    expect(response.status).toBe(202);
    const job = (await response.json()) as { id: string; status: string; object: string };
    expect(job).toMatchObject({ object: "job", status: "queued" });
    const done = await waitForJob(url, job.id);
    expect(done.status).toBe("succeeded");
    expect((done.result as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(4);
  });

  it("the same idempotency key returns the same job", async () => {
    const { url } = await h.start();
    const first = (await (await submit(url, chatJob("chat", { idempotencyKey: "batch-7" }))).json()) as {
      id: string;
    };
    const again = await submit(url, chatJob("chat", { idempotencyKey: "batch-7" }));
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(first.id);
  });

  it("a job waits durably for a model at zero, survives a gateway restart, and runs when a worker is ready", async () => {
    const one = await h.start();
    const job = (await (await submit(one.url, chatJob("cold"))).json()) as { id: string };
    await new Promise((r) => setTimeout(r, 200));
    expect((await waitForJob(one.url, job.id, 0)).status).toBe("queued");
    await one.gateway.app.close(); // the gateway that accepted it goes away
    const two = await h.start();
    await h.addRoute("cold", { baseUrl: h.fake.url });
    const done = await waitForJob(two.url, job.id);
    expect(done.status).toBe("succeeded");
    await h.removeRoutes("cold");
  });

  it("a job that fails transiently is retried; a bad request fails without retries", async () => {
    // its own stack, so no other gateway's consumer holds the job
    const own = await createHarness();
    const ownKey = await own.createKey();
    const { url: ownUrl, gateway: ownGateway } = await own.start(own.config, { jobVisibilityMs: 400 });
    own.fake.failNext(500, { count: 1 });
    const accepted = await fetch(`${ownUrl}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${ownKey}`, "content-type": "application/json" },
      body: JSON.stringify(chatJob("chat")),
    });
    const retried = (await accepted.json()) as { id: string };
    // the failed attempt stays pending and is reclaimed after the visibility timeout
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 50 && job.status !== "succeeded"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await (
        await fetch(`${ownUrl}/v1/jobs/${retried.id}`, { headers: { authorization: `Bearer ${ownKey}` } })
      ).json()) as Record<string, unknown>;
    }
    expect(job, JSON.stringify(job)).toMatchObject({ status: "succeeded", attempts: 2 });
    // the failed attempt counts as a request's would (the one attempt policy: gateway/attempt.ts)
    const failedAttempts = (await ownGateway.metrics.upstreamErrors.get()).values.find(
      (v) => v.labels.kind === "status_5xx" && v.labels.model === "chat",
    );
    expect(failedAttempts?.value).toBe(1);
    await own.close();
    const { url } = await h.start();
    const bad = (await (
      await submit(
        url,
        chatJob("chat", {
          body: { model: "chat", messages: [{ role: "user", content: "x" }], max_tokens: 100_000 },
        }),
      )
    ).json()) as {
      id: string;
    };
    const failed = await waitForJob(url, bad.id);
    expect(failed.status).toBe("failed");
    expect(failed.attempts).toBe(1);
  });

  it("another key cannot see the job; bad submissions are 400", async () => {
    const { url } = await h.start();
    const job = (await (await submit(url, chatJob("chat"))).json()) as { id: string };
    const other = await h.createKey();
    const peek = await fetch(`${url}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${other}` } });
    expect(peek.status).toBe(404);
    expect((await submit(url, { endpoint: "/v1/nope", body: {} })).status).toBe(400);
    expect(
      (await submit(url, chatJob("chat", { body: { model: "chat", messages: [], stream: true } }))).status,
    ).toBe(400);
    expect((await submit(url, chatJob("nope"))).status).toBe(404);
  });
});
