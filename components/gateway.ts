import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { GATEWAY_NODE_FLAGS, GATEWAY_PROCESS_ENV } from "../core/process-env";
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

export const GATEWAY_PORT = 8080;

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
  /** IngressClass of the cluster's ingress controller. @default "nginx" */
  readonly ingressClassName?: string;
  /** Namespace of the ingress controller (the only source of client traffic). @default "ingress-nginx" */
  readonly ingressNamespace?: string;
  /** Namespace of Prometheus (scrapes /metrics). @default "monitoring" */
  readonly monitoringNamespace?: string;
  /** Largest request body, to size the Ingress' body limit the same as the gateway's. @default 1048576 */
  readonly maxRequestBytes?: number;
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
 * Ingress with TLS, a PodDisruptionBudget, and a NetworkPolicy admitting only the ingress controller and
 * Prometheus, and letting it reach only Redis and workers.
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
                port: GATEWAY_PORT,
                portName: "http",
                args: ["--port", String(GATEWAY_PORT)],
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
            { name: "metrics", port: GATEWAY_PORT, targetPort: "http" },
          ],
        },
      },
      child,
    );
    this.serviceName = service.metadata.name;

    const tls = args.tls ?? true;
    const tlsSecret = `${args.host.replace(/\./g, "-")}-tls`;
    new k8s.networking.v1.Ingress(
      `${name}-ingress`,
      {
        metadata: {
          name: "gateway",
          namespace: args.namespace,
          labels,
          annotations: {
            ...(tls ? { "cert-manager.io/cluster-issuer": args.clusterIssuer ?? "letsencrypt-prod" } : {}),
            // Streams must not be buffered or cut by the proxy while a GPU boots.
            "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-body-size": `${Math.ceil((args.maxRequestBytes ?? 1_048_576) / 1_048_576)}m`,
          },
        },
        spec: {
          ingressClassName: args.ingressClassName ?? "nginx",
          ...(tls ? { tls: [{ hosts: [args.host], secretName: tlsSecret }] } : {}),
          rules: [
            {
              host: args.host,
              http: {
                paths: [
                  {
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
      child,
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
          port: GATEWAY_PORT,
          fromNamespaces: [
            args.ingressNamespace ?? "ingress-nginx",
            args.monitoringNamespace ?? "monitoring",
          ],
          redisSelector: selectorFor("redis"),
          redisPort: args.redis.port,
          ...(args.traceCollector ? { alsoTo: [args.traceCollector] } : {}),
        }),
      },
      child,
    );

    this.url = pulumi.output(`${tls ? "https" : "http"}://${args.host}/v1`);
    this.registerOutputs({ serviceName: this.serviceName, url: this.url });
  }
}
