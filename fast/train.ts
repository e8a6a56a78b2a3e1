/**
 * The fast trainer: same model, same initial weights, same batches in the
 * same order as the slow trainer, computed with fused, tiled kernels,
 * whole chunks of steps per command buffer and one readback per epoch.
 *
 * `trainFast` prepares the run (shared/train.ts), picks a matmul variant per
 * shape (autotuned and cached per adapter, or the adapter-type default with
 * `--no-tune`), then trains with the engine of fast/engine.ts, which tests
 * also drive step by step.
 *
 * @module
 */

import type { TrainConfig } from "../shared/cli.ts";
import type { Gpu } from "../shared/gpu.ts";
import type { MlpParams } from "../shared/model.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../shared/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../shared/train.ts";
import {
  createFastTrainer,
  type EngineData,
  type Slot,
  SLOTS,
  TUNE_SCREEN_ROWS,
} from "./engine.ts";
import {
  pickFastest,
  readTuneCache,
  shapeKey,
  variantFits,
  VARIANTS,
  writeTuneCache,
} from "./matmul.ts";

/** Where tuning results are remembered, per adapter and shape. */
export const TUNE_CACHE_PATH: string = decodeURIComponent(
  new URL("../data/tune-cache.json", import.meta.url).pathname,
);

/** Options of `tunePlan`. */
export interface TunePlanOptions {
  batchSize: number;
  /** The cache file; `null` neither reads nor writes one. */
  cachePath?: string | null;
  log?: (line: string) => void;
}

/**
 * Chooses a matmul variant per slot for this adapter and batch size: from
 * the cache when it knows the shape, else by timing every variant that fits
 * (see `pickFastest`), and remembers new choices in the cache.
 */
export async function tunePlan(
  gpu: Gpu,
  params: MlpParams,
  data: EngineData,
  opts: TunePlanOptions,
): Promise<Record<Slot, string>> {
  const { batchSize } = opts;
  const cachePath = opts.cachePath === undefined ? TUNE_CACHE_PATH : opts.cachePath;
  const cache = cachePath ? readTuneCache(cachePath) : {};
  const known = cache[gpu.description] ?? {};
  // A trainer with every variant compiled; lr 0 entries keep weights as they are.
  const trainer = await createFastTrainer(gpu, params, data, {
    batchSize,
    lr: 0,
    extraVariants: [...VARIANTS],
  });
  const plan = {} as Record<Slot, string>;
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  const notes: string[] = [];
  try {
    for (const slot of SLOTS) {
      const shape = trainer.shapes[slot];
      const key = shapeKey(shape, batchSize);
      const candidates = VARIANTS.filter((v) => variantFits(v, shape, trainer.maxRows, maxTex));
      const cached = known[key];
      if (cached && candidates.some((v) => v.name === cached)) {
        plan[slot] = cached;
        notes.push(`${slot} ${cached} (cached)`);
        continue;
      }
      const result = await pickFastest(
        candidates,
        (v, rows) => trainer.timeVariant(slot, v, rows),
        batchSize,
        Math.min(TUNE_SCREEN_ROWS, batchSize),
      );
      plan[slot] = result.best.name;
      known[key] = result.best.name;
      const ms = result.ms[result.best.name];
      notes.push(`${slot} ${result.best.name}${ms === undefined ? "" : ` (${ms.toFixed(1)} ms)`}`);
    }
  } finally {
    trainer.destroy();
  }
  if (cachePath) {
    cache[gpu.description] = known;
    writeTuneCache(cachePath, cache);
  }
  opts.log?.(`matmul variants: ${notes.join(", ")}`);
  return plan;
}

/**
 * Trains the MLP on the GPU the fast way and returns the summary. Logs one
 * line per epoch and the test accuracy, like the slow trainer.
 */
export async function trainFast(
  config: TrainConfig,
  opts: TrainOptions = {},
): Promise<TrainSummary> {
  const run = await prepareRun(config, opts);
  const { gpu, data, nTrain, nTest, params, log } = run;
  const engineData: EngineData = { ...data, nTrain, nTest };
  const plan = config.noTune
    ? undefined
    : await tunePlan(gpu, params, engineData, { batchSize: config.batchSize, log });
  const trainer = await createFastTrainer(gpu, params, engineData, {
    batchSize: config.batchSize,
    lr: config.lr,
    plan,
  });
  if (config.noTune) {
    log(`matmul variants: ${SLOTS.map((s) => `${s} ${trainer.plan[s].name}`).join(", ")}`);
  }
  const epochs: EpochResult[] = [];
  const tty = Deno.stderr.isTerminal();
  try {
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      const progress = epochProgress(epoch, trainer.batches.length);
      const t0 = performance.now();
      const total = await trainer.runEpoch(tty ? (done) => progress.tick(done) : undefined);
      const ms = performance.now() - t0;
      progress.clear();
      const result = { epoch, loss: total / nTrain, ms };
      epochs.push(result);
      log(formatEpoch(result));
    }
    const t0 = performance.now();
    const correct = nTest > 0 ? await trainer.evaluate() : 0;
    const test = {
      accuracy: nTest > 0 ? correct / nTest : 0,
      correct,
      total: nTest,
      ms: performance.now() - t0,
    };
    log(formatTest(test));
    return {
      trainer: "fast",
      adapter: gpu.description,
      data: { source: data.source, train: nTrain, test: nTest },
      config: {
        epochs: config.epochs,
        batchSize: config.batchSize,
        lr: config.lr,
        seed: config.seed,
      },
      epochs,
      test,
    };
  } finally {
    trainer.destroy();
  }
}
