/**
 * Whether a model answers the route it was asked through, by the table in `core/engine-routes.ts`: a route its
 * kind does not serve is a 404 naming the kinds that route serves (as OpenAI answers a model asked through the
 * wrong API); a route the kind serves but the model's engine does not is a 400 naming the engine and the routes
 * the model does answer; a route the engine serves but one of the model's providers does not pass (RunPod
 * serverless's queue path, `PROVIDER_PATHS`) is the same 400 naming that provider, since the request would fail
 * whenever the model runs there.
 */
import type { Engine, ModelConfig } from "../core/config";
import {
  type ApiRoute,
  engineLabel,
  enginesServing,
  KIND_ROUTES,
  kindsServing,
  modelServedRoutes,
  orList,
  providerPathLabel,
  providerRouteGaps,
  servedRoutes,
} from "../core/engine-routes";
import { badRequest, GatewayError } from "./errors";

/** Throws the 404 or 400 when `model` cannot answer `route`; returns when it can. */
export function checkRouteServed(
  name: string,
  model: Pick<ModelConfig, "kind" | "engine" | "providers">,
  route: ApiRoute,
): void {
  if (!KIND_ROUTES[model.kind].includes(route)) {
    throw new GatewayError(
      404,
      "invalid_request_error",
      `The model "${name}" is ${/^[aeiou]/.test(model.kind) ? "an" : "a"} ${model.kind} model; ${route} serves ${orList(kindsServing(route))} models only`,
      "wrong_endpoint",
      "model",
    );
  }
  const engine: Engine = model.engine;
  if (!servedRoutes(model.kind, engine).includes(route)) {
    const others = servedRoutes(model.kind, engine);
    const able = enginesServing(route);
    throw badRequest(
      `The model "${name}" runs on ${engineLabel(engine)}, which does not serve ${route}` +
        (others.length > 0 ? `; call ${orList(others)} instead` : "") +
        (able.length > 0 ? ` (engines that serve ${route}: ${able.join(", ")})` : ""),
      "model",
      "route_not_served_by_engine",
    );
  }
  const gap = providerRouteGaps(model.kind, engine, model.providers).find((g) => g.lacks.includes(route));
  if (gap) {
    const answered = modelServedRoutes(model);
    throw badRequest(
      `The model "${name}" runs on ${providerPathLabel(gap.path)}, which does not serve ${route}` +
        (answered.length > 0 ? `; call ${orList(answered)} instead` : ""),
      "model",
      "route_not_served_by_provider",
    );
  }
}
