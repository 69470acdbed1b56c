/**
 * A first `pulumi up` comes up only if what the stack relies on is in the cluster before it is used. Read off the
 * planned resources (`aiorch plan --json`, the real program under mocks):
 * - every custom resource depends on the release that installs its CRD (never "no matches for kind");
 * - every Ingress has a controller the plan installs, or the controller is a listed prerequisite;
 * - on an existing cluster nothing is installed and each add-on the stack relies on is a prerequisite.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";

interface Resource {
  type: string;
  name: string;
  urn: string;
  inputs: Record<string, unknown>;
  dependsOn: string[];
}
interface PlanJson {
  resources: Resource[];
  warnings: { key: string; message: string }[];
  platform: {
    installs: { addOn: string; version: string; namespace: string; how: string }[];
    prerequisites: { what: string; why: string; check: string }[];
    k3sCharts: {
      spec: { chart: string; version: string; repo: string; bootstrap?: boolean; valuesContent?: string };
    }[];
  };
}

function plan(args: string[], files?: Record<string, string>): PlanJson {
  const dir = files ? tempProject(files) : undefined;
  try {
    const result = aiorch(["plan", "--json", ...args], dir);
    if (result.code !== 0) throw new Error(`plan failed (${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout) as PlanJson;
  } finally {
    if (dir) removeProject(dir);
  }
}

/** CRD API groups and the chart whose release installs them (cert-manager: `crds.enabled`). */
const CRD_INSTALLERS: Record<string, string> = {
  "monitoring.coreos.com": "prometheus-operator-crds",
  "cert-manager.io": "cert-manager",
};
/** API groups Kubernetes serves itself. */
const BUILT_IN =
  /^kubernetes:(core|apps|batch|policy|networking\.k8s\.io|rbac\.authorization\.k8s\.io|storage\.k8s\.io)\//;

const customResources = (p: PlanJson) =>
  p.resources.filter(
    (r) =>
      r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm.sh/") && !BUILT_IN.test(r.type),
  );
const groupOf = (type: string) => /^kubernetes:([^/]+)\//.exec(type)![1]!;
const releases = (p: PlanJson) => p.resources.filter((r) => r.type === "kubernetes:helm.sh/v3:Release");

/** The resources `urn` waits for, directly or through what it waits for. */
function waitsFor(p: PlanJson, urn: string): Set<string> {
  const byUrn = new Map(p.resources.map((r) => [r.urn, r]));
  const seen = new Set<string>();
  const visit = (u: string) => {
    for (const d of byUrn.get(u)?.dependsOn ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      visit(d);
    }
  };
  visit(urn);
  return seen;
}

let dev: PlanJson;
let existing: PlanJson;
let createdWithoutAddons: PlanJson;
beforeAll(() => {
  dev = plan(["--stack", "dev"]);
  existing = plan(["--stack", "e"], { "Pulumi.e.yaml": stackYaml() });
  createdWithoutAddons = plan(["--stack", "c"], {
    "Pulumi.c.yaml": stackYaml({
      cluster:
        "{ mode: create, k3sVersion: v1.36.4+k3s1, sshAllowedCidrs: [198.18.0.1/32], sshKeyName: team-admin }",
      platform: "{ certManager: { install: false }, monitoringStack: { install: false } }",
    }),
  });
}, 120_000);

describe("a created cluster (the dev stack)", () => {
  it("installs cert-manager, the operator CRDs and kube-prometheus-stack as pinned releases", () => {
    const charts: Record<string, Record<string, unknown>> = Object.fromEntries(
      releases(dev).map((r) => [String(r.inputs.chart), r.inputs]),
    );
    expect(Object.keys(charts).sort()).toEqual([
      "cert-manager",
      "kube-prometheus-stack",
      "prometheus-operator-crds",
    ]);
    for (const inputs of Object.values(charts)) {
      expect(inputs.version, String(inputs.chart)).toMatch(/^v?\d+\.\d+\.\d+$/);
      expect((inputs.repositoryOpts as { repo: string }).repo).toMatch(/^https:\/\//);
    }
    expect((charts["cert-manager"]!.values as { crds: { enabled: boolean } }).crds.enabled).toBe(true);
    // the CRDs come from their own release, so the stack's rules never wait on the whole monitoring stack
    expect((charts["kube-prometheus-stack"]!.values as { crds: { enabled: boolean } }).crds.enabled).toBe(
      false,
    );
    expect(dev.platform.installs.map((i) => i.addOn)).toEqual(
      expect.arrayContaining([
        "hcloud-cloud-controller-manager",
        "hcloud-csi",
        "traefik (IngressClass traefik)",
      ]),
    );
    expect(dev.platform.prerequisites).toEqual([]);
    // the k3s HelmCharts the first server's cloud-init writes (its userData is a secret, so the plan shows them here)
    const ccm = dev.platform.k3sCharts.find((c) => c.spec.chart === "hcloud-cloud-controller-manager")!;
    expect(ccm.spec).toMatchObject({
      bootstrap: true,
      version: "1.35.0",
      repo: "https://charts.hetzner.cloud",
    });
    expect(ccm.spec.valuesContent).toContain("HCLOUD_LOAD_BALANCERS_LOCATION");
    expect(dev.platform.k3sCharts.find((c) => c.spec.chart === "hcloud-csi")!.spec.version).toBe("2.22.1");
  });

  it("every custom resource depends on the release that installs its CRD", () => {
    const crs = customResources(dev);
    expect(crs.map((r) => r.type).sort()).toEqual([
      "kubernetes:cert-manager.io/v1:ClusterIssuer",
      "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
      "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
      "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    ]);
    for (const cr of crs) {
      const chart = CRD_INSTALLERS[groupOf(cr.type)];
      expect(chart, `${cr.type}: which release installs its CRD?`).toBeDefined();
      const installer = releases(dev).find((r) => r.inputs.chart === chart)!;
      expect(waitsFor(dev, cr.urn), `${cr.name} (${cr.type}) must wait for ${chart}`).toContain(
        installer.urn,
      );
    }
  });

  it("the ClusterIssuer is the one the Ingress asks for, solves HTTP-01 through the Ingress' class, and the Ingress waits for it", () => {
    const issuer = dev.resources.find((r) => r.type === "kubernetes:cert-manager.io/v1:ClusterIssuer")!;
    const ingress = dev.resources.find((r) => r.type === "kubernetes:networking.k8s.io/v1:Ingress")!;
    const metadata = ingress.inputs.metadata as { annotations: Record<string, string> };
    const issuerName = (issuer.inputs.metadata as { name: string }).name;
    expect(metadata.annotations["cert-manager.io/cluster-issuer"]).toBe(issuerName);
    const acme = (issuer.inputs.spec as { acme: Record<string, unknown> }).acme;
    expect(acme.server).toBe("https://acme-staging-v02.api.letsencrypt.org/directory"); // dev: acme staging
    expect(acme.solvers).toEqual([
      {
        http01: {
          ingress: {
            ingressClassName: (ingress.inputs.spec as { ingressClassName: string }).ingressClassName,
            serviceType: "ClusterIP",
          },
        },
      },
    ]);
    expect(waitsFor(dev, ingress.urn)).toContain(issuer.urn);
    // no annotations of a retired controller; the API is routed on Traefik's HTTPS entry point only
    expect(Object.keys(metadata.annotations).filter((k) => k.includes("nginx"))).toEqual([]);
    expect(metadata.annotations["traefik.ingress.kubernetes.io/router.entrypoints"]).toBe("websecure");
  });

  it("every Ingress has its controller in the plan: k3s' Traefik", () => {
    for (const ingress of dev.resources.filter((r) => r.type === "kubernetes:networking.k8s.io/v1:Ingress")) {
      const cls = (ingress.inputs.spec as { ingressClassName: string }).ingressClassName;
      expect(dev.platform.installs.map((i) => i.addOn)).toContain(`traefik (IngressClass ${cls})`);
    }
  });

  it("a NetworkPolicy admits cert-manager's HTTP-01 solver pod from the ingress controller on 8089", () => {
    const policy = dev.resources.find(
      (r) => (r.inputs.metadata as { name?: string } | undefined)?.name === "acme-http01-solver",
    )!;
    expect(policy.inputs.spec).toEqual({
      podSelector: { matchLabels: { "acme.cert-manager.io/http01-solver": "true" } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
              podSelector: { matchLabels: { "app.kubernetes.io/name": "traefik" } },
            },
          ],
          ports: [{ protocol: "TCP", port: 8089 }],
        },
      ],
    });
  });

  it("add-ons wait for the Secret the Hetzner CCM needs before any node can schedule them", () => {
    const secret = dev.resources.find((r) => r.name === "cluster-hcloud-secret")!;
    for (const release of releases(dev))
      expect(waitsFor(dev, release.urn), release.name).toContain(secret.urn);
  });

  it("every container image is pinned by digest (the tag stays for people)", () => {
    const images = dev.resources.flatMap((r) => {
      const spec = (r.inputs.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template
        ?.spec;
      if (!spec) return [];
      return ["initContainers", "containers"].flatMap((field) =>
        ((spec[field] as { image: string }[] | undefined) ?? []).map((c) => c.image),
      );
    });
    expect(images.length).toBeGreaterThanOrEqual(5); // gateway, controller (each with its unpack step), Redis
    for (const image of images) expect(image).toMatch(/^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/);
  });

  it("Grafana's admin password is generated and kept in a Secret, never the chart's default", () => {
    const stack = releases(dev).find((r) => r.inputs.chart === "kube-prometheus-stack")!;
    const admin = (stack.inputs.values as { grafana: { admin: Record<string, string> } }).grafana.admin;
    expect(admin).toEqual({
      existingSecret: "grafana-admin",
      userKey: "admin-user",
      passwordKey: "admin-password",
    });
    const secret = dev.resources.find(
      (r) =>
        r.type === "kubernetes:core/v1:Secret" &&
        (r.inputs.metadata as { name?: string }).name === "grafana-admin",
    )!;
    expect((secret.inputs.stringData as Record<string, string>)["admin-password"]).toBe("[secret]");
  });
});

describe("switches and existing clusters", () => {
  it("an existing cluster gets nothing installed; each add-on the stack relies on is a prerequisite with its check", () => {
    expect(releases(existing)).toEqual([]);
    expect(existing.platform.installs).toEqual([]);
    const checks = existing.platform.prerequisites.map((p) => p.check);
    expect(checks).toEqual([
      "kubectl get ingressclass traefik",
      "kubectl get clusterissuer letsencrypt-prod",
      "kubectl get crd prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com",
    ]);
    // its custom resources have no installer in the plan: they rely on the listed CRDs
    for (const cr of customResources(existing)) expect(groupOf(cr.type)).toBe("monitoring.coreos.com");
  });

  it("a created cluster with cert-manager and monitoring switched off lists them as prerequisites", () => {
    expect(releases(createdWithoutAddons)).toEqual([]);
    expect(createdWithoutAddons.platform.prerequisites.map((p) => p.check)).toEqual([
      "kubectl get clusterissuer letsencrypt-prod",
      "kubectl get crd prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com",
    ]);
    expect(createdWithoutAddons.platform.installs.map((i) => i.addOn)).toContain(
      "traefik (IngressClass traefik)",
    );
  });

  it("an admin key already in the Hetzner project is attached by name, never uploaded again (fingerprints are unique)", () => {
    const keys = createdWithoutAddons.resources.filter((r) => r.type === "hcloud:index/sshKey:SshKey");
    expect(keys.map((k) => k.name)).toEqual(["cluster-deploy"]); // Pulumi's own, generated per stack
    for (const server of createdWithoutAddons.resources.filter(
      (r) => r.type === "hcloud:index/server:Server",
    ))
      expect(server.inputs.sshKeys).toEqual([expect.any(String), "4242"]); // the mock's id for team-admin
  });

  it("k3s-traefik on an existing cluster is refused, naming the key and the fix", () => {
    const dir = tempProject({ "Pulumi.x.yaml": stackYaml({ platform: "{ ingress: k3s-traefik }" }) });
    try {
      const result = aiorch(["plan", "--stack", "x"], dir);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("ai-orchestrator:platform.ingress");
      expect(result.stderr).toContain("gateway.ingressClassName");
    } finally {
      removeProject(dir);
    }
  });
});
