/** `ai-orchestrator:backup` and its secrets: defaults, errors naming the field, the runtime config it renders. */
import { describe, expect, it } from "vitest";
import {
  type ConfigProblem,
  loadStackConfig,
  parseRuntimeConfig,
  parseStackFile,
  renderRuntimeConfig,
  StackConfigError,
} from "../../core/config";
import { CREDENTIAL_ENV } from "../../core/config/schema";
import { stackYaml } from "../../devkit/stack-yaml";

const load = (yaml: string) => loadStackConfig(parseStackFile(yaml, "Pulumi.test.yaml"));

function problemsOf(yaml: string): ConfigProblem[] {
  try {
    load(yaml);
  } catch (error) {
    if (error instanceof StackConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected the config to be rejected");
}

describe("stack config: backup", () => {
  it("defaults to hourly backups to Hetzner Object Storage kept two weeks, and needs its two secrets", () => {
    const loaded = load(stackYaml({ backup: "{ bucket: my-backups }" }));
    expect(loaded.config.backup).toEqual({
      endpoint: "https://fsn1.your-objectstorage.com",
      bucket: "my-backups",
      prefix: "aiorch/",
      schedule: "0 * * * *",
      retentionDays: 14,
      alertAfterHours: 3,
    });
    expect(loaded.missingSecrets).toEqual(
      expect.arrayContaining(["ai-orchestrator:backupAccessKeyId", "ai-orchestrator:backupSecretAccessKey"]),
    );
    expect(load(stackYaml()).missingSecrets).not.toContain("ai-orchestrator:backupAccessKeyId");
  });

  it("names each bad field and what to write", () => {
    const problems = problemsOf(
      stackYaml({
        backup: `{ endpoint: "fsn1.your-objectstorage.com", bucket: "My_Bucket", prefix: "/abs", schedule: "hourly", retentionDays: 0, color: red }`,
      }),
    );
    const message = (key: string) => problems.find((p) => p.key === `ai-orchestrator:backup.${key}`)?.message;
    expect(message("endpoint")).toMatch(/is not an http\(s\) URL/);
    expect(message("bucket")).toMatch(/is not an S3 bucket name/);
    expect(message("prefix")).toMatch(/must be empty or folder names each ending in '\/'/);
    expect(message("schedule")).toMatch(/is not a cron schedule; write e.g. "0 \* \* \* \*"/);
    expect(message("retentionDays")).toMatch(/must be at least 1; got 0/);
    expect(message("color")).toMatch(/unknown field "color"; known: endpoint, bucket/);
    expect(problemsOf(stackYaml({ backup: "{ endpoint: https://x.example }" }))[0]).toMatchObject({
      key: "ai-orchestrator:backup.bucket",
    });
  });

  it("backup credentials are secrets, refused in plain text, and never reach the controller's environment", () => {
    const problems = problemsOf(stackYaml({ "ai-orchestrator:backupSecretAccessKey": "abc" }));
    expect(problems[0]).toMatchObject({ key: "ai-orchestrator:backupSecretAccessKey" });
    expect(problems[0]!.message).toMatch(/pulumi config set --secret/);
    expect(Object.values(CREDENTIAL_ENV)).not.toContain("AWS_SECRET_ACCESS_KEY");
  });

  it("the runtime config carries the target (no credentials) and parses back", () => {
    const runtime = renderRuntimeConfig(load(stackYaml({ backup: "{ bucket: my-backups }" })), "test");
    expect(runtime.backup?.bucket).toBe("my-backups");
    expect(parseRuntimeConfig(JSON.parse(JSON.stringify(runtime)))).toEqual(runtime);
    expect(renderRuntimeConfig(load(stackYaml()), "test")).not.toHaveProperty("backup");
  });
});
