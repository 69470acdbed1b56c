/**
 * CLI conventions, walked over the command table so a new command or subcommand cannot go untested: each answers
 * `--help` and `-h` with its usage on stdout (exit 0); an unknown option, command or subcommand exits 2 naming it
 * and the `--help` to read; `--version` prints the package's version; progress is drawn only on a terminal.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
// main loads each command's module with require() when it runs: teach require TypeScript, as bin/aiorch.js does
// (each test file has its own process, so this reaches no other file)
import "tsx/cjs";
import { describe, expect, it, vi } from "vitest";
import { commandTable, type Io, main } from "../../cli/main";
import { USAGE } from "../../cli/usage";
import { aiorch, ROOT } from "./helpers";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `aiorch ARGS` in this process, its output captured. */
async function run(args: readonly string[], io: Partial<Pick<Io, "showProgress">> = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    ...io,
  });
  return { code, stdout, stderr };
}

const packageVersion = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
  .version;

/** Every command, and every subcommand after its command: `["keys"]`, `["keys", "create"]`, … */
const targets: string[][] = commandTable().flatMap(({ command, subcommands }) => [
  [command],
  ...subcommands.map((sub) => [command, sub]),
]);

describe("the command table", () => {
  it("lists the commands and subcommands the CLI has", () => {
    const names = targets.map((t) => t.join(" "));
    for (const expected of ["plan", "config", "gateway", "controller", "dev", "status", "simulate"])
      expect(names).toContain(expected);
    for (const expected of [
      "keys create",
      "keys list",
      "keys rotate",
      "keys revoke",
      "audit list",
      "audit verify",
      "models list",
      "models set-weight",
      "backup now",
      "backup list",
      "restore",
    ])
      expect(names).toContain(expected);
  });
});

describe.each(targets.map((words) => [words.join(" "), words] as const))("aiorch %s", (name, words) => {
  it.each(["--help", "-h"])("%s: its usage on stdout, exit 0", async (flag) => {
    const result = await run([...words, flag]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^usage: aiorch /);
    expect(result.stdout).toContain(`aiorch ${name} `);
  });

  it("help: the same usage as --help", async () => {
    const helped = await run(["help", ...words]);
    expect(helped.code).toBe(0);
    expect(helped.stdout).toBe((await run([...words, "--help"])).stdout);
  });

  it("an unknown option: exit 2, named on stderr with the --help to read", async () => {
    const result = await run([...words, "--no-such-flag"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("--no-such-flag");
    expect(result.stderr).toContain(`aiorch ${name} --help`);
  });
});

describe("a command of subcommands", () => {
  const withSubcommands = commandTable().filter((c) => c.subcommands.length > 0);

  it.each(withSubcommands.map((c) => [c.command, c.subcommands] as const))(
    "%s --help lists every subcommand",
    async (command, subcommands) => {
      const { stdout } = await run([command, "--help"]);
      for (const sub of subcommands) expect(stdout).toContain(`aiorch ${command} ${sub} `);
    },
  );

  it.each(withSubcommands.map((c) => c.command))(
    "%s: an unknown or missing subcommand exits 2, naming it and the --help to read",
    async (command) => {
      const unknown = await run([command, "frobnicate"]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain("unknown subcommand 'frobnicate'");
      expect(unknown.stderr).toContain(`aiorch ${command} --help`);
      const missing = await run([command]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/needs a subcommand: \w/);
      expect((await run(["help", command, "frobnicate"])).code).toBe(2);
    },
  );
});

describe("aiorch itself", () => {
  it.each([["--help"], ["-h"], ["help"]])("%s: the whole usage on stdout, exit 0", async (arg) => {
    const result = await run([arg]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(USAGE);
    for (const { command } of commandTable())
      expect(result.stdout).toMatch(new RegExp(`^ {2}${command} `, "m"));
  });

  it("no command: the usage on stderr, exit 2", async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(USAGE);
  });

  it.each(["--version", "-V"])("%s prints the package version", async (flag) => {
    const result = await run([flag]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${packageVersion}\n`);
  });

  it("an unknown command or option exits 2, naming it and aiorch --help", async () => {
    for (const word of ["frobnicate", "--no-such-flag"]) {
      const result = await run([word]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`'${word}'`);
      expect(result.stderr).toContain("aiorch --help");
    }
    expect((await run(["help", "frobnicate"])).code).toBe(2);
  });

  it("the real binary answers --help and --version", () => {
    const help = aiorch(["--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toBe(USAGE);
    const keysHelp = aiorch(["keys", "create", "-h"]);
    expect(keysHelp.code).toBe(0);
    expect(keysHelp.stdout).toMatch(/^usage: aiorch keys create --name N/);
    expect(aiorch(["--version"]).stdout).toBe(`${packageVersion}\n`);
  });
});

describe("progress", () => {
  // a short simulation whose clock runs 400 ms a call, so the bar is due
  const simulate = ["simulate", "--dir", ROOT, "--stack", "dev", "--pattern", "burst", "--policy", "auto"];

  it("simulate draws its progress bar only where it may (the CLI: when stderr is a terminal)", async () => {
    let clock = 0;
    const now = vi.spyOn(Date, "now").mockImplementation(() => (clock += 400));
    try {
      const quiet = await run([...simulate, "--json"], { showProgress: false });
      expect(quiet.code, quiet.stderr).toBe(0);
      expect(quiet.stderr).toBe("");
      const drawn = await run([...simulate, "--json"], { showProgress: true });
      expect(drawn.code, drawn.stderr).toBe(0);
      expect(drawn.stderr).toMatch(/^\rsimulating \[/);
      expect(quiet.stdout).toBe(drawn.stdout);
    } finally {
      now.mockRestore();
    }
  });

  it("the real binary with stderr on a pipe draws none", () => {
    const result = aiorch(["simulate", "--stack", "dev"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
  });
});
