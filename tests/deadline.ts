/**
 * Test helper: the deadline of every child process a test starts. A child
 * still running at its deadline is killed (SIGTERM, through `Deno.Command`'s
 * `signal`) and the test fails saying so, so that a child that never ends
 * (say, fast/main.ts --epochs 100000 whose Ctrl-C handling broke) cannot hang
 * the suite.
 *
 * @module
 */

import { AssertionError } from "node:assert/strict";

/**
 * How long a child process of a test may run, in milliseconds: 5 minutes. The longest child,
 * tests/browser/web_browser.ts, took about a minute on a 2-core machine running four suites.
 */
export const CHILD_DEADLINE_MS = 300_000;

/** A deadline for the child `what`: pass `signal` to `Deno.Command`, call `check` once it ended. */
export interface Deadline {
  signal: AbortSignal;
  /** Throws when the child was killed at the deadline. */
  check(): void;
}

/** Starts the clock of a child process's deadline (`ms` from now). */
export function childDeadline(what: string, ms = CHILD_DEADLINE_MS): Deadline {
  const signal = AbortSignal.timeout(ms);
  return {
    signal,
    check() {
      if (signal.aborted) {
        throw new AssertionError({
          message: `${what} was still running after ${ms / 1000} s: killed at its deadline`,
        });
      }
    },
  };
}

/** What a child process left: its exit code and its output as text. */
export interface ProgramOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `deno run --allow-read --allow-write --allow-env FILE args` (FILE
 * relative to the repository's root) to its end under a deadline, in `cwd`
 * (default: this process's), with no standard input.
 */
export async function runDenoProgram(
  file: string,
  args: string[],
  cwd?: string,
): Promise<ProgramOutput> {
  const deadline = childDeadline(`${file} ${args.join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      new URL(`../${file}`, import.meta.url).pathname,
      ...args,
    ],
    cwd,
    stdin: "null",
    signal: deadline.signal,
  }).output();
  deadline.check();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
