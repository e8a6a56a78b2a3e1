/**
 * One training run of one epoch, slow trainer (baseline) against fast, on the
 * same data subset with the same seed: the first 1000 training images
 * (EPOCH_TRAIN_LIMIT to change), batch 500, lr 0.01, seed 1337, tested on
 * the first 100 test images. One device is opened once and reused.
 *
 * `Deno.bench` times the whole call of `trainSlow` / `trainFast` (setup,
 * the epoch, the test); the table printed at the end gives the epoch alone
 * (the trainers' own `EpochResult.ms`), and checks that both trainers' epoch
 * loss equals the CPU reference's (shared/model.ts) on the same batches.
 * The fast trainer runs tuned (its first, warm-up call tunes and fills the
 * tune cache in data/; later calls read it) and with `--no-tune` defaults.
 *
 * Run: deno bench --allow-read --allow-write=data --allow-env bench/epoch_bench.ts
 *
 * @module
 */

import type { TrainConfig } from "../shared/cli.ts";
import { openGpu } from "../shared/gpu.ts";
import { initParams } from "../shared/model.ts";
import { loadMnist } from "../shared/mnist.ts";
import type { TrainSummary } from "../shared/summary.ts";
import type { TrainOptions } from "../shared/train.ts";
import { trainSlow } from "../slow/train.ts";
import { trainFast } from "../fast/train.ts";
import { referenceEpochLoss } from "./reference.ts";

const trainLimit = Number(Deno.env.get("EPOCH_TRAIN_LIMIT") ?? "") || 2000;
const config: TrainConfig = {
  epochs: 1,
  batchSize: 500,
  lr: 0.01,
  seed: 1337,
  trainLimit,
  testLimit: 100,
  json: false,
  profile: false,
  noTune: false,
};
const data = await loadMnist({ trainLimit, testLimit: config.testLimit, announce: false });
const gpu = await openGpu();
const opts: TrainOptions = { gpu, data, log: () => {} };
const nTrain = Math.min(trainLimit, data.trainLabels.length);
const reference = referenceEpochLoss(data, nTrain, config.batchSize, config.lr, initParams(1337));

interface Case {
  name: string;
  train: () => Promise<TrainSummary>;
  baseline?: boolean;
  n: number;
}
const cases: Case[] = [
  { name: "slow", train: () => trainSlow(config, opts), baseline: true, n: 2 },
  { name: "fast (tuned)", train: () => trainFast(config, opts), n: 5 },
  { name: "fast (--no-tune)", train: () => trainFast({ ...config, noTune: true }, opts), n: 5 },
];

const epochs = new Map<string, { ms: number[]; loss: number }>();

for (const c of cases) {
  Deno.bench({
    name: `${c.name} (${nTrain} images, batch ${config.batchSize})`,
    group: "epoch",
    baseline: c.baseline,
    n: c.n,
    warmup: 1,
    async fn() {
      const s = await c.train();
      const e = s.epochs[0];
      const seen = epochs.get(c.name) ?? { ms: [], loss: e.loss };
      seen.ms.push(e.ms);
      epochs.set(c.name, seen);
      // Every run starts from initParams(seed): the same loss, the reference's.
      if (!(Math.abs(e.loss - reference) <= 1e-4 * reference)) {
        throw new Error(`${c.name}: epoch loss ${e.loss}, CPU reference ${reference}`);
      }
    },
  });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nepoch only (median of the trainers' own epoch times) on ${gpu.description}`);
  console.log(`CPU reference epoch-1 loss: ${reference.toFixed(6)}`);
  for (const [name, { ms, loss }] of epochs) {
    const sorted = [...ms].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(
      `${name.padEnd(18)} ${median.toFixed(1).padStart(9)} ms/epoch  ` +
        `${(nTrain / median * 1000).toFixed(0).padStart(7)} images/s  loss ${loss.toFixed(6)}`,
    );
  }
});
