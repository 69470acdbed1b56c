import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { labelsFor, selectorFor } from "./labels";
import { TLS_DIR, TLS_FILES } from "./stack-pki";

export const REDIS_PORT = 6379;

/**
 * The official Redis image by digest: the multi-platform index of redis:7.4.11-alpine as docker-library/repo-info
 * records it (`repos/redis/remote/7.4.11-alpine.md`, built 2026-08-18). Not checked against Docker Hub from the
 * machine that wrote it; bump tag and digest together.
 */
export const REDIS_IMAGE =
  "redis:7.4.11-alpine@sha256:ff02b58f971e7d7d156a1267e283fcbbeee91773b6aa36c49dac28ecfe28eadf";

export interface RedisArgs {
  /** Namespace Redis runs in. */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Pod label sets allowed to connect (the gateway's and the controller's). */
  readonly clients: readonly Record<string, string>[];
  /** Official Redis image, pinned by digest. @default REDIS_IMAGE (redis:7.4.11-alpine) */
  readonly image?: string;
  /** Size of the volume holding the append-only file, GiB. @default 5 */
  readonly storageGi?: number;
  /** Storage class of that volume. @default the cluster's default (hcloud-volumes with the Hetzner CSI driver) */
  readonly storageClassName?: string;
  /** Memory limit; Redis' maxmemory is set to 80% of it so it refuses writes before the kernel kills it. @default 512 */
  readonly memoryMi?: number;
  /** CPU limit. @default "500m" */
  readonly cpu?: string;
  /** Version of the generated password; bump it to rotate. @default 1 */
  readonly passwordVersion?: number;
  /** Serve TLS only and require client certificates: the Secret (ca.crt, tls.crt, tls.key) of Redis' own certificate. @default plain TCP */
  readonly tlsSecret?: pulumi.Input<string>;
}

/**
 * Redis for queues, registry, limits and the ledger: one StatefulSet on the official image, a password from a
 * generated Secret, append-only persistence on a volume (queued jobs survive a restart), non-root with a
 * read-only root filesystem, a ClusterIP Service, and a NetworkPolicy that admits only the given clients.
 */
export class Redis extends pulumi.ComponentResource {
  /** In-cluster host name of the Redis Service. */
  public readonly host: pulumi.Output<string>;
  public readonly port: number = REDIS_PORT;
  /** Secret and key holding the password (reference it with a secretKeyRef). */
  public readonly passwordSecretName: pulumi.Output<string>;
  public readonly passwordSecretKey = "password";
  /** Redis speaks TLS only, with client certificates. */
  public readonly tls: boolean;

  constructor(name: string, args: RedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:Redis", name, {}, opts);
    if (args.clients.length === 0) throw new Error(`Redis ${name}: clients is empty; nothing could connect`);
    const memoryMi = args.memoryMi ?? 512;
    if (memoryMi < 64) throw new Error(`Redis ${name}: memoryMi ${memoryMi} is below the 64 MiB Redis needs`);
    const child = { parent: this, provider: args.provider };
    const labels = labelsFor("redis");
    const selector = selectorFor("redis");

    // Bumping passwordVersion makes a new password (keepers); the Secret is immutable and auto-named, so Redis and
    // its clients roll onto it.
    const password = new random.RandomPassword(
      `${name}-password`,
      { length: 32, special: false, keepers: { version: String(args.passwordVersion ?? 1) } },
      { parent: this },
    );
    const secret = new k8s.core.v1.Secret(
      `${name}-password`,
      {
        metadata: { namespace: args.namespace, labels },
        type: "Opaque",
        immutable: true,
        stringData: { [this.passwordSecretKey]: pulumi.secret(password.result) },
      },
      child,
    );
    this.passwordSecretName = secret.metadata.name;

    const tlsOn = args.tlsSecret !== undefined;
    this.tls = tlsOn;
    const tlsMounts = tlsOn ? [{ name: "tls", mountPath: TLS_DIR, readOnly: true }] : [];
    // redis-cli as Redis' own probes run it: over TLS with Redis' certificate when mTLS is on.
    const cli = tlsOn
      ? `redis-cli --tls --cacert ${TLS_FILES.ca} --cert ${TLS_FILES.cert} --key ${TLS_FILES.key} -h 127.0.0.1`
      : "redis-cli";
    const hardened = {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    };

    const service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: { name: "redis", namespace: args.namespace, labels },
        spec: {
          type: "ClusterIP",
          selector,
          ports: [{ name: "redis", port: REDIS_PORT, targetPort: "redis" }],
        },
      },
      child,
    );

    new k8s.apps.v1.StatefulSet(
      `${name}-statefulset`,
      {
        metadata: { name: "redis", namespace: args.namespace, labels },
        spec: {
          serviceName: service.metadata.name,
          replicas: 1,
          selector: { matchLabels: selector },
          template: {
            metadata: { labels },
            spec: {
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 999,
                runAsGroup: 999,
                fsGroup: 999,
                seccompProfile: { type: "RuntimeDefault" },
              },
              automountServiceAccountToken: false,
              containers: [
                {
                  name: "redis",
                  image: args.image ?? REDIS_IMAGE,
                  command: ["redis-server"],
                  args: [
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--dir",
                    "/data",
                    "--requirepass",
                    "$(REDIS_PASSWORD)",
                    "--maxmemory",
                    `${Math.floor(memoryMi * 0.8)}mb`,
                    // Queues must not lose entries to eviction: refuse writes instead.
                    "--maxmemory-policy",
                    "noeviction",
                    ...(tlsOn
                      ? [
                          "--port",
                          "0",
                          "--tls-port",
                          String(REDIS_PORT),
                          "--tls-cert-file",
                          TLS_FILES.cert,
                          "--tls-key-file",
                          TLS_FILES.key,
                          "--tls-ca-cert-file",
                          TLS_FILES.ca,
                          "--tls-auth-clients",
                          "yes",
                        ]
                      : []),
                  ],
                  env: [
                    {
                      name: "REDIS_PASSWORD",
                      valueFrom: {
                        secretKeyRef: { name: secret.metadata.name, key: this.passwordSecretKey },
                      },
                    },
                  ],
                  ports: [{ name: "redis", containerPort: REDIS_PORT }],
                  volumeMounts: [{ name: "data", mountPath: "/data" }, ...tlsMounts],
                  readinessProbe: {
                    exec: {
                      command: ["sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" ${cli} ping | grep -q PONG`],
                    },
                    periodSeconds: 5,
                  },
                  livenessProbe: { tcpSocket: { port: "redis" }, initialDelaySeconds: 10, periodSeconds: 10 },
                  resources: {
                    requests: { cpu: "100m", memory: `${Math.floor(memoryMi / 2)}Mi` },
                    limits: { cpu: args.cpu ?? "500m", memory: `${memoryMi}Mi` },
                  },
                  securityContext: hardened,
                },
                ...(tlsOn
                  ? [
                      {
                        // Renewed certificates arrive in the mounted Secret; Redis re-reads them on CONFIG SET,
                        // so rotation needs no restart and no connection drops.
                        name: "tls-reload",
                        image: args.image ?? REDIS_IMAGE,
                        command: [
                          "sh",
                          "-c",
                          `while true; do sleep 300; REDISCLI_AUTH="$REDIS_PASSWORD" ${cli} CONFIG SET tls-cert-file ${TLS_FILES.cert} tls-key-file ${TLS_FILES.key} tls-ca-cert-file ${TLS_FILES.ca} >/dev/null; done`,
                        ],
                        env: [
                          {
                            name: "REDIS_PASSWORD",
                            valueFrom: {
                              secretKeyRef: { name: secret.metadata.name, key: this.passwordSecretKey },
                            },
                          },
                        ],
                        volumeMounts: tlsMounts,
                        resources: {
                          requests: { cpu: "5m", memory: "16Mi" },
                          limits: { cpu: "50m", memory: "32Mi" },
                        },
                        securityContext: hardened,
                      },
                    ]
                  : []),
              ],
              volumes: tlsOn
                ? [{ name: "tls", secret: { secretName: args.tlsSecret!, defaultMode: 0o440 } }]
                : [],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: "data" },
              spec: {
                accessModes: ["ReadWriteOnce"],
                storageClassName: args.storageClassName,
                resources: { requests: { storage: `${args.storageGi ?? 5}Gi` } },
              },
            },
          ],
        },
      },
      child,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-ingress`,
      {
        metadata: { name: "redis-clients-only", namespace: args.namespace, labels },
        spec: {
          podSelector: { matchLabels: selector },
          policyTypes: ["Ingress"],
          ingress: [
            {
              from: args.clients.map((client) => ({ podSelector: { matchLabels: client } })),
              ports: [{ protocol: "TCP", port: REDIS_PORT }],
            },
          ],
        },
      },
      child,
    );

    this.host = pulumi.interpolate`${service.metadata.name}.${args.namespace}.svc.cluster.local`;
    this.registerOutputs({ host: this.host, passwordSecretName: this.passwordSecretName });
  }
}
