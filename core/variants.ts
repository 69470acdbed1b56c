/**
 * Model variants (a weighted rollout): which version of a model's weights serves a request.
 *
 * A model with `variants` is served by one *serving unit* per variant, named `<model>@<variant>`: each unit has
 * its own queue, workers, routes and spend, so scaling and cost work per variant. Clients keep asking for the
 * model's own name; the gateway picks a unit by weight (or sticky per API key) and workers answer under the
 * public name, so a rollout is invisible in response bodies and visible in the `x-aiorch-variant` header.
 */
import { createHash } from "node:crypto";

/** Separates the model from the variant in a serving unit's name; model names cannot contain it. */
export const VARIANT_SEPARATOR = "@";

/** The response header naming the variant that served a request. */
export const VARIANT_HEADER = "x-aiorch-variant";

/** What a variant changes about its model. */
export interface VariantSpec {
  readonly name: string;
  readonly source?: string;
  readonly revision?: string;
  readonly engineArgs?: readonly string[];
  readonly weight: number;
}

/** The fields of a model config that variants touch; the rest is copied to every unit as is. */
export interface VariantModel {
  readonly name: string;
  readonly source: string;
  readonly revision?: string;
  readonly engineArgs: readonly string[];
  readonly variants?: readonly VariantSpec[];
  readonly monthlyBudgetUsd?: number;
}

/** A serving unit: a model config for one variant, or the model itself when it has no variants. */
export type ServingUnit<M extends VariantModel> = Omit<M, "variants"> & {
  /** The name clients send and workers answer under. */
  readonly publicName: string;
  /** The variant this unit serves; absent for a model without variants. */
  readonly variant?: string;
  /** Share of traffic declared in config (relative to the other variants). */
  readonly declaredWeight?: number;
};

export function unitName(model: string, variant: string): string {
  return `${model}${VARIANT_SEPARATOR}${variant}`;
}

/** Split a serving unit's name into the model and the variant (absent for a unit that is the model itself). */
export function parseUnitName(name: string): { model: string; variant?: string } {
  const at = name.lastIndexOf(VARIANT_SEPARATOR);
  return at < 0 ? { model: name } : { model: name.slice(0, at), variant: name.slice(at + 1) };
}

/**
 * One serving unit per variant (the model's own unit when it has none). A variant inherits the model's source
 * and revision unless it names its own, and its engine arguments come after the model's so they win.
 */
export function servingUnits<M extends VariantModel>(models: readonly M[]): ServingUnit<M>[] {
  return models.flatMap((model): ServingUnit<M>[] => {
    const { variants, ...base } = model;
    if (!variants || variants.length === 0) return [{ ...base, publicName: model.name }];
    return variants.map((v) => {
      const sameWeights = v.source === undefined || v.source === model.source;
      return {
        ...base,
        name: unitName(model.name, v.name),
        publicName: model.name,
        variant: v.name,
        declaredWeight: v.weight,
        source: v.source ?? model.source,
        // a variant that names other weights must not inherit the model's pin of different weights
        revision: v.revision ?? (sameWeights ? model.revision : undefined),
        engineArgs: [...model.engineArgs, ...(v.engineArgs ?? [])],
      };
    });
  });
}

/** Variant weights: declared ones overlaid with run-time changes (`aiorch models set-weight`). */
export function effectiveWeights(
  declared: readonly VariantSpec[],
  overrides: Readonly<Record<string, number>>,
): { name: string; weight: number }[] {
  return declared.map((v) => ({ name: v.name, weight: overrides[v.name] ?? v.weight }));
}

/**
 * A point in [0, 1) fixed by the API key and model, so a sticky client lands on the same variant as long as
 * the weights stay; a weight change moves only the keys whose point falls into a range that moved.
 */
export function stickyPoint(keyId: string, model: string): number {
  const digest = createHash("sha256").update(`${keyId}\u0000${model}`).digest();
  // 48 bits keep the division exact in a double
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Pick a variant by weight at `point` in [0, 1): variants own consecutive ranges in declared order, each as wide
 * as its share of the total. Returns undefined when every weight is 0 (nothing may serve).
 */
export function pickVariant(
  weights: readonly { name: string; weight: number }[],
  point: number,
): string | undefined {
  const total = weights.reduce((sum, w) => sum + Math.max(0, w.weight), 0);
  if (!(total > 0)) return undefined;
  let edge = 0;
  let last: string | undefined;
  for (const w of weights) {
    if (w.weight <= 0) continue;
    edge += w.weight / total;
    last = w.name;
    if (point < edge) return w.name;
  }
  return last; // rounding at the top edge
}

/** Units of the same model share its monthly budget: the spend of every unit counts against it. */
export function budgetGroupSpend(unitSpend: Readonly<Record<string, number>>, model: string): number {
  let sum = 0;
  for (const [name, usd] of Object.entries(unitSpend)) if (parseUnitName(name).model === model) sum += usd;
  return sum;
}
