/** Redis out of reach is a 503 the client may retry, never a 500 (the errors ioredis really throws). */
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { isRedisUnavailable, toGatewayError } from "../../gateway/errors";
import { freePort } from "../private-redis";

describe("a request while Redis is out of reach", () => {
  it("gets 503 store_unavailable with Retry-After, for each error ioredis gives up with", async () => {
    const port = await freePort(); // nothing listens there
    const retrying = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    retrying.on("error", () => undefined);
    const gaveUp = await retrying.get("k").catch((e: Error) => e);
    retrying.disconnect();
    const closed = new Redis(port, "127.0.0.1", { lazyConnect: true, enableOfflineQueue: false });
    const refused = await closed.get("k").catch((e: Error) => e);
    closed.disconnect();

    for (const error of [gaveUp, refused]) {
      expect(isRedisUnavailable(error), String(error)).toBe(true);
      const e = toGatewayError(error);
      expect(e.status).toBe(503);
      expect(e.code).toBe("store_unavailable");
      expect(e.headers["retry-after"]).toBe("2");
      expect(JSON.stringify(e.body())).toContain('"type":"server_error"');
    }
  });

  it("leaves other failures alone", () => {
    expect(isRedisUnavailable(new Error("boom"))).toBe(false);
    expect(toGatewayError(new Error("boom")).status).toBe(500);
  });
});
