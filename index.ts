/**
 * The Pulumi program: composes the platform from the validated stack config.
 * `pulumi up --policy-pack policies` deploys it; `npm run plan` evaluates it offline under mocks.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { BackupCronJob } from "./components/backup-cronjob";
import { Controller } from "./components/controller";
import { Gateway } from "./components/gateway";
import { HetznerCluster } from "./components/hetzner-cluster";
import { selectorFor } from "./components/labels";
import { Monitoring } from "./components/monitoring";
import { StackNamespace } from "./components/namespace";
import { PlatformAddons } from "./components/platform-addons";
import { QueueEncryption } from "./components/queue-encryption";
import { Redis } from "./components/redis";
import { RunPodServerlessEndpoint, runpodExecutionTimeoutMs } from "./components/runpod-endpoint";
import { RunPodNetworkVolume } from "./components/runpod-network-volume";
import { runpodWorkerSettings } from "./components/runpod-worker-settings";
import type { RedisClientConnection } from "./components/runtime-pod";
import { RuntimeSettings } from "./components/runtime-settings";
import { readStackSettings } from "./components/stack-config";
import { StackPki } from "./components/stack-pki";
import { PROVIDERS, type ProviderId } from "./core/catalog";
import {
  ALERT_RECEIVER_SECRETS,
  alertReceiverUrlProblem,
  CREDENTIAL_ENV,
  runpodEndpointName,
  weightCacheDataCenters,
} from "./core/config";
import { platformPlan } from "./core/platform";
import { servingUnits } from "./core/variants";

const { loaded, runtimeConfig } = readStackSettings();

/** Where spans go in the cluster: the collector's namespace and the port of its OTLP URL. */
function traceCollectorOf(tracing: { otlpEndpoint: string; collectorNamespace: string }) {
  const url = new URL(tracing.otlpEndpoint);
  return {
    namespace: tracing.collectorNamespace,
    port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
  };
}
const { config, project } = loaded;
const stackConfig = new pulumi.Config(project);

// What the stack installs into the cluster and what it expects there (plan lists the latter as prerequisites).
const platform = platformPlan(config);

function clusterProvider(): {
  provider: k8s.Provider;
  kubeconfig: pulumi.Output<string>;
  apiEndpoint?: pulumi.Output<string>;
  /** What add-ons wait for before they can schedule. */
  addonsAfter: pulumi.Resource[];
} {
  if (config.cluster.mode === "existing") {
    const kubeconfig = stackConfig.requireSecret("kubeconfig");
    return { provider: new k8s.Provider("cluster", { kubeconfig }), kubeconfig, addonsAfter: [] };
  }
  const cluster = new HetznerCluster("cluster", {
    location: config.cluster.location,
    controlPlane: config.cluster.controlPlane,
    workers: config.cluster.workers,
    k3sVersion: config.cluster.k3sVersion,
    image: config.cluster.image,
    sshAllowedCidrs: config.cluster.sshAllowedCidrs,
    apiAllowedCidrs: config.cluster.apiAllowedCidrs,
    privateNetworkCidr: config.cluster.privateNetworkCidr,
    sshPublicKey: config.cluster.sshPublicKey,
    sshKeyName: config.cluster.sshKeyName,
    bundledTraefik: platform.ingress.installed === "k3s-traefik",
    hcloudToken: new pulumi.Config("hcloud").requireSecret("token"),
  });
  return {
    provider: cluster.provider,
    kubeconfig: cluster.kubeconfig,
    apiEndpoint: cluster.apiEndpoint,
    addonsAfter: [cluster.hcloudSecret],
  };
}

const cluster = clusterProvider();
const addons = new PlatformAddons("platform", {
  provider: cluster.provider,
  dependsOn: cluster.addonsAfter,
  ...(platform.certManager?.install
    ? {
        certManager: {
          issuerName: platform.certManager.issuerName,
          acmeServer: platform.certManager.acmeServer,
          ...(platform.certManager.email ? { email: platform.certManager.email } : {}),
          ingressClassName: platform.ingress.className,
        },
      }
    : {}),
  ...(platform.monitoring?.install
    ? {
        monitoring: {
          namespace: platform.monitoring.namespace,
          release: platform.monitoring.release,
          storageGi: platform.monitoring.storageGi,
          retention: platform.monitoring.retention,
          dashboardLabel: config.monitoring.dashboardLabel,
        },
      }
    : {}),
});
// Prometheus, the only client of the processes' ops ports.
const prometheusPeer = platform.monitoring?.prometheus ?? {
  namespace: config.monitoring.prometheusNamespace,
};
const namespace = new StackNamespace("namespace", { name: config.namespace, provider: cluster.provider });

// Only the credentials of configured providers (and the model hub token) reach the cluster.
const neededCredentials = new Set<string>(["hfToken"]);
for (const [id, settings] of Object.entries(config.providers)) {
  if (settings !== undefined)
    for (const key of PROVIDERS[id as ProviderId].credentialKeys) neededCredentials.add(key);
}
const credentials: Record<string, pulumi.Output<string>> = {};
for (const [key, envName] of Object.entries(CREDENTIAL_ENV)) {
  const value = neededCredentials.has(key) ? stackConfig.getSecret(key) : undefined;
  if (value !== undefined) credentials[envName] = value;
}
const settings = new RuntimeSettings("runtime", {
  namespace: namespace.name,
  provider: cluster.provider,
  runtimeConfig,
  credentials,
});

// mTLS inside the cluster: the stack's own CA, a server certificate for Redis, a client one per process.
const pki = config.security.redisTls
  ? new StackPki("pki", {
      namespace: namespace.name,
      namespaceName: config.namespace,
      provider: cluster.provider,
      clients: ["gateway", "controller", ...(config.backup ? ["backup"] : [])],
    })
  : undefined;
const redis = new Redis("redis", {
  namespace: namespace.name,
  provider: cluster.provider,
  clients: [
    selectorFor("gateway"),
    selectorFor("controller"),
    ...(config.backup ? [selectorFor("backup")] : []),
  ],
  storageGi: config.redis.storageGi,
  passwordVersion: config.redis.passwordVersion,
  tlsSecret: pki?.server.secretName,
});
const queueEncryption = config.security.encryptQueued
  ? new QueueEncryption("queue-encryption", {
      namespace: namespace.name,
      provider: cluster.provider,
      version: config.security.encryptionKeyVersion,
    })
  : undefined;

const redisFor = (client: "gateway" | "controller" | "backup"): RedisClientConnection => ({
  host: redis.host,
  port: redis.port,
  passwordSecret: redis.passwordSecretName,
  passwordKey: redis.passwordSecretKey,
  tls: pki
    ? { secretName: pki.clients[client]!.secretName, certPem: pki.clients[client]!.certPem }
    : undefined,
});
const gateway = new Gateway("gateway", {
  namespace: namespace.name,
  provider: cluster.provider,
  host: config.gateway.host,
  replicas: config.gateway.replicas,
  tls: config.gateway.tls.enabled,
  clusterIssuer: config.gateway.tls.clusterIssuer,
  ingressClassName: platform.ingress.className,
  ingressPeer: platform.ingress.peer,
  prometheus: prometheusPeer,
  ...(addons.issuer ? { ingressDependsOn: [addons.issuer] } : {}),
  runtimeConfigMap: settings.configMapName,
  credentialsSecret: settings.credentialsSecretName,
  redis: redisFor("gateway"),
  encryptionSecret: queueEncryption?.secretName,
  ...(config.gateway.tracing ? { traceCollector: traceCollectorOf(config.gateway.tracing) } : {}),
});
new Controller("controller", {
  namespace: namespace.name,
  provider: cluster.provider,
  runtimeConfigMap: settings.configMapName,
  credentialsSecret: settings.credentialsSecretName,
  redis: redisFor("controller"),
  prometheus: prometheusPeer,
  // MCP for an assistant inside the cluster (README "Operating with an AI assistant"): off by default, no Ingress
  ...(config.mcp?.enabled
    ? {
        mcp: {
          port: config.mcp.port,
          allowFrom: [config.namespace, ...config.mcp.allowFromNamespaces].map((ns) => ({ namespace: ns })),
        },
      }
    : {}),
});

// Scheduled, sealed Redis backups to object storage (README "Disaster recovery").
if (config.backup) {
  new BackupCronJob("backup", {
    namespace: namespace.name,
    provider: cluster.provider,
    runtimeConfigMap: settings.configMapName,
    schedule: config.backup.schedule,
    credentials: {
      accessKeyId: stackConfig.requireSecret("backupAccessKeyId"),
      secretAccessKey: stackConfig.requireSecret("backupSecretAccessKey"),
    },
    encryptionSecret: queueEncryption?.secretName,
    redis: redisFor("backup"),
  });
}

/**
 * A receiver's URL, a Pulumi secret; at deploy time one the operator would reject (and with it every route of the
 * stack) stops `pulumi up`, named by key only.
 */
function alertReceiverUrl(key: string): pulumi.Output<string> {
  const url = stackConfig.requireSecret(key);
  if (!pulumi.runtime.hasEngine()) return url; // an offline plan holds placeholders, not URLs
  return url.apply((value) => {
    const problem = alertReceiverUrlProblem(value);
    if (problem)
      throw new Error(`${project}:${key} ${problem}; run \`pulumi config set --secret ${key} <https URL>\``);
    return value;
  });
}
const notify = config.monitoring.notify;

if (config.monitoring.enabled) {
  new Monitoring("monitoring", {
    namespace: namespace.name,
    namespaceName: config.namespace,
    stack: pulumi.getStack(),
    provider: cluster.provider,
    prometheusRelease: config.monitoring.prometheusRelease,
    dashboardLabel: config.monitoring.dashboardLabel,
    ...(addons.monitoringCrds ? { crdsInstalledBy: addons.monitoringCrds } : {}),
    alerts: {
      budgetAlertAtPercent: config.budget?.alertAtPercent ?? [],
      modelBudgets: config.models.some((m) => m.monthlyBudgetUsd !== undefined),
      gpuIdleAlertSeconds: config.monitoring.gpuIdleAlertMinutes * 60,
      coldStartAlertSeconds: config.monitoring.coldStartAlertSeconds,
      slos: config.models.flatMap((m) => (m.slo ? [{ model: m.name, ...m.slo }] : [])),
      ...(config.backup ? { backupAlertAfterHours: config.backup.alertAfterHours } : {}),
    },
    ...(notify
      ? {
          notify: {
            ...(notify.slack
              ? { slack: { ...notify.slack, url: alertReceiverUrl(ALERT_RECEIVER_SECRETS.slack) } }
              : {}),
            ...(notify.webhook ? { webhook: { url: alertReceiverUrl(ALERT_RECEIVER_SECRETS.webhook) } } : {}),
            groupBy: notify.groupBy,
            repeatIntervalMinutes: notify.repeatIntervalMinutes,
          },
        }
      : {}),
  });
}

// One managed RunPod endpoint per serving unit (a model, or each variant of a model in a rollout); the controller
// steers workersMin/workersMax at run time.
const runpod = config.providers["runpod-serverless"];
const runpodEndpoints: Record<string, pulumi.Output<string>> = {};
if (runpod) {
  const runpodKey = stackConfig.requireSecret("runpodApiKey");
  const hfToken = stackConfig.getSecret("hfToken");
  // The weight cache: a network volume in each of its data centres, which the endpoints mount, so weights cross the
  // internet once per data centre. One RunPod name for all of them (names are looked up per data centre); the
  // first keeps the Pulumi name the single volume had before weight caches could span data centres.
  const weightCaches = weightCacheDataCenters(runpod).map((dc, i) => ({
    dataCenter: dc,
    volume: new RunPodNetworkVolume(
      `runpod-weight-cache-${dc.toLowerCase()}`,
      {
        name: `${project}-${pulumi.getStack()}-weights`,
        sizeGb: runpod.weightCache!.sizeGb,
        dataCenterId: dc,
        apiKey: runpodKey,
        ...(runpod.apiBase ? { apiBase: runpod.apiBase } : {}),
      },
      i === 0 ? { aliases: [{ name: "runpod-weight-cache" }] } : {},
    ),
  }));
  for (const model of servingUnits(config.models).filter((m) => m.providers.includes("runpod-serverless"))) {
    const pools = [...new Set(model.gpu.flatMap((g) => PROVIDERS["runpod-serverless"].gpus[g]?.pool ?? []))];
    const coldStart = PROVIDERS["runpod-serverless"].coldStart.p95Seconds;
    // worker-vllm behind the job queue, or vLLM-Omni behind a load-balancing endpoint (runpod-worker-settings.ts)
    const worker = runpodWorkerSettings(model, hfToken);
    const endpoint = new RunPodServerlessEndpoint(`runpod-${model.name.replace(/[^a-zA-Z0-9-]/g, "-")}`, {
      // The controller finds the endpoint by this name.
      name: runpodEndpointName(project, pulumi.getStack(), model.name),
      apiKey: runpodKey,
      endpointType: worker.endpointType,
      image: worker.image ?? runpod.image,
      ...(worker.args ? { args: worker.args } : {}),
      ...(worker.ports ? { ports: worker.ports } : {}),
      // "13.0" for the default image (worker-vllm v2.25.2 needs CUDA 13), none for another unless set
      ...(runpod.minCudaVersion ? { minCudaVersion: runpod.minCudaVersion } : {}),
      env: worker.env,
      gpuPoolIds: pools,
      gpuCount: model.gpuCount,
      // A job may wait for a cold start and then take as long as the gateway waits upstream.
      executionTimeoutMs: runpodExecutionTimeoutMs(
        model.queueTimeoutSeconds,
        config.gateway.upstreamTimeoutSeconds,
      ),
      workersMin: model.minWorkers,
      workersMax: model.maxWorkers,
      // Break-even keep-alive: per-second billing makes an idle second cost what a cold-start second does.
      idleTimeout:
        typeof model.idleTimeoutSeconds === "number"
          ? Math.max(1, model.idleTimeoutSeconds)
          : Math.max(5, Math.ceil(coldStart)),
      scalerType: worker.scalerType ?? runpod.scalerType,
      scalerValue: worker.scalerValue ?? runpod.scalerValue,
      flashboot: runpod.flashboot,
      dataCenterIds: runpod.dataCenters,
      ...(weightCaches.length > 0
        ? {
            networkVolumeIds: weightCaches.map((c) => c.volume.volumeId),
            networkVolumeDataCenterIds: weightCaches.map((c) => c.dataCenter),
          }
        : {}),
      apiBase: runpod.apiBase,
      model: model.name,
      dataClass: model.dataClass ?? config.dataClass,
      workersSteeredAtRuntime: true,
    });
    runpodEndpoints[model.name] = endpoint.endpointId;
  }
}

export const namespaceName = namespace.name;
export const runtimeConfigMap = settings.configMapName;
export const redisHost = redis.host;
export const gatewayUrl = gateway.url;
export const runpodEndpointIds = runpodEndpoints;
export const kubeconfig = cluster.kubeconfig;
/** Public address of the Kubernetes API; an existing cluster's is in its kubeconfig. */
export const apiEndpoint = cluster.apiEndpoint ?? "see the kubeconfig of the existing cluster";
/** Secret (in the monitoring namespace) with Grafana's admin user and password, when the stack installs Grafana. */
export const grafanaAdminSecret = addons.grafanaAdminSecret;
