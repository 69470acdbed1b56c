import { createHash } from "node:crypto";
import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { RUNTIME_CONFIG_FILE } from "../core/config/runtime";
import { APP_DIR, BUNDLE_DIR, CONFIG_DIR, type ProcessBundle, unpackCommand } from "./runtime-bundle";
import { TLS_DIR, TLS_FILES } from "./stack-pki";

/**
 * Stock Node image the runtime runs on; the code comes from the bundle ConfigMap. Debian's glibc, not Alpine's musl:
 * the gateway's memory settings (GATEWAY_PROCESS_ENV) are glibc malloc's, measured by bench:gateway on glibc.
 */
export const NODE_IMAGE = "node:22-bookworm-slim";
/** The `node` user of the official image. */
const NODE_UID = 1000;

export interface RuntimePodOptions {
  readonly bundle: ProcessBundle;
  readonly bundleConfigMap: pulumi.Input<string>;
  readonly runtimeConfigMap: pulumi.Input<string>;
  readonly port: number;
  readonly portName: string;
  readonly env: k8s.types.input.core.v1.EnvVar[];
  readonly envFrom?: k8s.types.input.core.v1.EnvFromSource[];
  readonly resources: { cpu: string; memory: string };
  readonly serviceAccountName?: pulumi.Input<string>;
  readonly args?: string[];
  /** Node/V8 flags before the bundle (heap sizing measured by the benchmarks). */
  readonly nodeFlags?: readonly string[];
  /** Secret with the pod's Redis client certificate, mounted read-only at the TLS directory. */
  readonly redisTlsSecret?: pulumi.Input<string>;
}

const hardened: k8s.types.input.core.v1.SecurityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
};

/**
 * The pod of a runtime process: an init container unpacks the bundle into an emptyDir, the main container runs it
 * with the runtime config mounted read-only. Non-root, read-only root filesystem, no capabilities, limits set —
 * what Pod Security "restricted" and the pack's pod-hardening policy ask.
 */
export function runtimePodSpec(o: RuntimePodOptions): k8s.types.input.core.v1.PodSpec {
  const resources = {
    requests: { cpu: o.resources.cpu, memory: o.resources.memory },
    limits: { cpu: o.resources.cpu, memory: o.resources.memory },
  };
  return {
    serviceAccountName: o.serviceAccountName,
    automountServiceAccountToken: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: NODE_UID,
      runAsGroup: NODE_UID,
      fsGroup: NODE_UID,
      seccompProfile: { type: "RuntimeDefault" },
    },
    initContainers: [
      {
        name: "unpack",
        image: NODE_IMAGE,
        command: unpackCommand(o.bundle),
        volumeMounts: [
          { name: "bundle", mountPath: BUNDLE_DIR, readOnly: true },
          { name: "app", mountPath: APP_DIR },
        ],
        resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
        securityContext: hardened,
      },
    ],
    containers: [
      {
        name: o.bundle.process,
        image: NODE_IMAGE,
        command: [
          "node",
          ...(o.nodeFlags ?? []),
          `${APP_DIR}/${o.bundle.process}.js`,
          "--config",
          `${CONFIG_DIR}/${RUNTIME_CONFIG_FILE}`,
          ...(o.args ?? []),
        ],
        ports: [{ name: o.portName, containerPort: o.port }],
        env: [{ name: "NODE_ENV", value: "production" }, ...o.env],
        envFrom: o.envFrom,
        volumeMounts: [
          { name: "app", mountPath: APP_DIR, readOnly: true },
          { name: "config", mountPath: CONFIG_DIR, readOnly: true },
          { name: "tmp", mountPath: "/tmp" },
          ...(o.redisTlsSecret ? [{ name: "redis-tls", mountPath: TLS_DIR, readOnly: true }] : []),
        ],
        livenessProbe: {
          httpGet: { path: "/healthz", port: o.portName },
          periodSeconds: 10,
          failureThreshold: 3,
        },
        readinessProbe: {
          httpGet: { path: "/readyz", port: o.portName },
          periodSeconds: 5,
          failureThreshold: 2,
        },
        resources,
        securityContext: hardened,
      },
    ],
    volumes: [
      { name: "bundle", configMap: { name: o.bundleConfigMap } },
      { name: "config", configMap: { name: o.runtimeConfigMap } },
      { name: "app", emptyDir: { sizeLimit: "64Mi" } },
      { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
      ...(o.redisTlsSecret
        ? [{ name: "redis-tls", secret: { secretName: o.redisTlsSecret, defaultMode: 0o440 } }]
        : []),
    ],
  };
}

/** How a runtime pod reaches Redis: host, password Secret, and — with mTLS — its client certificate Secret. */
export interface RedisClientConnection {
  readonly host: pulumi.Input<string>;
  readonly port: number;
  readonly passwordSecret: pulumi.Input<string>;
  readonly passwordKey: string;
  /** The client's certificate Secret (ca.crt, tls.crt, tls.key) and the certificate, when Redis requires mTLS. */
  readonly tls?: { readonly secretName: pulumi.Input<string>; readonly certPem: pulumi.Input<string> };
}

/** Redis connection env: the URL, the password from the Redis Secret, and the mounted TLS files when mTLS is on. */
export function redisEnv(redis: RedisClientConnection): k8s.types.input.core.v1.EnvVar[] {
  const scheme = redis.tls ? "rediss" : "redis";
  return [
    { name: "REDIS_URL", value: pulumi.interpolate`${scheme}://${redis.host}:${redis.port}` },
    {
      name: "REDIS_PASSWORD",
      valueFrom: { secretKeyRef: { name: redis.passwordSecret, key: redis.passwordKey } },
    },
    ...(redis.tls
      ? [
          { name: "REDIS_TLS_CA_FILE", value: TLS_FILES.ca },
          { name: "REDIS_TLS_CERT_FILE", value: TLS_FILES.cert },
          { name: "REDIS_TLS_KEY_FILE", value: TLS_FILES.key },
        ]
      : []),
  ];
}

/** Pod annotations that roll a runtime Deployment when its Redis client certificate is renewed. */
export function redisCertAnnotation(redis: RedisClientConnection): Record<string, pulumi.Input<string>> {
  if (!redis.tls) return {};
  return {
    "aiorch.dev/redis-client-cert-sha256": pulumi
      .output(redis.tls.certPem)
      .apply((pem) => createHash("sha256").update(pem).digest("hex")),
  };
}

/** Private and link-local ranges: a runtime pod may not reach them except through the rules that name them. */
const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"];

/**
 * The NetworkPolicy spec of a runtime process: admitted only from the given namespaces on its port; out only to
 * Redis and to public addresses (provider APIs, workers, managed endpoints) — never to the cluster's other pods,
 * the node network or the cloud metadata service.
 */
export function runtimeNetworkPolicySpec(o: {
  selector: Record<string, string>;
  port: number;
  fromNamespaces: readonly string[];
  redisSelector: Record<string, string>;
  redisPort: number;
  /** In-cluster services it may also reach, e.g. an OpenTelemetry collector. @default none */
  alsoTo?: readonly { namespace: string; port: number }[];
}): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    podSelector: { matchLabels: o.selector },
    policyTypes: ["Ingress", "Egress"],
    ingress: [
      {
        from: o.fromNamespaces.map((ns) => ({
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } },
        })),
        ports: [{ protocol: "TCP", port: o.port }],
      },
    ],
    egress: [
      {
        to: [{ podSelector: { matchLabels: o.redisSelector } }],
        ports: [{ protocol: "TCP", port: o.redisPort }],
      },
      { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }] },
      ...(o.alsoTo ?? []).map((t) => ({
        to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": t.namespace } } }],
        ports: [{ protocol: "TCP", port: t.port }],
      })),
    ],
  };
}
