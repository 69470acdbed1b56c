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
}, 60_000);

const NS = "ai-orchestrator";
const pod = (component: string, namespace = NS): Endpoint => ({
  namespace,
  labels: { "app.kubernetes.io/part-of": "ai-orchestrator", "app.kubernetes.io/component": component },
});
const gateway = pod("gateway");
const controller = pod("controller");
const redis = pod("redis");
const ingress: Endpoint = {
  namespace: "ingress-nginx",
  labels: { "app.kubernetes.io/name": "ingress-nginx" },
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
    ["Prometheus → gateway metrics", prometheus, gateway, 8080],
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
