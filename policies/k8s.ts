/** Reading Kubernetes objects as the policy engine hands them over (plain JSON of the resource inputs). */

export const K8S = {
  configMap: "kubernetes:core/v1:ConfigMap",
  secret: "kubernetes:core/v1:Secret",
  service: "kubernetes:core/v1:Service",
  pod: "kubernetes:core/v1:Pod",
  deployment: "kubernetes:apps/v1:Deployment",
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  daemonSet: "kubernetes:apps/v1:DaemonSet",
  job: "kubernetes:batch/v1:Job",
  cronJob: "kubernetes:batch/v1:CronJob",
  ingress: "kubernetes:networking.k8s.io/v1:Ingress",
  networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
} as const;

export type Json = Record<string, unknown>;

export interface Container {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: Json }[];
  securityContext?: {
    runAsNonRoot?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[] };
  };
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
}

export interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean };
}

export interface Workload {
  readonly kind: string;
  readonly namespace?: string;
  readonly podLabels: Record<string, string>;
  readonly spec: PodSpec;
}

const WORKLOAD_TYPES: readonly string[] = [
  K8S.pod,
  K8S.deployment,
  K8S.statefulSet,
  K8S.daemonSet,
  K8S.job,
  K8S.cronJob,
];

export const isWorkloadType = (type: string): boolean => WORKLOAD_TYPES.includes(type);

/** The pod template of any workload type (a bare Pod is its own template). */
export function workloadOf(type: string, props: Json): Workload | undefined {
  if (!isWorkloadType(type)) return undefined;
  const metadata = (props.metadata ?? {}) as { namespace?: string; labels?: Record<string, string> };
  const spec = (props.spec ?? {}) as Json;
  let template: { metadata?: { labels?: Record<string, string> }; spec?: PodSpec } | undefined;
  if (type === K8S.pod) template = { metadata, spec: spec as PodSpec };
  else if (type === K8S.cronJob)
    template = ((spec.jobTemplate as Json | undefined)?.spec as Json | undefined)?.template as never;
  else template = spec.template as never;
  return {
    kind: type.split(":").pop()!,
    namespace: metadata.namespace,
    podLabels: template?.metadata?.labels ?? {},
    spec: template?.spec ?? {},
  };
}

export const allContainers = (spec: PodSpec): Container[] => [
  ...(spec.initContainers ?? []),
  ...(spec.containers ?? []),
];

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Kubernetes label-selector semantics; an empty selector selects everything. */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const inValues = value !== undefined && (e.values ?? []).includes(value);
    if (e.operator === "In" && !inValues) return false;
    if (e.operator === "NotIn" && inValues) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

export const namespaceOf = (props: Json): string | undefined =>
  (props.metadata as { namespace?: string } | undefined)?.namespace;
