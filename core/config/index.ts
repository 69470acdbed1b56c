export * from "./errors";
export * from "./load";
export * from "./runtime";
export * from "./schema";
export * from "./stack-file";
