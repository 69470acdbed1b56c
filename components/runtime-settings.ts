import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { RUNTIME_CONFIG_COMPONENT, RUNTIME_CONFIG_FILE, type RuntimeConfig } from "../core/config";
import { labelsFor } from "./labels";

export interface RuntimeSettingsArgs {
  /** Namespace the ConfigMap and Secret live in. */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Rendered runtime config (no secrets) — see `renderRuntimeConfig`. */
  readonly runtimeConfig: RuntimeConfig;
  /** Provider credentials by environment variable name, e.g. `RUNPOD_API_KEY`; stored only in a Secret. @default {} */
  readonly credentials?: Record<string, pulumi.Input<string>>;
}

/**
 * What the gateway and controller are configured with: the runtime config as a ConfigMap (auto-named, so a
 * change creates a new one and the Deployments that mount it roll) and provider credentials as a Secret.
 */
export class RuntimeSettings extends pulumi.ComponentResource {
  /** Name of the ConfigMap holding `runtime.json`. */
  public readonly configMapName: pulumi.Output<string>;
  /** Name of the Secret holding the provider credentials. */
  public readonly credentialsSecretName: pulumi.Output<string>;

  constructor(name: string, args: RuntimeSettingsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:RuntimeSettings", name, {}, opts);
    const childOpts = { parent: this, provider: args.provider };

    const configMap = new k8s.core.v1.ConfigMap(
      `${name}-config`,
      {
        metadata: { namespace: args.namespace, labels: labelsFor(RUNTIME_CONFIG_COMPONENT) },
        data: { [RUNTIME_CONFIG_FILE]: `${JSON.stringify(args.runtimeConfig, null, 2)}\n` },
      },
      childOpts,
    );

    const credentials = args.credentials ?? {};
    const secret = new k8s.core.v1.Secret(
      `${name}-credentials`,
      {
        metadata: { namespace: args.namespace, labels: labelsFor("provider-credentials") },
        type: "Opaque",
        // Immutable and auto-named: a rotated credential makes a new Secret, and the Deployments that reference
        // it roll one pod at a time — rotation without a manual restart and without downtime.
        immutable: true,
        stringData: Object.fromEntries(Object.entries(credentials).map(([k, v]) => [k, pulumi.secret(v)])),
      },
      childOpts,
    );

    this.configMapName = configMap.metadata.name;
    this.credentialsSecretName = secret.metadata.name;
    this.registerOutputs({
      configMapName: this.configMapName,
      credentialsSecretName: this.credentialsSecretName,
    });
  }
}
