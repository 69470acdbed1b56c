/**
 * A stack with `ai-orchestrator:backup`, planned offline through the real program: the backup CronJob on the
 * runtime image, its Secret, Redis admitting it, the alert, every manifest valid against the Kubernetes schemas,
 * and no credential in the plan.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";

interface PlannedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

/** The @kubernetes-models class for a Pulumi Kubernetes type token (as manifests.test.ts). */
function modelClassFor(type: string): { new (data: unknown): { validate(): void } } {
  const [, groupVersion, kind] = /^kubernetes:([^:]+):(\w+)$/.exec(type) ?? [];
  if (!groupVersion || !kind) throw new Error(`not a kubernetes type: ${type}`);
  const path = groupVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${groupVersion}/${kind}`
    : groupVersion.startsWith("cert-manager.io/")
      ? `@kubernetes-models/cert-manager/${groupVersion}/${kind}`
      : `kubernetes-models/${groupVersion.replace(/^core\//, "")}/${kind}`;
  return (require(path) as Record<string, { new (data: unknown): { validate(): void } }>)[kind]!;
}

let resources: PlannedResource[];
let raw: string;
let withoutBackup: PlannedResource[];

beforeAll(() => {
  const dir = tempProject({
    "Pulumi.b.yaml": stackYaml({
      backup: '{ bucket: aiorch-backups, schedule: "15 */2 * * *", alertAfterHours: 5 }',
      security: "{ encryptQueued: true, redisTls: true }",
      monitoring: "{ enabled: true }",
      "ai-orchestrator:vastaiApiKey": "{ secure: v1:CIPHERvast }",
      "ai-orchestrator:kubeconfig": "{ secure: v1:CIPHERkube }",
      "ai-orchestrator:backupAccessKeyId": "{ secure: v1:CIPHERaccess }",
      "ai-orchestrator:backupSecretAccessKey": "{ secure: v1:CIPHERsecret }",
    }),
    "Pulumi.n.yaml": stackYaml({ "ai-orchestrator:kubeconfig": "{ secure: v1:CIPHERkube }" }),
  });
  try {
    const result = aiorch(["plan", "--json", "--stack", "b"], dir);
    raw = result.stdout + result.stderr;
    // exit 0: planned, and no mandatory policy violation (1 would be one)
    if (result.code !== 0) throw new Error(`plan exited ${result.code}: ${result.stderr}`);
    resources = (JSON.parse(result.stdout) as { resources: PlannedResource[] }).resources;
    const plain = aiorch(["plan", "--json", "--stack", "n"], dir);
    withoutBackup = (JSON.parse(plain.stdout) as { resources: PlannedResource[] }).resources;
  } finally {
    removeProject(dir);
  }
}, 120_000);

type Container = {
  name: string;
  image: string;
  command: string[];
  env: { name: string; value?: unknown; valueFrom?: unknown }[];
  envFrom: { secretRef: { name: unknown } }[];
  ports?: unknown;
  readinessProbe?: unknown;
  securityContext: Record<string, unknown>;
};

describe("backup CronJob", () => {
  it("every Kubernetes manifest of the stack validates against its schema", () => {
    const manifests = resources.filter(
      (r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm"),
    );
    for (const manifest of manifests) {
      const Model = modelClassFor(manifest.type);
      expect(() => new Model(manifest.inputs).validate(), `${manifest.type} ${manifest.name}`).not.toThrow();
    }
  });

  it("runs the backup bundle on the runtime image on the configured schedule, one run at a time", () => {
    const cron = resources.find((r) => r.type === "kubernetes:batch/v1:CronJob")!;
    expect(cron).toBeDefined();
    const spec = cron.inputs.spec as {
      schedule: string;
      concurrencyPolicy: string;
      jobTemplate: {
        spec: {
          backoffLimit: number;
          template: { spec: { restartPolicy: string; containers: Container[] } };
        };
      };
    };
    expect(spec.schedule).toBe("15 */2 * * *");
    expect(spec.concurrencyPolicy).toBe("Forbid");
    const pod = spec.jobTemplate.spec.template.spec;
    expect(pod.restartPolicy).toBe("Never");
    const [container] = pod.containers;
    expect(container!.image).toMatch(/^node:22[^@]*@sha256:[0-9a-f]{64}$/);
    expect(container!.command.slice(0, 2)).toEqual(["node", "/opt/aiorch/app/backup.js"]);
    expect(container!.ports).toBeUndefined();
    expect(container!.readinessProbe).toBeUndefined();
    expect(container!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
    const names = container!.env.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(["REDIS_URL", "REDIS_PASSWORD", "REDIS_TLS_CERT_FILE"]));
    expect(container!.env.find((e) => e.name === "AIORCH_ENCRYPTION_KEYS")?.valueFrom).toMatchObject({
      secretKeyRef: { key: "AIORCH_ENCRYPTION_KEYS" },
    });
    // the object storage keys come only from a Secret, never as a literal value
    expect(names).not.toContain("AWS_SECRET_ACCESS_KEY");
    expect(container!.envFrom).toHaveLength(1);
    const bundle = resources.find((r) => r.name === "backup-bundle-code")!;
    expect(Object.keys(bundle.inputs.binaryData as object)).toEqual(["backup.js.br"]);
  });

  it("keeps its credentials in a Secret and no credential in the plan", () => {
    const secret = resources.find((r) => r.name === "backup-credentials")!;
    expect(secret.type).toBe("kubernetes:core/v1:Secret");
    expect(Object.keys(secret.inputs.stringData as object).sort()).toEqual([
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
    ]);
    expect(raw).not.toMatch(/CIPHER|offline-secret/);
  });

  it("is admitted by Redis, gets its own client certificate, and the alert is in the rules", () => {
    const redisPolicy = resources.find((r) => r.name === "redis-ingress")!;
    expect(JSON.stringify(redisPolicy.inputs.spec)).toContain('"app.kubernetes.io/component":"backup"');
    expect(resources.some((r) => r.name.startsWith("pki-backup"))).toBe(true);
    const rule = resources.find((r) => r.type.endsWith(":PrometheusRule"))!;
    const text = JSON.stringify(rule.inputs.spec);
    expect(text).toContain('"alert":"BackupTooOld"');
    expect(text).toContain("> 18000"); // alertAfterHours: 5
  });

  it("is absent from a stack without backup", () => {
    expect(withoutBackup.some((r) => r.type === "kubernetes:batch/v1:CronJob")).toBe(false);
    expect(JSON.stringify(withoutBackup)).not.toContain("BackupTooOld");
  });
});
