// the command line loads command code with require() (bin/aiorch.js registers tsx the same way)
import "tsx/cjs";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { main } from "../../cli/main";
import { forecastForStack, runSimulate } from "../../cli/simulate";
import { stackYaml } from "../../devkit/stack-yaml";
import { removeProject, tempProject } from "../cli/helpers";

const dir = tempProject(
  {
    "Pulumi.sim.yaml": stackYaml({
      providers: "{ runpod-pod: {}, datacrunch: {} }",
      models:
        "[{ name: llama, kind: chat, source: org/llama, gpu: [RTX_4090, A100_80GB], providers: [runpod-pod, datacrunch], maxWorkers: 2 }, { name: bge, kind: embedding, source: org/bge, gpu: [RTX_4090], providers: [runpod-pod] }]",
    }),
  },
  { linkProgram: false },
);
afterAll(() => removeProject(dir));

const simulate = async (...args: string[]) => {
  let out = "";
  let err = "";
  const code = await runSimulate(["--dir", dir, "--stack", "sim", ...args], {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
};

interface Row {
  model: string;
  provider: string;
  gpu: string;
  pattern: string;
  policy: string;
  [key: string]: unknown;
}

describe("aiorch simulate", () => {
  it("--json prints { results } with the documented fields, patterns and policies; same seed, same output", async () => {
    const args = [
      "--json",
      "--pattern",
      "burst",
      "--policy",
      "auto,bound",
      "--policy",
      "fixed-5s",
      "--seed",
      "3",
    ];
    const first = await simulate(...args);
    expect(first.code, first.err).toBe(0);
    const { results } = JSON.parse(first.out) as { results: Row[] };
    expect(results.map((r) => `${r.model}/${r.provider}/${r.gpu}/${r.pattern}/${r.policy}`)).toEqual([
      "llama/runpod-pod/RTX_4090/burst/fixed-5s",
      "llama/runpod-pod/RTX_4090/burst/auto",
      "llama/runpod-pod/RTX_4090/burst/bound",
      "llama/datacrunch/A100_80GB/burst/fixed-5s",
      "llama/datacrunch/A100_80GB/burst/auto",
      "llama/datacrunch/A100_80GB/burst/bound",
      "bge/runpod-pod/RTX_4090/burst/fixed-5s",
      "bge/runpod-pod/RTX_4090/burst/auto",
      "bge/runpod-pod/RTX_4090/burst/bound",
    ]);
    for (const key of [
      "activeHours",
      "billedHours",
      "costUsd",
      "savingsVsAlwaysOnPct",
      "costRatioToBound",
      "coldStarts",
      "waitP50Seconds",
      "waitP95Seconds",
      "waitP99Seconds",
      "costPer1000Requests",
      "overheadUsd",
    ]) {
      expect(typeof results[0]![key], key).toBe("number");
    }
    expect(results[0]!.activeHours).toBe(20);
    const again = await simulate(...args);
    expect(again.out).toBe(first.out);
  });

  it("prints tables, where each policy wins, and writes the chart", async () => {
    const chart = join(dir, "cost.svg");
    const r = await simulate("--pattern", "on-demand", "--model", "bge", "--chart", chart);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("Simulated cost forecast for stack sim (seed 1):");
    expect(r.out).toMatch(/bge on runpod-pod \(RTX_4090, \$0\.34\/h\):\npattern\s+policy\s+keep-alive/);
    expect(r.out).toMatch(/on-demand\s+always-on\s+∞\s+60\.0\s+730\.0\s+248\.20/);
    expect(r.out).toContain("on-demand: cheapest");
    expect(r.out).toContain(`chart written to ${chart}`);
    expect(readFileSync(chart, "utf8")).toMatch(
      /^<svg[^>]*>[\s\S]*bge · runpod-pod<\/text>[\s\S]*on-demand[\s\S]*<\/svg>\n$/,
    );
  });

  it("replays a trace", async () => {
    const trace = join(dir, "trace.jsonl");
    const lines: string[] = [];
    for (let i = 0; i < 200; i++)
      lines.push(
        JSON.stringify({
          timestamp: 1_772_442_000 + i * 37,
          model: i % 2 ? "llama" : "other",
          tokens: 100 + i,
        }),
      );
    writeFileSync(trace, `${lines.join("\n")}\n`);
    const r = await simulate("--trace", trace, "--json", "--policy", "adaptive");
    expect(r.code, r.err).toBe(0);
    const { results } = JSON.parse(r.out) as { results: Row[] };
    expect(results.map((x) => `${x.model}/${x.provider}/${x.pattern}/${x.policy}`)).toEqual([
      "llama/runpod-pod/trace/adaptive",
      "llama/datacrunch/trace/adaptive",
    ]);
    expect(results[0]!.requests).toBe(100);
  });

  it("exits 2 naming the flag on bad usage", async () => {
    const cases: [string[], RegExp][] = [
      [["--frobnicate"], /unknown option '--frobnicate'[\s\S]*aiorch simulate --help/],
      [
        ["--pattern", "weekly"],
        /--pattern "weekly" is not a known usage pattern; known: always-on, business-hours, on-demand, burst/,
      ],
      [["--policy", "greedy"], /--policy "greedy" is not a known policy/],
      [["--seed", "abc"], /--seed "abc" is not a whole number/],
      [["--rate", "0"], /--rate "0" is not a rate/],
      [["--wait-price", "x"], /--wait-price "x" is not a price in USD per waited second/],
      [["--arrivals", "uniform"], /--arrivals "uniform"/],
      [["--provider", "aws"], /--provider "aws" is not a known provider/],
      [["--model", "gpt-5"], /--model "gpt-5" is not a model of this stack; models: llama, bge/],
      [["--pattern", "burst", "--trace", "x.csv"], /--pattern and --trace exclude each other/],
      [["--trace", join(dir, "missing.csv")], /--trace .*missing\.csv: no such file/],
      [["--seed"], /--seed/],
      [
        ["--chart", join(dir, "no", "such", "dir.svg"), "--pattern", "burst", "--policy", "auto"],
        /--chart .*cannot write/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await simulate(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toMatch(message);
      expect(r.out).toBe("");
    }
    const noStack = await runSimulate(["--dir", dir, "--stack", "nope"], { out: () => {}, err: () => {} });
    expect(noStack).toBe(2);
  });

  it("exits 2 with the line and field of a bad trace record", async () => {
    const trace = join(dir, "bad.csv");
    writeFileSync(trace, "timestamp,model,tokens\n100,llama,5\n101,llama,lots\n");
    const r = await simulate("--trace", trace);
    expect(r.code).toBe(2);
    expect(r.err).toContain('bad.csv line 3, field "tokens": expected a whole number ≥ 0, got "lots"');
    const other = join(dir, "other.csv");
    writeFileSync(other, "100,someone-else,5\n");
    const none = await simulate("--trace", other);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/has no requests for this stack's models \(llama, bge\); it has: someone-else/);
  });

  it("draws a progress bar on stderr only when a run takes more than a second", async () => {
    const quick = await simulate("--pattern", "burst", "--policy", "auto", "--model", "bge");
    expect(quick.err).toBe("");
    let clock = 0;
    const now = vi.spyOn(Date, "now").mockImplementation(() => (clock += 400));
    try {
      const slow = await simulate("--pattern", "burst", "--policy", "auto", "--model", "bge", "--json");
      expect(slow.code).toBe(0);
      expect(slow.err).toMatch(/^\rsimulating \[#*\.*\]\s+\d+% {2}bge on runpod-pod, burst, /);
      expect(slow.err).toMatch(/\r {20,}\r$/);
      expect(JSON.parse(slow.out)).toHaveProperty("results");
    } finally {
      now.mockRestore();
    }
  });

  it("--help prints the usage (answered by the command line before the command runs: cli/main.ts)", async () => {
    const printed: string[] = [];
    const code = await main(["simulate", "--help"], { out: (t) => printed.push(t), err: () => undefined });
    const out = printed.join("");
    expect(code).toBe(0);
    expect(out).toMatch(/^usage: aiorch simulate/);
    expect(existsSync(dir)).toBe(true);
  });

  it("exports forecastForStack for the plan command", () => {
    expect(typeof forecastForStack).toBe("function");
  });

  it("--suite replays the keep-alive trace suite on the catalog's providers; --hindsight adds the best fixed window", async () => {
    const run = async (...args: string[]) => {
      let out = "";
      let err = "";
      const code = await runSimulate(["--dir", dir, ...args], {
        out: (t) => {
          out += t;
        },
        err: (t) => {
          err += t;
        },
        showProgress: false,
      });
      return { code, out, err };
    };
    const { code, out } = await run(
      "--suite",
      "--provider",
      "datacrunch",
      "--policy",
      "adaptive,bound",
      "--json",
      "--hindsight",
    );
    expect(code).toBe(0);
    const json = JSON.parse(out) as {
      traces: { name: string; provider: string; policy: string; ratio: number }[];
      hindsight: { name: string; provider: string; ratio: number }[];
      versusHindsight: { worstRatio: number; medianRatio: number };
    };
    expect(new Set(json.traces.map((t) => `${t.provider}/${t.policy}`))).toEqual(
      new Set(["datacrunch/adaptive"]),
    );
    expect(json.traces).toHaveLength(10); // one row per trace: the bound is every row's reference, not a row
    expect(json.hindsight).toHaveLength(10);
    for (const t of json.traces) expect(t.ratio).toBeGreaterThanOrEqual(1);
    expect(json.versusHindsight.worstRatio).toBeGreaterThanOrEqual(json.versusHindsight.medianRatio);

    const text = await run("--suite", "--provider", "datacrunch", "--policy", "adaptive");
    expect(text.out).toMatch(/^Keep-alive trace suite \(seed 1\):/);
    expect(text.out).toMatch(/default policy \(adaptive\): worst [\d.]+× the bound/);

    const stack = await run("--suite", "--stack", "sim");
    expect(stack.code).toBe(2);
    expect(stack.err).toMatch(/--stack does not go with --suite/);
    const hindsight = await run("--hindsight", "--stack", "sim");
    expect(hindsight.code).toBe(2);
    expect(hindsight.err).toMatch(/--hindsight goes with --suite/);
  });
});
