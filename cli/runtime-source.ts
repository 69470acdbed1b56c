/** Where a runtime command gets its config: `--stack NAME` (rendered from Pulumi.NAME.yaml) or `--config FILE`. */
import { existsSync, readFileSync } from "node:fs";
import { parseRuntimeConfig, type RuntimeConfig } from "../core/config";
import { stackRuntimeConfig, UsageError } from "./plan/run";

export function runtimeConfigFrom(options: { stack?: string; config?: string; dir: string }): RuntimeConfig {
  if (options.stack && options.config) throw new UsageError("give --stack or --config, not both");
  if (options.config) {
    if (!existsSync(options.config)) throw new UsageError(`--config ${options.config}: no such file`);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(options.config, "utf8"));
    } catch (error) {
      throw new UsageError(`--config ${options.config}: not JSON (${(error as Error).message})`);
    }
    return parseRuntimeConfig(json);
  }
  return stackRuntimeConfig(options.dir, options.stack ?? "dev");
}
