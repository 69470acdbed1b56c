// The policy pack. Only builds it: constructing a PolicyPack starts the policy gRPC server, so tests and
// `aiorch plan` import `policies.ts` instead. Run with `pulumi up --policy-pack policies`.
import { PolicyPack } from "@pulumi/policy";
import { allPolicies } from "./policies";

new PolicyPack("ai-orchestrator", {
  description: "Approved secure GPU providers and safe settings for ai-orchestrator stacks",
  policies: allPolicies(),
});
