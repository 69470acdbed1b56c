/** Text rendering of a plan: the resource tree, warnings, policy verdict and forecast tables. */
import { renderTable } from "../../core/table";
import type { PlannedResource } from "./mock-engine";
import type { PlanReport } from "./run";
import { keyInputs } from "./summarize";

function resourceTree(resources: readonly PlannedResource[]): string[] {
  const children = new Map<string | undefined, PlannedResource[]>();
  const known = new Set(resources.map((r) => r.urn));
  for (const r of resources) {
    const parent = r.parent && known.has(r.parent) ? r.parent : undefined;
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const rows: [string, string, string][] = [];
  const walk = (parent: string | undefined, prefix: string) => {
    const list = children.get(parent) ?? [];
    list.forEach((r, i) => {
      const last = i === list.length - 1;
      const branch = parent === undefined ? "" : last ? "└─ " : "├─ ";
      const inputs = keyInputs(r.type, r.inputs)
        .map(([k, v]) => `${k}=${v}`)
        .join("  ");
      rows.push([`${prefix}${branch}${r.type}`, r.name, inputs]);
      walk(r.urn, parent === undefined ? "" : `${prefix}${last ? "   " : "│  "}`);
    });
  };
  walk(undefined, "");
  const typeWidth = Math.max(...rows.map((r) => r[0].length));
  const nameWidth = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([t, n, i]) => `  ${t.padEnd(typeWidth)}  ${n.padEnd(nameWidth)}  ${i}`.trimEnd());
}

const usd = (n: number) => `$${n.toFixed(2)}`;

export function renderPlan(report: PlanReport): string {
  const custom = report.resources.filter((r) => r.custom).length;
  const lines = [
    `Plan for stack ${report.stack} (project ${report.project}): ${report.resources.length} resources, ${custom} managed by providers`,
    "",
    "RESOURCES",
    ...resourceTree(report.resources),
  ];
  lines.push("", "MODELS");
  const modelRows = report.models.flatMap((m) =>
    m.variants.map((v, i) => [
      i === 0 ? m.name : "",
      i === 0 ? `${m.kind}, ${m.dataClass}` : "",
      v.name,
      `${v.sharePct}%`,
      `${v.source}@${v.revision ? v.revision.slice(0, 12) : "(unpinned)"}`,
      i === 0 ? m.providers.join(", ") : "",
    ]),
  );
  lines.push(
    ...renderTable(["model", "serves", "variant", "share", "weights", "providers"], modelRows)
      .split("\n")
      .map((l) => `  ${l}`),
  );
  lines.push("", "PLATFORM (installed into the cluster)");
  if (report.platform.installs.length === 0) lines.push("  nothing: every add-on is expected to be there");
  else
    lines.push(
      ...renderTable(
        ["add-on", "version", "namespace", "how"],
        report.platform.installs.map((i) => [i.addOn, i.version, i.namespace, i.how]),
      )
        .split("\n")
        .map((l) => `  ${l}`),
    );
  if (report.platform.prerequisites.length > 0) {
    lines.push("", "PREREQUISITES (the cluster must already run these)");
    for (const p of report.platform.prerequisites)
      lines.push(`  - ${p.what}`, `    why: ${p.why}`, `    check: ${p.check}`);
  }
  if (report.warnings.length > 0) {
    lines.push("", "WARNINGS");
    for (const w of report.warnings) lines.push(`  ! ${w.key}: ${w.message}`);
  }
  lines.push("", "POLICY");
  const { violations } = report.policy;
  if (violations.length === 0) lines.push("  no violations");
  for (const v of violations)
    lines.push(`  ${v.level === "mandatory" ? "✗" : "!"} [${v.level}] ${v.policy}: ${v.message}`);

  if (report.security) {
    lines.push("", "SECURITY (the stack serves confidential data)");
    for (const c of report.security) lines.push(`  ${c.ok ? "✓" : "✗"} ${c.layer}: ${c.detail}`);
  }

  lines.push("", "COST FORECAST (USD per month)");
  lines.push(`  ${report.forecast.note}`);
  lines.push(`  policy: ${report.forecast.policy}`);
  lines.push(`  ${report.forecast.bound}`);
  if (report.forecast.rows.length > 0) {
    const table = renderTable(
      [
        "model",
        "provider",
        "gpu",
        "pattern",
        "active h",
        "auto",
        "always-on",
        "saves",
        "active-hours price",
        "cold starts",
        "p95 wait",
        "×bound",
      ],
      report.forecast.rows.map((r) => [
        r.model,
        r.provider,
        r.gpu,
        r.pattern,
        Math.round(r.activeHours),
        usd(r.costUsd),
        usd(r.alwaysOnCostUsd),
        `${r.savingsVsAlwaysOnPct.toFixed(0)}%`,
        usd(r.activeCostUsd),
        r.coldStarts,
        `${r.waitP95Seconds.toFixed(1)}s`,
        r.ratioToBound === null ? "—" : r.ratioToBound.toFixed(2),
      ]),
    );
    lines.push(...table.split("\n").map((l) => `  ${l}`));
  }
  for (const u of report.forecast.unpriced) lines.push(`  ${u}`);
  lines.push("  (aiorch simulate compares every keep-alive policy, with wait percentiles and a chart)");
  return `${lines.join("\n")}\n`;
}

/** The `--json` document: resources without their unmasked inputs. */
export function planJson(report: PlanReport): unknown {
  return {
    project: report.project,
    stack: report.stack,
    resources: report.resources.map((r) => ({
      type: r.type,
      name: r.name,
      urn: r.urn,
      parent: r.parent ?? null,
      custom: r.custom,
      inputs: r.inputs,
      dependsOn: r.dependencies,
    })),
    platform: report.platform,
    outputs: report.outputs,
    warnings: report.warnings,
    models: report.models,
    policy: report.policy,
    security: report.security ?? null,
    forecast: report.forecast,
  };
}
