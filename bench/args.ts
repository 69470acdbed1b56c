/**
 * Command-line options of the bench scripts, one way for all: `--help` / `-h` print the usage on stdout and exit 0;
 * an unknown option or a malformed one exits 2 naming it — a typo must not start a long run on the defaults.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

/** Exit code of a command line the script cannot run (as the usual shells and getopt use it). */
export const USAGE_EXIT_CODE = 2;

export function benchArgs<const Options extends NonNullable<ParseArgsConfig["options"]>>(
  /** How the script is named in messages, e.g. "bench:gateway". */
  script: string,
  usage: string,
  options: Options,
  argv: readonly string[] = process.argv.slice(2),
) {
  const beforeDashes = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  if (beforeDashes.includes("--help") || beforeDashes.includes("-h")) {
    process.stdout.write(usage.endsWith("\n") ? usage : `${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    process.stderr.write(`${script}: ${whatIsWrong(error)}; see --help\n`);
    process.exit(USAGE_EXIT_CODE);
  }
}

/** Node's parseArgs message, shortened where it names an unknown option (its advice on positionals does not apply). */
function whatIsWrong(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /'([^']+)'/.exec(message)?.[1];
    if (option !== undefined) return `unknown option ${option}`;
  }
  return message.replace(/\.$/, "");
}
