import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_CREDENTIAL_ENV } from "../core/config/schema";
import { labelsFor, selectorFor } from "./labels";
import { ENCRYPTION_KEYS_ENV } from "./queue-encryption";
import { RuntimeBundle } from "./runtime-bundle";
import {
  type RedisClientConnection,
  redisCertAnnotation,
  redisEnv,
  runtimeNetworkPolicySpec,
  runtimePodSpec,
} from "./runtime-pod";

export interface BackupCronJobArgs {
  /** Namespace the CronJob runs in (the stack's, beside Redis). */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** ConfigMap holding runtime.json (its `backup` names endpoint, bucket, prefix and retention). */
  readonly runtimeConfigMap: pulumi.Input<string>;
  /** Cron schedule (UTC), `ai-orchestrator:backup.schedule`. */
  readonly schedule: string;
  /** Object storage credentials (the stack's `backupAccessKeyId` / `backupSecretAccessKey` secrets). */
  readonly credentials: {
    readonly accessKeyId: pulumi.Input<string>;
    readonly secretAccessKey: pulumi.Input<string>;
  };
  /** Secret with the queue encryption key ring; backups are sealed with it. @default not sealed */
  readonly encryptionSecret?: pulumi.Input<string>;
  /** Redis host, and the Secret and key of its password. */
  readonly redis: RedisClientConnection;
  /** CPU and memory (requests = limits). @default { cpu: "250m", memory: "256Mi" } */
  readonly resources?: { cpu: string; memory: string };
}

/** A run may take this long before Kubernetes stops it (a backup of a few MB takes seconds). */
export const BACKUP_DEADLINE_SECONDS = 600;

/**
 * The scheduled Redis backup (`backup/main.ts`, README "Disaster recovery"): a CronJob running the backup bundle
 * on the runtime image, one run at a time (`Forbid`), retried twice, under a ServiceAccount with no permissions.
 * Credentials reach it only through a Secret; a NetworkPolicy lets it out to Redis and to public addresses
 * (object storage) and lets nothing in.
 */
export class BackupCronJob extends pulumi.ComponentResource {
  public readonly cronJobName: pulumi.Output<string>;

  constructor(name: string, args: BackupCronJobArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:BackupCronJob", name, {}, opts);
    const child = { parent: this, provider: args.provider };
    const labels = labelsFor("backup");
    const selector = selectorFor("backup");
    const code = new RuntimeBundle(
      `${name}-bundle`,
      { process: "backup", namespace: args.namespace, provider: args.provider },
      { parent: this },
    );

    const credentials = new k8s.core.v1.Secret(
      `${name}-credentials`,
      {
        metadata: { namespace: args.namespace, labels: labelsFor("backup-credentials") },
        type: "Opaque",
        // immutable and auto-named, as the provider credentials: a rotated key makes a new Secret
        immutable: true,
        stringData: {
          [BACKUP_CREDENTIAL_ENV.backupAccessKeyId]: pulumi.secret(args.credentials.accessKeyId),
          [BACKUP_CREDENTIAL_ENV.backupSecretAccessKey]: pulumi.secret(args.credentials.secretAccessKey),
        },
      },
      child,
    );

    const account = new k8s.core.v1.ServiceAccount(
      `${name}-account`,
      {
        metadata: { name: "backup", namespace: args.namespace, labels },
        automountServiceAccountToken: false,
      },
      child,
    );

    const pod = runtimePodSpec({
      bundle: code.bundle,
      bundleConfigMap: code.configMapName,
      runtimeConfigMap: args.runtimeConfigMap,
      redisTlsSecret: args.redis.tls?.secretName,
      serviceAccountName: account.metadata.name,
      ports: [],
      probePort: "",
      env: [
        ...redisEnv(args.redis),
        ...(args.encryptionSecret
          ? [
              {
                name: ENCRYPTION_KEYS_ENV,
                valueFrom: { secretKeyRef: { name: args.encryptionSecret, key: ENCRYPTION_KEYS_ENV } },
              },
            ]
          : []),
      ],
      envFrom: [{ secretRef: { name: credentials.metadata.name } }],
      resources: args.resources ?? { cpu: "250m", memory: "256Mi" },
    });
    // a run to completion: no ports, no probes (nothing serves), never restarted in place (the Job retries)
    const containers = (pod.containers as k8s.types.input.core.v1.Container[]).map(
      ({ ports: _ports, startupProbe: _s, livenessProbe: _l, readinessProbe: _r, ...container }) => container,
    );

    const cronJob = new k8s.batch.v1.CronJob(
      `${name}-cronjob`,
      {
        metadata: { name: "redis-backup", namespace: args.namespace, labels },
        spec: {
          schedule: args.schedule,
          timeZone: "Etc/UTC",
          concurrencyPolicy: "Forbid",
          startingDeadlineSeconds: 300,
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            metadata: { labels },
            spec: {
              backoffLimit: 2,
              activeDeadlineSeconds: BACKUP_DEADLINE_SECONDS,
              template: {
                metadata: {
                  labels,
                  annotations: {
                    "aiorch.dev/bundle-sha256": code.bundle.sha256,
                    ...redisCertAnnotation(args.redis),
                  },
                },
                spec: { ...pod, containers, restartPolicy: "Never" },
              },
            },
          },
        },
      },
      child,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-network`,
      {
        metadata: { name: "redis-backup", namespace: args.namespace, labels },
        spec: runtimeNetworkPolicySpec({
          selector,
          admit: [],
          redisSelector: selectorFor("redis"),
          redisPort: args.redis.port,
        }),
      },
      child,
    );

    this.cronJobName = cronJob.metadata.name;
    this.registerOutputs({ cronJobName: this.cronJobName });
  }
}
