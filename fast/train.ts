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
import { formatProfile, GpuProfiler, type ProfileReport } from "../shared/profiler.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../shared/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../shared/train.ts";
import {
  createFastTrainer,
  type EngineData,
  type FastTrainer,
  fastTrainerRows,
  type Slot,
  SLOTS,
  slotShapes,
  TUNE_SCREEN_ROWS,
} from "./engine.ts";
import {
  type MatmulShape,
  pickFastest,
  readTuneCache,
  shapeKey,
  type TuneResult,
  variantFits,
  VARIANTS,
  writeTuneCache,
} from "./matmul.ts";

/** Where tuning results are remembered, per adapter and shape. */
export const TUNE_CACHE_PATH: string = decodeURIComponent(
  new URL("../data/tune-cache.json", import.meta.url).pathname,
);

/** The plan of a run: variant names per slot, and which slots the cache lacks. */
export interface CachedPlan {
  /** Variants the cache knows for this adapter, batch size and shape. */
  known: Partial<Record<Slot, string>>;
  /** Slots to time. */
  missing: Slot[];
}

/** What the cache at `cachePath` (none: `null`) knows for `gpu` and these shapes. */
export function cachedPlan(
  gpu: Gpu,
  shapes: Record<Slot, MatmulShape>,
  batchSize: number,
  maxRows: number,
  cachePath: string | null,
): CachedPlan {
  const known: Partial<Record<Slot, string>> = {};
  const missing: Slot[] = [];
  const entries = cachePath ? readTuneCache(cachePath)[gpu.description] ?? {} : {};
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  for (const slot of SLOTS) {
    const name = entries[shapeKey(shapes[slot], batchSize)];
    const v = VARIANTS.find((v) => v.name === name);
    if (v && variantFits(v, shapes[slot], maxRows, maxTex)) known[slot] = v.name;
    else missing.push(slot);
  }
  return { known, missing };
}

/**
 * Times every variant that fits each of `slots` on `trainer` (see
 * `pickFastest`), switches the trainer to the fastest, and remembers the
 * choices in the cache at `cachePath` (when not `null`; a failed write is
 * ignored). Returns a note per slot for the log.
 */
export async function tuneSlots(
  gpu: Gpu,
  trainer: FastTrainer,
  slots: readonly Slot[],
  batchSize: number,
  cachePath: string | null,
): Promise<Partial<Record<Slot, TuneResult>>> {
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  const results: Partial<Record<Slot, TuneResult>> = {};
  for (const slot of slots) {
    const candidates = VARIANTS.filter((v) =>
      variantFits(v, trainer.shapes[slot], trainer.maxRows, maxTex)
    );
    const result = await pickFastest(
      candidates,
      (v, rows, reps) => trainer.timeVariant(slot, v, rows, reps),
      batchSize,
      Math.min(TUNE_SCREEN_ROWS, batchSize),
    );
    trainer.setVariant(slot, result.best);
    results[slot] = result;
  }
  if (cachePath && slots.length > 0) {
    const cache = readTuneCache(cachePath);
    const entries = cache[gpu.description] ?? {};
    for (const slot of slots) {
      entries[shapeKey(trainer.shapes[slot], batchSize)] = trainer.plan[slot].name;
    }
    cache[gpu.description] = entries;
    writeTuneCache(cachePath, cache);
  }
  return results;
}

/** Options of `trainFast` beyond `TrainOptions`. */
export interface FastOptions extends TrainOptions {
  /** The tuning cache; `null` neither reads nor writes one. Default `TUNE_CACHE_PATH`. */
  tuneCachePath?: string | null;
}

/**
 * Trains the MLP on the GPU the fast way and returns the summary. Logs one
 * line per epoch and the test accuracy, like the slow trainer.
 */
export async function trainFast(
  config: TrainConfig,
  opts: FastOptions = {},
): Promise<TrainSummary> {
  const run = await prepareRun(config, opts);
  const { gpu, data, nTrain, nTest, params, log } = run;
  const engineData: EngineData = { ...data, nTrain, nTest };
  const cachePath = opts.tuneCachePath === undefined ? TUNE_CACHE_PATH : opts.tuneCachePath;
  const { batchSize } = config;
  const maxRows = fastTrainerRows(batchSize, nTest);
  const { known, missing } = config.noTune
    ? { known: {}, missing: [] }
    : cachedPlan(gpu, slotShapes(params.sizes), batchSize, maxRows, cachePath);
  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  let profiling = false; // not while tuning: from the first epoch on
  const trainer = await createFastTrainer(gpu, params, engineData, {
    batchSize,
    lr: config.lr,
    plan: known,
    tuneSlots: missing,
    // The profile covers the training epochs only (as TrainSummary.profile says).
    passTimestamps: profiler.enabled
      ? (k, flops) => profiling ? profiler.passTimestamps(k, flops) : undefined
      : undefined,
    afterSubmit: profiler.enabled ? () => profiler.collect() : undefined,
  });
  const tuned = await tuneSlots(gpu, trainer, missing, batchSize, cachePath);
  profiling = profiler.enabled;
  const how = (s: Slot) => {
    if (config.noTune) return "default";
    const t = tuned[s];
    if (!t) return "cached";
    const ms = t.ms[trainer.plan[s].name];
    return ms === undefined ? "tuned" : `tuned, ${ms.toFixed(1)} ms`;
  };
  log(
    `matmul variants: ${SLOTS.map((s) => `${s} ${trainer.plan[s].name} (${how(s)})`).join(", ")}`,
  );
  const epochs: EpochResult[] = [];
  let trainMs = 0;
  const tty = Deno.stderr.isTerminal();
  try {
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      const progress = epochProgress(epoch, trainer.batches.length);
      const t0 = performance.now();
      const total = await trainer.runEpoch(tty ? (done) => progress.tick(done) : undefined);
      const ms = performance.now() - t0;
      progress.clear();
      trainMs += ms;
      const result = { epoch, loss: total / nTrain, ms };
      epochs.push(result);
      log(formatEpoch(result));
    }
    let profile: ProfileReport | undefined;
    if (profiling) {
      await profiler.collect();
      profile = profiler.report(trainMs);
      profiling = false;
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
    if (profile) log(formatProfile(profile));
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
      ...(profile ? { profile } : {}),
    };
  } finally {
    trainer.destroy();
    profiler.destroy();
  }
}
