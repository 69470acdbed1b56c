import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ACME_HTTP01_SOLVER, K3S_TRAEFIK, TRAEFIK_HTTPS_ONLY } from "../core/platform";
import { GATEWAY_NODE_FLAGS, GATEWAY_PORT, GATEWAY_PROCESS_ENV, OPS_PORT } from "../core/process-env";
import { labelsFor, selectorFor } from "./labels";
import { ENCRYPTION_KEYS_ENV } from "./queue-encryption";
import { RuntimeBundle } from "./runtime-bundle";
import {
  type NetworkPeer,
  peerSelector,
  type RedisClientConnection,
  redisCertAnnotation,
  redisEnv,
  runtimeNetworkPolicySpec,
  runtimePodSpec,
} from "./runtime-pod";

export { GATEWAY_PORT };
/** The gateway's ops port: /metrics, /healthz, /readyz — in the Service for Prometheus, never in the Ingress. */
export const GATEWAY_METRICS_PORT = OPS_PORT;

export interface GatewayArgs {
  /** Namespace the gateway runs in. */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Public host name of the Ingress, e.g. ai.example.com. */
  readonly host: string;
  /** Gateway replicas (stateless; they share limits and queues through Redis). @default 2 */
  readonly replicas?: number;
  /** Terminate TLS at the Ingress with a cert-manager certificate. @default true */
  readonly tls?: boolean;
  /** cert-manager ClusterIssuer that signs the certificate. @default "letsencrypt-prod" */
  readonly clusterIssuer?: string;
  /** IngressClass of the cluster's ingress controller (k3s' Traefik: `traefik`). @default "traefik" */
  readonly ingressClassName?: string;
  /** The ingress controller's pods: the only source of client traffic. @default kube-system's Traefik pods */
  readonly ingressPeer?: NetworkPeer;
  /** Prometheus, the only client of the ops port (/metrics). @default { namespace: "monitoring" } */
  readonly prometheus?: NetworkPeer;
  /** Resources to create before the Ingress, e.g. the ClusterIssuer it names. @default none */
  readonly ingressDependsOn?: pulumi.Input<pulumi.Resource>[];
  /** ConfigMap holding runtime.json. */
  readonly runtimeConfigMap: pulumi.Input<string>;
  /** Secret holding provider credentials (RUNPOD_API_KEY for managed endpoints). */
  readonly credentialsSecret: pulumi.Input<string>;
  /** Redis host, and the Secret and key of its password. */
  readonly redis: RedisClientConnection;
  /** Secret with the key ring that seals queued bodies (AIORCH_ENCRYPTION_KEYS). @default not sealed */
  readonly encryptionSecret?: pulumi.Input<string>;
  /** An in-cluster OpenTelemetry collector the gateway exports spans to (its NetworkPolicy lets them out). @default none */
  readonly traceCollector?: { namespace: string; port: number };
  /** CPU and memory per replica (requests = limits). @default { cpu: "500m", memory: "256Mi" } */
  readonly resources?: { cpu: string; memory: string };
}

/**
 * The OpenAI-compatible gateway: a Deployment running the gateway bundle on a stock Node image, a Service, an
 * Ingress with TLS (public port only), a PodDisruptionBudget, and NetworkPolicies: the public port admits only
 * the ingress controller, the ops port (/metrics) only Prometheus; out only to Redis and workers; with TLS, the
 * ACME solver pod admits the ingress controller.
 */
export class Gateway extends pulumi.ComponentResource {
  public readonly serviceName: pulumi.Output<string>;
  public readonly url: pulumi.Output<string>;

  constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:Gateway", name, {}, opts);
    const replicas = args.replicas ?? 2;
    if (replicas < 1) throw new Error(`Gateway ${name}: replicas must be at least 1; got ${replicas}`);
    const child = { parent: this, provider: args.provider };
    const labels = labelsFor("gateway");
    const selector = selectorFor("gateway");
    const code = new RuntimeBundle(
      `${name}-bundle`,
      { process: "gateway", namespace: args.namespace, provider: args.provider },
      { parent: this },
    );

    new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name: "gateway", namespace: args.namespace, labels },
        spec: {
          replicas,
          selector: { matchLabels: selector },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: {
              labels,
              annotations: {
                "aiorch.dev/bundle-sha256": code.bundle.sha256,
                ...redisCertAnnotation(args.redis),
              },
            },
            spec: {
              ...runtimePodSpec({
                bundle: code.bundle,
                bundleConfigMap: code.configMapName,
                runtimeConfigMap: args.runtimeConfigMap,
                redisTlsSecret: args.redis.tls?.secretName,
                ports: [
                  { name: "http", containerPort: GATEWAY_PORT },
                  { name: "metrics", containerPort: GATEWAY_METRICS_PORT },
                ],
                probePort: "metrics",
                args: ["--port", String(GATEWAY_PORT), "--metrics-port", String(GATEWAY_METRICS_PORT)],
                nodeFlags: GATEWAY_NODE_FLAGS,
                env: [
                  // the same environment bench:gateway measures the gateway under
                  ...Object.entries(GATEWAY_PROCESS_ENV).map(([name, value]) => ({ name, value })),
                  ...redisEnv(args.redis),
                  ...(args.encryptionSecret
                    ? [
                        {
                          name: ENCRYPTION_KEYS_ENV,
                          valueFrom: {
                            secretKeyRef: { name: args.encryptionSecret, key: ENCRYPTION_KEYS_ENV },
                          },
                        },
                      ]
                    : []),
                  {
                    name: "RUNPOD_API_KEY",
                    valueFrom: {
                      secretKeyRef: { name: args.credentialsSecret, key: "RUNPOD_API_KEY", optional: true },
                    },
                  },
                ],
                resources: args.resources ?? { cpu: "500m", memory: "256Mi" },
              }),
              // Let in-flight streams finish when a pod is replaced.
              terminationGracePeriodSeconds: 60,
            },
          },
        },
      },
      child,
    );

    const service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: { name: "gateway", namespace: args.namespace, labels },
        spec: {
          type: "ClusterIP",
          selector,
          ports: [
            { name: "http", port: 80, targetPort: "http" },
            { name: "metrics", port: GATEWAY_METRICS_PORT, targetPort: "metrics" },
          ],
        },
      },
      child,
    );
    this.serviceName = service.metadata.name;

    const tls = args.tls ?? true;
    const ingressClassName = args.ingressClassName ?? K3S_TRAEFIK.ingressClassName;
    const ingressPeer = args.ingressPeer ?? {
      namespace: K3S_TRAEFIK.namespace,
      podLabels: K3S_TRAEFIK.podLabels,
    };
    const tlsSecret = `${args.host.replace(/\./g, "-")}-tls`;
    new k8s.networking.v1.Ingress(
      `${name}-ingress`,
      {
        metadata: {
          name: "gateway",
          namespace: args.namespace,
          labels,
          // k3s' Traefik streams responses unbuffered and sets no response timeout by default: nothing to tune.
          ...(tls
            ? {
                annotations: {
                  "cert-manager.io/cluster-issuer": args.clusterIssuer ?? "letsencrypt-prod",
                  ...(ingressClassName === K3S_TRAEFIK.ingressClassName ? TRAEFIK_HTTPS_ONLY : {}),
                },
              }
            : {}),
        },
        spec: {
          ingressClassName,
          ...(tls ? { tls: [{ hosts: [args.host], secretName: tlsSecret }] } : {}),
          rules: [
            {
              host: args.host,
              http: {
                paths: [
                  {
                    // only the public port: /metrics is on the Service's metrics port, which no route names
                    path: "/",
                    pathType: "Prefix",
                    backend: { service: { name: service.metadata.name, port: { name: "http" } } },
                  },
                ],
              },
            },
          ],
        },
      },
      { ...child, dependsOn: args.ingressDependsOn ?? [] },
    );

    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-pdb`,
      {
        metadata: { name: "gateway", namespace: args.namespace, labels },
        spec: {
          selector: { matchLabels: selector },
          ...(replicas > 1 ? { minAvailable: 1 } : { maxUnavailable: 1 }),
        },
      },
      child,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-network`,
      {
        metadata: { name: "gateway", namespace: args.namespace, labels },
        spec: runtimeNetworkPolicySpec({
          selector,
          admit: [
            { port: GATEWAY_PORT, from: [ingressPeer] },
            { port: GATEWAY_METRICS_PORT, from: [args.prometheus ?? { namespace: "monitoring" }] },
          ],
          redisSelector: selectorFor("redis"),
          redisPort: args.redis.port,
          ...(args.traceCollector ? { alsoTo: [args.traceCollector] } : {}),
        }),
      },
      child,
    );

    if (tls) {
      // cert-manager answers the HTTP-01 challenge from a solver pod in this namespace; the default deny would
      // keep the ingress controller from it and the certificate would never issue.
      new k8s.networking.v1.NetworkPolicy(
        `${name}-acme-solver`,
        {
          metadata: { name: "acme-http01-solver", namespace: args.namespace, labels },
          spec: {
            podSelector: { matchLabels: { ...ACME_HTTP01_SOLVER.podLabels } },
            policyTypes: ["Ingress"],
            ingress: [
              {
                from: [peerSelector(ingressPeer)],
                ports: [{ protocol: "TCP", port: ACME_HTTP01_SOLVER.port }],
              },
            ],
          },
        },
        child,
      );
    }

    this.url = pulumi.output(`${tls ? "https" : "http"}://${args.host}/v1`);
    this.registerOutputs({ serviceName: this.serviceName, url: this.url });
  }
}
