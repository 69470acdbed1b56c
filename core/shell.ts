/**
 * POSIX shell quoting, for arguments that travel as one string: a start-up script, a container start command, and
 * worker-vllm's `VLLM_EXTRA_ARGS` (v2.24.0 and later read it with Python's `shlex.split`, `src/args_builder.py`),
 * where an argument with a space or a quote in it (a JSON value) must stay one argument.
 */

/** POSIX single-quote a word unless it is plainly safe. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Words joined into one string that a POSIX shell (and `shlex.split`) turns back into the same words. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}
