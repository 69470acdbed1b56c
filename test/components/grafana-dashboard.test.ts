import { describe, expect, it } from "vitest";
import { renderDashboard } from "../../components/grafana-dashboard";
import { METRICS } from "../../core/metrics";

interface Panel {
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { expr: string }[];
}

const dashboard = renderDashboard({ namespace: "ai", stack: "prod" });
const panels = dashboard.panels as Panel[];
const known = new Set(Object.values(METRICS).map((m) => m.name));

describe("grafana dashboard", () => {
  it("has the panels operators look at", () => {
    const titles = panels.map((p) => p.title);
    for (const title of [
      "Queue depth",
      "Workers by state",
      "Spend vs budget (month to date)",
      "Cost per inference",
      "Time to first token",
      "Cold starts",
    ]) {
      expect(titles).toContain(title);
    }
  });

  it("queries only metrics of the contract, scoped to the stack's namespace", () => {
    for (const panel of panels) {
      for (const { expr } of panel.targets) {
        expect(expr, panel.title).toContain('namespace="ai"');
        for (const name of expr.match(/aiorch_[a-z_]+/g) ?? []) {
          expect(known.has(name.replace(/_(bucket|count|sum)$/, "")), `${panel.title}: ${name}`).toBe(true);
        }
      }
    }
  });

  it("lays panels out without overlap and has a stable uid", () => {
    const cells = new Set<string>();
    for (const { gridPos: g } of panels) {
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          const cell = `${x},${y}`;
          expect(cells.has(cell)).toBe(false);
          cells.add(cell);
        }
      expect(g.x + g.w).toBeLessThanOrEqual(24);
    }
    expect(dashboard.uid).toBe("aiorch-prod");
    expect(renderDashboard({ namespace: "ai", stack: "prod" })).toEqual(dashboard);
  });
});
