/** Labels every Kubernetes object of the stack carries, so `kubectl -l` and NetworkPolicies can select them. */
export const PART_OF = "ai-orchestrator";

export function labelsFor(component: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    "app.kubernetes.io/part-of": PART_OF,
    "app.kubernetes.io/managed-by": "pulumi",
    "app.kubernetes.io/component": component,
    ...extra,
  };
}

/** The narrower label set a selector uses (selectors must not change when extra labels do). */
export function selectorFor(component: string): Record<string, string> {
  return { "app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component };
}
