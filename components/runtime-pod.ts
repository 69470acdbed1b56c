import { createHash } from "node:crypto";
import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { RUNTIME_CONFIG_FILE } from "../core/config/runtime";
import { APP_DIR, BUNDLE_DIR, CONFIG_DIR, type ProcessBundle, unpackCommand } from "./runtime-bundle";
import { TLS_DIR, TLS_FILES } from "./stack-pki";

/**
 * Stock Node image the runtime runs on; the code comes from the bundle ConfigMap. Debian's glibc, not Alpine's musl:
 * the gateway's memory settings (GATEWAY_PROCESS_ENV) are glibc malloc's, measured by bench:gateway on glibc.
 * Pinned by digest (a tag is rebuilt and moves): the multi-platform index of node:22.23.3-bookworm-slim as
 * docker-library/repo-info records it (`repos/node/remote/22.23.3-bookworm-slim.md`, built 2026-09-23). Not
 * checked against Docker Hub from the machine that wrote it; bump tag and digest together.
 */
export const NODE_IMAGE =
  "node:22.23.3-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c";
/** The `node` user of the official image. */
const NODE_UID = 1000;

export interface RuntimePodOptions {
  readonly bundle: ProcessBundle;
  readonly bundleConfigMap: pulumi.Input<string>;
  readonly runtimeConfigMap: pulumi.Input<string>;
  /** Ports the container listens on, by name. */
  readonly ports: readonly { name: string; containerPort: number }[];
  /** Name of the port serving /healthz and /readyz (the ops port, never the public one). */
  readonly probePort: string;
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
        ports: o.ports.map((p) => ({ name: p.name, containerPort: p.containerPort })),
        env: [{ name: "NODE_ENV", value: "production" }, ...o.env],
        envFrom: o.envFrom,
        volumeMounts: [
          { name: "app", mountPath: APP_DIR, readOnly: true },
          { name: "config", mountPath: CONFIG_DIR, readOnly: true },
          { name: "tmp", mountPath: "/tmp" },
          ...(o.redisTlsSecret ? [{ name: "redis-tls", mountPath: TLS_DIR, readOnly: true }] : []),
        ],
        // The process answers /healthz on its ops port as soon as it runs, before Redis answers (it waits for
        // Redis, logging why, with /readyz at 503): the startup probe gives a slow node two minutes to start it,
        // and liveness never kills a pod that is only waiting.
        startupProbe: {
          httpGet: { path: "/healthz", port: o.probePort },
          periodSeconds: 2,
          failureThreshold: 60,
        },
        livenessProbe: {
          httpGet: { path: "/healthz", port: o.probePort },
          periodSeconds: 10,
          failureThreshold: 3,
        },
        readinessProbe: {
          httpGet: { path: "/readyz", port: o.probePort },
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

/** Pods allowed in: a namespace and, where known, the pods' labels in it. */
export interface NetworkPeer {
  readonly namespace: string;
  readonly podLabels?: Readonly<Record<string, string>>;
}

/** The `from`/`to` entry of a peer: a namespace, narrowed to labelled pods when labels are given. */
export function peerSelector(peer: NetworkPeer): k8s.types.input.networking.v1.NetworkPolicyPeer {
  return {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": peer.namespace } },
    ...(peer.podLabels ? { podSelector: { matchLabels: { ...peer.podLabels } } } : {}),
  };
}

/**
 * The NetworkPolicy spec of a runtime process: each port admitted only from its peers (clients on the public
 * port, Prometheus on the ops port); out only to Redis and to public addresses (provider APIs, workers, managed
 * endpoints) — never to the cluster's other pods, the node network or the cloud metadata service.
 */
export function runtimeNetworkPolicySpec(o: {
  selector: Record<string, string>;
  admit: readonly { port: number; from: readonly NetworkPeer[] }[];
  redisSelector: Record<string, string>;
  redisPort: number;
  /** In-cluster services it may also reach, e.g. an OpenTelemetry collector. @default none */
  alsoTo?: readonly { namespace: string; port: number }[];
}): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    podSelector: { matchLabels: o.selector },
    policyTypes: ["Ingress", "Egress"],
    ingress: o.admit.map((rule) => ({
      from: rule.from.map(peerSelector),
      ports: [{ protocol: "TCP", port: rule.port }],
    })),
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
