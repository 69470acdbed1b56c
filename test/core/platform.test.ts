/** `platformPlan`: what a stack installs into its cluster and what it expects there, as a plain function. */
import { describe, expect, it } from "vitest";
import { loadStackConfig, parseStackFile, StackConfigError } from "../../core/config";
import { ACME_DIRECTORIES, platformPlan } from "../../core/platform";
import { stackYaml } from "../../devkit/stack-yaml";

const CREATE = "{ mode: create, k3sVersion: v1.36.4+k3s1 }";
const config = (overrides: Record<string, string> = {}) =>
  loadStackConfig(parseStackFile(stackYaml(overrides), "Pulumi.t.yaml")).config;

describe("platformPlan", () => {
  it("a created cluster installs everything; clients come only from k3s' Traefik pods", () => {
    const plan = platformPlan(config({ cluster: CREATE }));
    expect(plan.ingress).toEqual({
      installed: "k3s-traefik",
      className: "traefik",
      peer: { namespace: "kube-system", podLabels: { "app.kubernetes.io/name": "traefik" } },
    });
    expect(plan.certManager).toMatchObject({
      install: true,
      issuerName: "letsencrypt-prod",
      acmeServer: ACME_DIRECTORIES.production,
    });
    expect(plan.monitoring).toMatchObject({
      install: true,
      namespace: "monitoring",
      release: "kube-prometheus-stack",
    });
    expect(plan.monitoring?.prometheus.podLabels).toEqual({ "app.kubernetes.io/name": "prometheus" });
    expect(plan.prerequisites).toEqual([]);
  });

  it("another ingress class on a created cluster: admitted by namespace only (its pods' labels are not known)", () => {
    const plan = platformPlan(
      config({
        cluster: CREATE,
        platform: "{ ingress: existing }",
        gateway: "{ host: ai.example.com, ingressClassName: nginx, ingressNamespace: ingress-nginx }",
      }),
    );
    expect(plan.ingress.peer).toEqual({ namespace: "ingress-nginx" });
    expect(plan.prerequisites.map((p) => p.check)).toEqual(["kubectl get ingressclass nginx"]);
  });

  it("without TLS there is no issuer to install or expect; without monitoring no CRDs", () => {
    const plan = platformPlan(
      config({
        gateway: "{ host: ai.example.com, tls: { enabled: false } }",
        monitoring: "{ enabled: false }",
      }),
    );
    expect(plan.certManager).toBeUndefined();
    expect(plan.monitoring).toBeUndefined();
    expect(plan.prerequisites.map((p) => p.check)).toEqual(["kubectl get ingressclass traefik"]);
  });

  it("an existing cluster's Prometheus is admitted by its namespace; staging ACME on request", () => {
    const plan = platformPlan(
      config({ platform: "{ certManager: { install: true, acme: staging, email: ops@example.com } }" }),
    );
    expect(plan.monitoring?.prometheus).toEqual({ namespace: "monitoring" });
    expect(plan.certManager).toMatchObject({
      install: true,
      acmeServer: ACME_DIRECTORIES.staging,
      email: "ops@example.com",
    });
  });

  it("a bad switch names the key and the fix", () => {
    expect(() => config({ platform: "{ certManager: { acme: prod } }" })).toThrow(StackConfigError);
    expect(() => config({ platform: "{ certManager: { acme: prod } }" })).toThrow(
      /platform\.certManager\.acme/,
    );
    expect(() =>
      config({
        cluster: `{ mode: create, k3sVersion: v1.36.4+k3s1, sshPublicKey: "ssh-ed25519 AAAA a", sshKeyName: admin }`,
      }),
    ).toThrow(/cluster\.sshKeyName: set either sshPublicKey/);
  });
});
