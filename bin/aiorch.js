#!/usr/bin/env node

// Runs the TypeScript sources directly (tsx), so the CLI needs no build step.
require("tsx/cjs");
const { main } = require("../cli/main.ts");

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`aiorch: unexpected error: ${error?.stack ?? error}\n`);
    process.exitCode = 3;
  },
);
