/**
 * Paused models (MCP `pause_model`, core/run-time-controls.ts): the gateway answers their requests 503 with who
 * paused them and why, instead of queueing work nobody will serve. Read at start, again when a pause is
 * announced, and every 30 s in case an announcement was missed; the hot path only reads the map in memory.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";
import { type ControlNote, readRunTimeControls } from "../core/run-time-controls";

const REFRESH_MS = 30_000;

export class PausedModels {
  private paused: Readonly<Record<string, ControlNote>> = {};
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS);
    this.timer.unref();
  }

  async refresh(): Promise<void> {
    this.paused = (await readRunTimeControls(this.redis, this.keys)).paused;
  }

  /** Why the model is paused, or undefined. */
  of(model: string): ControlNote | undefined {
    return this.paused[model];
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
