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
