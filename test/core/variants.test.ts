import { describe, expect, it } from "vitest";
import {
  budgetGroupSpend,
  effectiveWeights,
  parseUnitName,
  pickVariant,
  servingUnits,
  stickyPoint,
  unitName,
} from "../../core/variants";

const base = {
  name: "llama",
  source: "meta-llama/Llama-3.1-8B-Instruct",
  revision: "0e9e39f249a16976918f6564b8830bc894c89659",
  engineArgs: ["--enable-prefix-caching"],
  monthlyBudgetUsd: 100,
};

describe("serving units", () => {
  it("a model without variants is its own unit", () => {
    expect(servingUnits([base])).toEqual([{ ...base, publicName: "llama" }]);
  });

  it("one unit per variant: own weights and pin, the model's args first, the same public name", () => {
    const units = servingUnits([
      {
        ...base,
        variants: [
          { name: "v1", weight: 90 },
          {
            name: "v2",
            source: "meta-llama/Llama-3.3-8B-Instruct",
            revision: "1111111111111111111111111111111111111111",
            engineArgs: ["--max-num-seqs", "64"],
            weight: 10,
          },
          { name: "v3", source: "org/other", weight: 0 },
        ],
      },
    ]);
    expect(units.map((u) => [u.name, u.publicName, u.variant, u.declaredWeight])).toEqual([
      ["llama@v1", "llama", "v1", 90],
      ["llama@v2", "llama", "v2", 10],
      ["llama@v3", "llama", "v3", 0],
    ]);
    expect(units[0]).toMatchObject({ source: base.source, revision: base.revision });
    expect(units[1]).toMatchObject({
      source: "meta-llama/Llama-3.3-8B-Instruct",
      revision: "1111111111111111111111111111111111111111",
      engineArgs: ["--enable-prefix-caching", "--max-num-seqs", "64"],
    });
    // other weights never inherit the model's pin (that commit does not exist in another repo)
    expect(units[2]?.revision).toBeUndefined();
    expect(units.every((u) => !("variants" in u))).toBe(true);
    expect(parseUnitName("llama@v2")).toEqual({ model: "llama", variant: "v2" });
    expect(parseUnitName(unitName("org/m:1", "a.b"))).toEqual({ model: "org/m:1", variant: "a.b" });
    expect(parseUnitName("llama")).toEqual({ model: "llama" });
  });

  it("units of a model share its budget", () => {
    expect(budgetGroupSpend({ "llama@v1": 40, "llama@v2": 7.5, bge: 3, "llama-2@v1": 100 }, "llama")).toBe(
      47.5,
    );
    expect(budgetGroupSpend({ bge: 3 }, "bge")).toBe(3);
  });
});

describe("picking a variant", () => {
  const weights = [
    { name: "v1", weight: 90 },
    { name: "v2", weight: 10 },
  ];

  it("splits 10,000 picks within ±2% of the weights", () => {
    const counts = { v1: 0, v2: 0, v3: 0 } as Record<string, number>;
    const three = [
      { name: "v1", weight: 70 },
      { name: "v2", weight: 20 },
      { name: "v3", weight: 10 },
    ];
    for (let i = 0; i < 10_000; i++) counts[pickVariant(three, Math.random())!]! += 1;
    expect(Math.abs(counts.v1! / 10_000 - 0.7)).toBeLessThan(0.02);
    expect(Math.abs(counts.v2! / 10_000 - 0.2)).toBeLessThan(0.02);
    expect(Math.abs(counts.v3! / 10_000 - 0.1)).toBeLessThan(0.02);
  });

  it("a weight of 0 never serves; all zero means nothing may", () => {
    const zero = [
      { name: "v1", weight: 0 },
      { name: "v2", weight: 5 },
    ];
    for (const p of [0, 0.3, 0.999999]) expect(pickVariant(zero, p)).toBe("v2");
    expect(pickVariant([{ name: "v1", weight: 0 }], 0.5)).toBeUndefined();
  });

  it("sticky points are stable per key and spread evenly across keys", () => {
    expect(stickyPoint("key-1", "llama")).toBe(stickyPoint("key-1", "llama"));
    expect(stickyPoint("key-1", "llama")).not.toBe(stickyPoint("key-1", "bge"));
    let v2 = 0;
    for (let i = 0; i < 10_000; i++)
      if (pickVariant(weights, stickyPoint(`key-${i}`, "llama")) === "v2") v2++;
    expect(Math.abs(v2 / 10_000 - 0.1)).toBeLessThan(0.02);
  });

  it("a weight change moves only the keys in the range that moved", () => {
    const before = [...Array(2_000).keys()].map((i) => pickVariant(weights, stickyPoint(`k${i}`, "llama")));
    const widened = [
      { name: "v1", weight: 50 },
      { name: "v2", weight: 50 },
    ];
    const after = [...Array(2_000).keys()].map((i) => pickVariant(widened, stickyPoint(`k${i}`, "llama")));
    // nobody goes back from v2 to v1 when v2 grows
    expect(before.some((v, i) => v === "v2" && after[i] === "v1")).toBe(false);
    expect(after.filter((v) => v === "v2").length).toBeGreaterThan(before.filter((v) => v === "v2").length);
  });

  it("run-time weights override the declared ones by name", () => {
    expect(
      effectiveWeights(
        [
          { name: "v1", weight: 90 },
          { name: "v2", weight: 10 },
        ],
        { v2: 50, gone: 3 },
      ),
    ).toEqual([
      { name: "v1", weight: 90 },
      { name: "v2", weight: 50 },
    ]);
  });
});
