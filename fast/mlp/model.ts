/**
 * The MLP as the run loop (fast/run.ts) sees it: its starting weights
 * (`--init`), its file (safetensors, `encodeMlp`), and how its engine is
 * made — the matmul variant of each slot taken from the tune cache, timed
 * on a GPU (or with `--tune`), or the adapter type's default.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { gpuChecked } from "../../shared/gpu/device.ts";
import { initialParams, LAYER_SIZES, type MlpParams } from "../../shared/model/mlp.ts";
import { decodeMlp, encodeMlp, mlpNamedTensors } from "../../shared/io/safetensors.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import { type EngineSetup, type Model, runModel, type RunOptions } from "../run.ts";
import { createMlpEngine, type MlpEngine, TUNE_SCREEN_ROWS } from "./engine.ts";
import { activationRows } from "./buffers.ts";
import { type Slot, SLOTS, slotShapes } from "./matmul.ts";
import { cachedPlan, TUNE_CACHE_PATH, tuneSlots } from "./tuner.ts";

/** Options of the MLP's run beyond `RunOptions`. */
export interface MlpRunOptions extends RunOptions<MlpParams> {
  /** The tuning cache; `null` neither reads nor writes one. Default `TUNE_CACHE_PATH`. */
  tuneCachePath?: string | null;
}

/** Trains the MLP as `deno task fast` does (see fast/run.ts) and returns the summary. */
export function trainMlp(config: TrainConfig, opts: MlpRunOptions = {}): Promise<TrainSummary> {
  return runModel(mlpModel(opts.tuneCachePath), config, opts);
}

/** The MLP `Model`, with the tune cache at `tuneCachePath` (`null`: none). */
export function mlpModel(tuneCachePath: string | null = TUNE_CACHE_PATH): Model<MlpParams> {
  return {
    name: "mlp",
    title: "MLP",
    tensors: mlpNamedTensors,
    encode: encodeMlp,
    decode: (bytes, file) => decodeMlp(bytes, file, LAYER_SIZES),
    initialParams: (config) => initialParams(config.init ?? "original", config.seed),
    initName: (config) => config.init ?? "original",
    createEngine: (setup) => createMlpEngineTuned(setup, tuneCachePath),
  };
}

/**
 * The MLP engine with a matmul variant per slot: the cache's, else timed on
 * a GPU (or with `--tune`), else the adapter type's default; then each chosen
 * kernel run once, so that a CPU adapter's compile on first use is start-up
 * time rather than part of epoch 1. Logs which variants run and why.
 */
async function createMlpEngineTuned(setup: EngineSetup<MlpParams>, cachePath: string | null) {
  const { gpu, config, nTrain, nTest, log } = setup;
  const { batchSize } = config;
  const maxRows = activationRows(batchSize, nTest);
  // Timing the variants: on GPUs, or with --tune; a cached choice is used in either case.
  const timing = config.tune || !gpu.software;
  const cached = config.noTune
    ? { known: {}, missing: [] }
    : cachedPlan(gpu, slotShapes(setup.params.sizes), batchSize, maxRows, cachePath);
  const { known } = cached;
  const missing = timing ? cached.missing : [];
  const smaller = `--batch-size ${batchSize} (a smaller --batch-size needs less GPU memory)`;
  if (missing.length > 0) {
    log(
      `compiling and timing the matmul variants for ${missing.join(", ")} on this adapter ` +
        `(once: remembered afterwards; minutes on a CPU adapter with a cold shader cache)`,
    );
  }
  // When set-up fails, what was made is freed before the error goes on.
  let made: MlpEngine | undefined;
  try {
    const engine = await gpuChecked(
      gpu.device,
      `setting up the fast trainer for ${nTrain} images at ${smaller}`,
      async () =>
        made = await createMlpEngine(gpu, setup.params, { ...setup.data, nTrain, nTest }, {
          batchSize,
          lr: config.lr,
          plan: known,
          tuneSlots: missing,
          optimizer: setup.optimizer,
          shuffle: setup.shuffle,
          overlapEpochs: setup.overlap,
          passTimestamps: setup.passTimestamps,
          afterSubmit: setup.afterSubmit,
        }),
    );
    const tuned = await gpuChecked(
      gpu.device,
      `timing the matmul variants at ${smaller}`,
      async () => {
        const results = await tuneSlots(gpu, engine, missing, batchSize, cachePath, log);
        for (const slot of SLOTS) {
          if (!results[slot]) {
            // An lr-0 step entry: the weights are untouched.
            await engine.timeVariant(
              slot,
              engine.plan[slot],
              Math.min(TUNE_SCREEN_ROWS, batchSize),
            );
          }
        }
        return results;
      },
    );
    const how = (s: Slot) => {
      if (config.noTune || (!timing && !known[s])) return "default";
      const t = tuned[s];
      if (!t) return "cached";
      const ms = t.ms[engine.plan[s].name];
      return ms === undefined ? "tuned" : `tuned, ${ms.toFixed(1)} ms`;
    };
    log(
      `matmul variants: ${SLOTS.map((s) => `${s} ${engine.plan[s].name} (${how(s)})`).join(", ")}`,
    );
    return engine;
  } catch (err) {
    made?.destroy();
    throw err;
  }
}
