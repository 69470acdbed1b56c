/**
 * Layer 1 of the security model: the planned NetworkPolicies of the prod stack open exactly the paths the data
 * flow needs. Each allowed path and each denied one is checked against Kubernetes' NetworkPolicy semantics.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { connectionAllowed, type Endpoint } from "../../policies/network-paths";
import { aiorch } from "../cli/helpers";

let resources: { type: string; props: Record<string, unknown> }[] = [];
beforeAll(() => {
  const result = aiorch(["plan", "--stack", "prod", "--json"]);
  const plan = JSON.parse(result.stdout) as {
    resources: { type: string; inputs: Record<string, unknown> }[];
  };
  resources = plan.resources.map((r) => ({ type: r.type, props: r.inputs }));
}, 180_000);

const NS = "ai-orchestrator";
const pod = (component: string, namespace = NS): Endpoint => ({
  namespace,
  labels: { "app.kubernetes.io/part-of": "ai-orchestrator", "app.kubernetes.io/component": component },
});
const gateway = pod("gateway");
const controller = pod("controller");
const redis = pod("redis");
// k3s' bundled Traefik (the prod stack creates its cluster and keeps it)
const ingress: Endpoint = {
  namespace: "kube-system",
  labels: { "app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-kube-system" },
};
const kubeSystemOther: Endpoint = { namespace: "kube-system", labels: { "k8s-app": "metrics-server" } };
// cert-manager's HTTP-01 solver pod, created in the gateway's namespace for a challenge
const acmeSolver: Endpoint = {
  namespace: NS,
  labels: { "acme.cert-manager.io/http01-solver": "true", "acme.cert-manager.io/http-domain": "1" },
};
const prometheus: Endpoint = { namespace: "monitoring", labels: { "app.kubernetes.io/name": "prometheus" } };
const dns: Endpoint = { namespace: "kube-system", labels: { "k8s-app": "kube-dns" } };
const collector: Endpoint = {
  namespace: "monitoring",
  labels: { "app.kubernetes.io/name": "otel-collector" },
};
const stranger = pod("debug-shell"); // any other pod in the namespace
const otherNamespace: Endpoint = { namespace: "team-b", labels: { app: "curious" } };
const internet: Endpoint = { ip: "203.0.113.10" }; // a rented worker or a provider API
const metadataService: Endpoint = { ip: "169.254.169.254" };
const nodeNetwork: Endpoint = { ip: "10.0.1.10" }; // the cluster's nodes, the Kubernetes API

const allowed = (from: Endpoint, to: Endpoint, port: number) => connectionAllowed(resources, from, to, port);

describe("isolation of the prod stack's namespace", () => {
  it.each([
    ["the ingress controller → gateway", ingress, gateway, 8080],
    ["gateway → Redis", gateway, redis, 6379],
    ["controller → Redis", controller, redis, 6379],
    ["gateway → a worker on the internet", gateway, internet, 8000],
    ["controller → a provider API", controller, internet, 443],
    ["Prometheus → gateway metrics (its own port)", prometheus, gateway, 9090],
    ["the ingress controller → cert-manager's HTTP-01 solver", ingress, acmeSolver, 8089],
    ["Prometheus → controller metrics", prometheus, controller, 9090],
    ["gateway → cluster DNS", gateway, dns, 53],
    ["gateway → the OpenTelemetry collector (spans)", gateway, collector, 4318],
  ])("allowed: %s", (_label, from, to, port) => {
    expect(allowed(from, to, port)).toBe(true);
  });

  it.each([
    ["another pod of the namespace → Redis", stranger, redis, 6379],
    ["another namespace → Redis", otherNamespace, redis, 6379],
    ["the ingress controller → Redis", ingress, redis, 6379],
    ["the ingress controller → controller", ingress, controller, 9090],
    ["another namespace → gateway", otherNamespace, gateway, 8080],
    ["the ingress controller → gateway metrics", ingress, gateway, 9090],
    ["another kube-system pod → gateway", kubeSystemOther, gateway, 8080],
    ["Prometheus → the gateway's public port", prometheus, gateway, 8080],
    ["another namespace → the HTTP-01 solver", otherNamespace, acmeSolver, 8089],
    ["another kube-system pod → the HTTP-01 solver", kubeSystemOther, acmeSolver, 8089],
    ["Prometheus → Redis", prometheus, redis, 6379],
    ["gateway → Redis on another port", gateway, redis, 6380],
    ["gateway → the cloud metadata service", gateway, metadataService, 80],
    ["controller → the node network / Kubernetes API", controller, nodeNetwork, 6443],
    ["Redis → the internet", redis, internet, 443],
    ["gateway → controller", gateway, controller, 9090],
    ["controller → the OpenTelemetry collector (it exports no spans)", controller, collector, 4318],
    ["gateway → the collector's namespace on another port", gateway, prometheus, 9090],
    ["another pod of the namespace → the internet", stranger, internet, 443],
  ])("denied: %s", (_label, from, to, port) => {
    expect(allowed(from, to, port)).toBe(false);
  });

  it("the checks can fail: without the policies every path is open", () => {
    const open = (from: Endpoint, to: Endpoint, port: number) => connectionAllowed([], from, to, port);
    expect(open(stranger, redis, 6379)).toBe(true);
    expect(open(gateway, metadataService, 80)).toBe(true);
  });
});

describe("the public route", () => {
  it("the Ingress reaches only the gateway's public port: /metrics (the ops port) is on no route", () => {
    const ingresses = resources.filter((r) => r.type === "kubernetes:networking.k8s.io/v1:Ingress");
    expect(ingresses).toHaveLength(1);
    const service = resources.find(
      (r) =>
        r.type === "kubernetes:core/v1:Service" &&
        (r.props.metadata as { name?: string } | undefined)?.name === "gateway",
    )!;
    const servicePorts = (
      service.props.spec as { ports: { name: string; port: number; targetPort: string }[] }
    ).ports;
    const deployment = resources.find(
      (r) =>
        r.type === "kubernetes:apps/v1:Deployment" &&
        (r.props.metadata as { name?: string } | undefined)?.name === "gateway",
    )!;
    const container = (
      deployment.props.spec as {
        template: { spec: { containers: { ports: { name: string; containerPort: number }[] }[] } };
      }
    ).template.spec.containers[0]!;
    const containerPort = (name: string) => container.ports.find((p) => p.name === name)?.containerPort;
    const routed = ingresses.flatMap((i) =>
      (
        i.props.spec as {
          rules: {
            http: { paths: { backend: { service: { port: { name?: string; number?: number } } } }[] };
          }[];
        }
      ).rules.flatMap((rule) => rule.http.paths.map((p) => p.backend.service.port)),
    );
    const targets = routed.map((port) => {
      const sp = servicePorts.find((p) => p.name === port.name || p.port === port.number)!;
      return containerPort(sp.targetPort);
    });
    expect(targets).toEqual([8080]);
    expect(containerPort("metrics")).toBe(9090);
    // Prometheus' monitors scrape the Service's metrics port, which targets the ops port
    expect(servicePorts.find((p) => p.name === "metrics")?.targetPort).toBe("metrics");
  });
});
