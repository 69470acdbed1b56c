import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { labelsFor } from "./labels";

/** Where a TLS Secret is mounted in a pod, and the file names inside it (kubernetes.io/tls + ca.crt). */
export const TLS_DIR = "/etc/aiorch/tls";
export const TLS_FILES = {
  ca: `${TLS_DIR}/ca.crt`,
  cert: `${TLS_DIR}/tls.crt`,
  key: `${TLS_DIR}/tls.key`,
} as const;

export interface StackPkiArgs {
  /** Namespace of the Secrets. */
  readonly namespace: pulumi.Input<string>;
  /** Plain namespace name, for the Redis server certificate's DNS names. */
  readonly namespaceName: string;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Clients that get a certificate, e.g. ["gateway", "controller"]. */
  readonly clients: readonly string[];
  /** Lifetime of leaf certificates, hours. @default 2160 (90 days) */
  readonly leafValidityHours?: number;
  /** A `pulumi up` this close to a leaf's expiry issues a new one. @default 720 (30 days) */
  readonly earlyRenewalHours?: number;
  /** Lifetime of the CA, hours. @default 43800 (5 years) */
  readonly caValidityHours?: number;
}

export interface IssuedCertificate {
  /** Secret holding ca.crt, tls.crt, tls.key. */
  readonly secretName: pulumi.Output<string>;
  /** The certificate (public), for a pod annotation that rolls clients when it is renewed. */
  readonly certPem: pulumi.Output<string>;
}

/**
 * The stack's own CA and the certificates of mTLS inside the cluster: one for the Redis server, one per client.
 * Leaves renew at a `pulumi up` inside their early-renewal window: Redis re-reads its files in place, clients
 * roll one pod at a time, so neither side has downtime. Private keys exist only in Pulumi state (encrypted) and
 * in Secrets.
 */
export class StackPki extends pulumi.ComponentResource {
  public readonly server: IssuedCertificate;
  public readonly clients: Readonly<Record<string, IssuedCertificate>>;

  constructor(name: string, args: StackPkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:StackPki", name, {}, opts);
    const child = { parent: this };
    const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        subject: { commonName: `ai-orchestrator ${args.namespaceName} CA` },
        validityPeriodHours: args.caValidityHours ?? 43_800,
        allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
      },
      child,
    );
    const issue = (who: string, dnsNames: string[], uses: string[]): IssuedCertificate => {
      const key = new tls.PrivateKey(`${name}-${who}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
      const request = new tls.CertRequest(
        `${name}-${who}-csr`,
        { privateKeyPem: key.privateKeyPem, subject: { commonName: who }, dnsNames },
        child,
      );
      const cert = new tls.LocallySignedCert(
        `${name}-${who}-cert`,
        {
          certRequestPem: request.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: args.leafValidityHours ?? 2_160,
          earlyRenewalHours: args.earlyRenewalHours ?? 720,
          allowedUses: ["digital_signature", "key_encipherment", ...uses],
        },
        child,
      );
      const secret = new k8s.core.v1.Secret(
        `${name}-${who}-tls`,
        {
          metadata: { namespace: args.namespace, labels: labelsFor(`${who}-tls`) },
          type: "kubernetes.io/tls",
          stringData: {
            "ca.crt": ca.certPem,
            "tls.crt": cert.certPem,
            "tls.key": pulumi.secret(key.privateKeyPem),
          },
        },
        { parent: this, provider: args.provider },
      );
      return { secretName: secret.metadata.name, certPem: cert.certPem };
    };
    const ns = args.namespaceName;
    // The server certificate is also a client one: Redis' own probes and reloads authenticate with it.
    this.server = issue(
      "redis",
      ["redis", `redis.${ns}`, `redis.${ns}.svc`, `redis.${ns}.svc.cluster.local`],
      ["server_auth", "client_auth"],
    );
    this.clients = Object.fromEntries(args.clients.map((c) => [c, issue(c, [c], ["client_auth"])]));
    this.registerOutputs({ serverSecret: this.server.secretName });
  }
}
