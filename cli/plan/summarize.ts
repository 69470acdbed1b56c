/** Picks the few inputs of a planned resource worth a glance in the resource tree. */
import { SECRET_MARK } from "./mock-engine";

const MAX_VALUE = 48;

function at(value: unknown, path: string): unknown {
  let cursor = value;
  for (const part of path.split(".")) {
    if (cursor === null || typeof cursor !== "object") return undefined;
    cursor = /^\d+$/.test(part)
      ? (cursor as unknown[])[Number(part)]
      : (cursor as Record<string, unknown>)[part];
  }
  return cursor;
}

function short(value: unknown): string {
  let text: string;
  if (value === SECRET_MARK) return SECRET_MARK;
  if (Array.isArray(value))
    text = value.every((v) => typeof v !== "object") ? value.join(",") : `${value.length} items`;
  else if (value !== null && typeof value === "object") text = `{${Object.keys(value).join(",")}}`;
  else text = String(value);
  text = text.replace(/\s+/g, " ");
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

const bytes = (n: number) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

/** Per-type paths to show; others fall back to a resource's top-level scalar inputs. */
const PATHS: Readonly<Record<string, readonly string[]>> = {
  "hcloud:index/server:Server": ["serverType", "location", "image", "networks.0.ip", "userData"],
  "hcloud:index/network:Network": ["ipRange"],
  "hcloud:index/networkSubnet:NetworkSubnet": ["ipRange", "networkZone"],
  "hcloud:index/placementGroup:PlacementGroup": ["type"],
  "hcloud:index/sshKey:SshKey": ["publicKey"],
  "random:index/randomPassword:RandomPassword": ["length", "special"],
  "tls:index/privateKey:PrivateKey": ["algorithm"],
  "command:remote:Command": ["connection.user", "logging"],
  "pulumi:providers:kubernetes": ["kubeconfig"],
  "kubernetes:helm.sh/v3:Release": ["chart", "version", "namespace"],
  "pulumi-nodejs:dynamic/runpod:Endpoint": [
    "name",
    // QUEUE (worker-vllm behind RunPod's queue) or LOAD_BALANCER (the engine's own server: image models)
    "endpointType",
    "gpuPoolIds",
    "workersMin",
    "workersMax",
    "dataCenterIds",
    "dataClass",
  ],
};

export function keyInputs(type: string, inputs: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const add = (label: string, value: unknown) => {
    if (value !== undefined && value !== null && value !== "") out.push([label, short(value)]);
  };
  if (type.startsWith("kubernetes:") && !type.startsWith("kubernetes:helm")) {
    const ns = at(inputs, "metadata.namespace");
    add("name", at(inputs, "metadata.name") ?? "(auto)");
    if (ns) add("namespace", ns);
    add("replicas", at(inputs, "spec.replicas"));
    add("image", at(inputs, "spec.template.spec.containers.0.image"));
    for (const field of ["data", "binaryData", "stringData"]) {
      const data = inputs[field];
      if (data && typeof data === "object") {
        add(
          field,
          Object.entries(data)
            .map(([k, v]) => (v === SECRET_MARK ? `${k}=${SECRET_MARK}` : `${k}(${bytes(String(v).length)})`))
            .join(","),
        );
      }
    }
    add("policyTypes", at(inputs, "spec.policyTypes"));
    return out;
  }
  if (type === "hcloud:index/firewall:Firewall") {
    const rules = (inputs.rules as { protocol?: string; port?: string }[] | undefined) ?? [];
    add("rules", rules.map((r) => `${r.port ?? ""}${r.port ? "/" : ""}${r.protocol}`).join(","));
    return out;
  }
  const paths = PATHS[type];
  if (paths) {
    for (const p of paths) add(p, at(inputs, p));
    return out;
  }
  for (const [k, v] of Object.entries(inputs)) {
    if (k.startsWith("__") || (v !== null && typeof v === "object")) continue;
    add(k, v);
    if (out.length >= 4) break;
  }
  return out;
}
