import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { OPS_PORT } from "../core/process-env";
import { labelsFor, selectorFor } from "./labels";
import { RuntimeBundle } from "./runtime-bundle";
import {
  type NetworkPeer,
  type RedisClientConnection,
  redisCertAnnotation,
  redisEnv,
  runtimeNetworkPolicySpec,
  runtimePodSpec,
} from "./runtime-pod";

/** The controller's only port: /metrics, /healthz, /readyz (controller/main.ts `--port`). */
export const CONTROLLER_METRICS_PORT = OPS_PORT;

export interface ControllerArgs {
  /** Namespace the controller runs in. */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Replicas: one leads through a Redis lock, the others stand by. @default 1 */
  readonly replicas?: number;
  /** ConfigMap holding runtime.json. */
  readonly runtimeConfigMap: pulumi.Input<string>;
  /** Secret with the provider credentials, mounted as environment variables. */
  readonly credentialsSecret: pulumi.Input<string>;
  /** Redis host, and the Secret and key of its password. */
  readonly redis: RedisClientConnection;
  /** Prometheus, the only client of /metrics. @default { namespace: "monitoring" } */
  readonly prometheus?: NetworkPeer;
  /** CPU and memory (requests = limits). @default { cpu: "250m", memory: "256Mi" } */
  readonly resources?: { cpu: string; memory: string };
  /**
   * Serve MCP (Streamable HTTP, API keys as bearer) on this port of the pod, behind the ClusterIP Service and never
   * in the Ingress; only `allowFrom` may connect (stack config `mcp`). @default not served
   */
  readonly mcp?: { readonly port: number; readonly allowFrom: readonly NetworkPeer[] };
}

/**
 * The GPU controller: a Deployment running the controller bundle under a ServiceAccount with no Kubernetes
 * permissions (it talks to Redis and provider APIs only), a metrics Service, and a NetworkPolicy.
 */
export class Controller extends pulumi.ComponentResource {
  public readonly serviceAccountName: pulumi.Output<string>;

  constructor(name: string, args: ControllerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:Controller", name, {}, opts);
    const child = { parent: this, provider: args.provider };
    const labels = labelsFor("controller");
    const selector = selectorFor("controller");
    const code = new RuntimeBundle(
      `${name}-bundle`,
      { process: "controller", namespace: args.namespace, provider: args.provider },
      { parent: this },
    );

    // No Role or binding: nothing in the cluster is the controller's to change.
    const account = new k8s.core.v1.ServiceAccount(
      `${name}-account`,
      {
        metadata: { name: "controller", namespace: args.namespace, labels },
        automountServiceAccountToken: false,
      },
      child,
    );
    this.serviceAccountName = account.metadata.name;

    new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name: "controller", namespace: args.namespace, labels },
        spec: {
          replicas: args.replicas ?? 1,
          selector: { matchLabels: selector },
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
                serviceAccountName: account.metadata.name,
                ports: [
                  { name: "metrics", containerPort: CONTROLLER_METRICS_PORT },
                  ...(args.mcp ? [{ name: "mcp", containerPort: args.mcp.port }] : []),
                ],
                probePort: "metrics",
                args: [
                  "--port",
                  String(CONTROLLER_METRICS_PORT),
                  ...(args.mcp ? ["--mcp-port", String(args.mcp.port)] : []),
                ],
                env: redisEnv(args.redis),
                envFrom: [{ secretRef: { name: args.credentialsSecret } }],
                resources: args.resources ?? { cpu: "250m", memory: "256Mi" },
              }),
              terminationGracePeriodSeconds: 30,
            },
          },
        },
      },
      child,
    );

    new k8s.core.v1.Service(
      `${name}-metrics`,
      {
        metadata: { name: "controller", namespace: args.namespace, labels },
        spec: {
          type: "ClusterIP",
          selector,
          ports: [
            { name: "metrics", port: CONTROLLER_METRICS_PORT, targetPort: "metrics" },
            ...(args.mcp ? [{ name: "mcp", port: args.mcp.port, targetPort: "mcp" }] : []),
          ],
        },
      },
      child,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-network`,
      {
        metadata: { name: "controller", namespace: args.namespace, labels },
        spec: runtimeNetworkPolicySpec({
          selector,
          admit: [
            { port: CONTROLLER_METRICS_PORT, from: [args.prometheus ?? { namespace: "monitoring" }] },
            ...(args.mcp ? [{ port: args.mcp.port, from: args.mcp.allowFrom }] : []),
          ],
          redisSelector: selectorFor("redis"),
          redisPort: args.redis.port,
        }),
      },
      child,
    );

    this.registerOutputs({ serviceAccountName: this.serviceAccountName });
  }
}
