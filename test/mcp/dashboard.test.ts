/** The Grafana dashboard's link (issue 23's resources): rendered into the runtime config from the stack, served by MCP. */
import { describe, expect, it } from "vitest";
import { renderDashboard } from "../../components/grafana-dashboard";
import { runtimeConfigOf, stackYaml } from "../../devkit/stack-yaml";
import { dashboardLink } from "../../mcp/resources";

describe("the dashboard resource", () => {
  it("links to <grafanaUrl>/d/<uid> of the dashboard the stack declares", () => {
    const config = runtimeConfigOf(
      stackYaml({ monitoring: "{ grafanaUrl: 'https://grafana.example.com/' }" }),
      "prod",
    );
    expect(config.dashboard).toEqual({
      uid: "aiorch-prod",
      url: "https://grafana.example.com/d/aiorch-prod",
    });
    expect(dashboardLink(config)).toEqual({
      uid: "aiorch-prod",
      url: "https://grafana.example.com/d/aiorch-prod",
    });
    // the uid is the one the dashboard JSON carries
    expect(JSON.parse(JSON.stringify(renderDashboard({ stack: "prod", namespace: "ai" }))).uid).toBe(
      "aiorch-prod",
    );
  });

  it("without Grafana's address: the uid and how to get a link; without monitoring: none", () => {
    const config = runtimeConfigOf(stackYaml(), "dev");
    expect(dashboardLink(config)).toMatchObject({ uid: "aiorch-dev", url: null });
    const off = runtimeConfigOf(stackYaml({ monitoring: "{ enabled: false }" }), "dev");
    expect(off.dashboard).toBeUndefined();
    expect(dashboardLink(off)).toMatchObject({ dashboard: null });
  });

  it("refuses a Grafana address that is not a URL, naming the key", () => {
    expect(() => runtimeConfigOf(stackYaml({ monitoring: "{ grafanaUrl: grafana }" }), "dev")).toThrow(
      /monitoring\.grafanaUrl/,
    );
  });
});
