/**
 * Kubernetes NetworkPolicy semantics, evaluated over planned resources: may traffic go from one endpoint to
 * another on a port? A pod's ingress is open unless some policy selects it for Ingress, then only what one of
 * them allows; the same for egress. A connection needs both ends to allow it.
 */
import { type Json, K8S, selectorMatches } from "./k8s";

export interface Endpoint {
  /** A pod: its namespace and labels. An address outside the cluster: its IP. */
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
  readonly ip?: string;
}

interface PolicyView {
  readonly namespace?: string;
  readonly podSelector?: Json;
  readonly types: string[];
  readonly ingress: Json[];
  readonly egress: Json[];
}

interface Peer {
  podSelector?: Json;
  namespaceSelector?: Json;
  ipBlock?: { cidr: string; except?: string[] };
}

const toInt = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  if (!base?.includes(".") || !ip.includes(".")) return false;
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return (toInt(ip) & mask) === (toInt(base) & mask);
}

/** The namespaces' labels as Kubernetes sets them (name label only). */
const namespaceLabels = (ns: string | undefined) => ({ "kubernetes.io/metadata.name": ns ?? "default" });

function peerMatches(peer: Peer, policyNamespace: string | undefined, other: Endpoint): boolean {
  if (peer.ipBlock) {
    if (!other.ip || !inCidr(other.ip, peer.ipBlock.cidr)) return false;
    return !(peer.ipBlock.except ?? []).some((c) => inCidr(other.ip!, c));
  }
  if (other.ip) return false; // pod selectors never match addresses outside the cluster
  const namespaceOk = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector as never, namespaceLabels(other.namespace))
    : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? selectorMatches(peer.podSelector as never, other.labels ?? {}) : true;
  return namespaceOk && podOk;
}

function portMatches(rule: Json, port: number): boolean {
  const ports = rule.ports as { port?: number | string }[] | undefined;
  return !ports || ports.length === 0 || ports.some((p) => p.port === undefined || p.port === port);
}

function views(resources: readonly { type: string; props: Json }[]): PolicyView[] {
  return resources
    .filter((r) => r.type === K8S.networkPolicy)
    .map((r) => {
      const spec = (r.props.spec ?? {}) as Json;
      const ingress = (spec.ingress as Json[] | undefined) ?? [];
      const egress = (spec.egress as Json[] | undefined) ?? [];
      const types =
        (spec.policyTypes as string[] | undefined) ??
        (egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"]);
      return {
        namespace: (r.props.metadata as { namespace?: string } | undefined)?.namespace,
        podSelector: spec.podSelector as Json | undefined,
        types,
        ingress,
        egress,
      };
    });
}

/** Whether one side's policies let the connection through (`direction` is the side's point of view). */
function sideAllows(
  policies: PolicyView[],
  self: Endpoint,
  other: Endpoint,
  port: number,
  direction: "Ingress" | "Egress",
): boolean {
  if (self.ip) return true; // outside the cluster: not governed by NetworkPolicies
  const selecting = policies.filter(
    (p) =>
      p.namespace === self.namespace &&
      p.types.includes(direction) &&
      selectorMatches(p.podSelector as never, self.labels ?? {}),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (direction === "Ingress" ? p.ingress : p.egress).some((rule) => {
      const peers = ((direction === "Ingress" ? rule.from : rule.to) as Peer[] | undefined) ?? [];
      const peerOk = peers.length === 0 || peers.some((peer) => peerMatches(peer, p.namespace, other));
      return peerOk && portMatches(rule, port);
    }),
  );
}

/** May `from` open a connection to `to` on `port` under the planned NetworkPolicies? */
export function connectionAllowed(
  resources: readonly { type: string; props: Json }[],
  from: Endpoint,
  to: Endpoint,
  port: number,
): boolean {
  const policies = views(resources);
  return sideAllows(policies, from, to, port, "Egress") && sideAllows(policies, to, from, port, "Ingress");
}
