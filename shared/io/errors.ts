/**
 * Errors a user can act on, and the one wrapper every entry point runs in.
 *
 * A `UserError` carries a one-line message and an exit code. `runMain` prints
 * such errors as `error: <message>` on stderr and exits with their code, so a
 * bad file or flag never shows a stack trace. Anything else is a bug and is
 * shown in full.
 *
 * @module
 */

/** An error caused by input or environment that the user can fix. */
export class UserError extends Error {
  /** Process exit code to use when this error ends the program. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "UserError";
    this.exitCode = exitCode;
  }
}

/** A bad command-line flag or value (exit code 2). */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/**
 * Runs `main`, turning a thrown `UserError` into a one-line message and its
 * exit code. Exits 0 when `main` resolves.
 */
export async function runMain(main: () => Promise<void>): Promise<never> {
  try {
    await main();
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`error: ${err.message}`);
      Deno.exit(err.exitCode);
    }
    throw err;
  }
  Deno.exit(0);
}
