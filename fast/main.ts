/**
 * `deno task fast`: the fast trainer's command line (see shared/io/prepare.ts).
 *
 * Ctrl-C (SIGINT) while the MLP or the CNN trains asks the trainer to stop after the
 * running chunk of steps: the last checkpoint stays as it is, one line says
 * where it is, and the exit code is 130. A second Ctrl-C exits at once. The
 * listener lives only as long as the training.
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { trainerMain } from "../shared/io/prepare.ts";
import { trainFast } from "./train.ts";

/** Trains with `config`, turning Ctrl-C into an abort of the epoch loop (MLP or CNN). */
async function trainWithCtrlC(config: TrainConfig) {
  const ctrlC = new AbortController();
  const onSigint = () => {
    if (ctrlC.signal.aborted) Deno.exit(130);
    ctrlC.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    return await trainFast(config, { signal: ctrlC.signal });
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

trainerMain("fast", trainWithCtrlC);
