import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { labelsFor } from "./labels";

export interface StackNamespaceArgs {
  /** Namespace name. @default "ai-orchestrator" */
  readonly name?: string;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Allow egress to cluster DNS from every pod, so workload policies need not repeat it. @default true */
  readonly allowDns?: boolean;
}

/**
 * The stack's namespace, closed by default: a NetworkPolicy denies all ingress and egress for every pod, and
 * each workload opens only the paths the data flow needs.
 */
export class StackNamespace extends pulumi.ComponentResource {
  /** The namespace's name (wait on this output to order resources after its creation). */
  public readonly name: pulumi.Output<string>;

  constructor(name: string, args: StackNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:StackNamespace", name, {}, opts);
    const nsName = args.name ?? "ai-orchestrator";
    const childOpts = { parent: this, provider: args.provider };

    const namespace = new k8s.core.v1.Namespace(
      name,
      {
        metadata: {
          name: nsName,
          labels: {
            ...labelsFor("namespace"),
            // Pod Security Admission: reject privileged pods in this namespace.
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
          },
        },
      },
      childOpts,
    );
    this.name = namespace.metadata.name;

    new k8s.networking.v1.NetworkPolicy(
      `${name}-default-deny`,
      {
        metadata: { name: "default-deny-all", namespace: this.name, labels: labelsFor("network-policy") },
        spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
      },
      childOpts,
    );

    if (args.allowDns ?? true) {
      new k8s.networking.v1.NetworkPolicy(
        `${name}-allow-dns`,
        {
          metadata: { name: "allow-dns-egress", namespace: this.name, labels: labelsFor("network-policy") },
          spec: {
            podSelector: {},
            policyTypes: ["Egress"],
            egress: [
              {
                to: [
                  { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } } },
                ],
                ports: [
                  { protocol: "UDP", port: 53 },
                  { protocol: "TCP", port: 53 },
                ],
              },
            ],
          },
        },
        childOpts,
      );
    }

    this.registerOutputs({ name: this.name });
  }
}
