/**
 * The MLP as the run loop (fast/run.ts) sees it: its starting weights
 * (`--init`), its file (safetensors, `encodeMlp`), and its engine, made by
 * the tuner (fast/mlp/tuner.ts's `createMlpEngineTuned`: the matmul variant
 * of each slot taken from the tune cache, timed on a GPU or with `--tune`,
 * or the adapter type's default). The tune cache is fast/files.ts's file.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { UserError } from "../../shared/io/errors.ts";
import { checkMlpLimits } from "../../shared/gpu/limits.ts";
import { initialParams, type MlpParams, mlpSizes } from "../../shared/model/mlp.ts";
import { decodeMlp, encodeMlp, mlpNamedTensors } from "../../shared/io/safetensors.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import { readTuneCache, TUNE_CACHE_PATH, writeTuneCache } from "../files.ts";
import { activationRows } from "./buffers.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createMlpEngineTuned, type TuneCacheFile } from "./tuner.ts";

/** Options of the MLP's run beyond `RunOptions`. */
export interface MlpRunOptions extends RunOptions<MlpParams> {
  /** The tuning cache; `null` neither reads nor writes one. Default `TUNE_CACHE_PATH`. */
  tuneCachePath?: string | null;
}

/** Trains the MLP as `deno task fast` does (see fast/run.ts) and returns the summary. */
export function trainMlp(config: TrainConfig, opts: MlpRunOptions = {}): Promise<TrainSummary> {
  return runModel(mlpModel(opts.tuneCachePath, config.hidden), config, opts);
}

/**
 * The MLP `Model`, with the tune cache at `tuneCachePath` (`null`: none).
 * `hidden` (`--hidden`): the hidden layers a file given to `--load` or
 * `--resume` must have; unset, a file's are taken as they are (its input
 * and output widths must still be the data's).
 */
export function mlpModel(
  tuneCachePath: string | null = TUNE_CACHE_PATH,
  hidden?: readonly number[],
): Model<MlpParams> {
  const cache: TuneCacheFile | null = tuneCachePath === null ? null : {
    read: () => readTuneCache(tuneCachePath),
    write: (known) => writeTuneCache(tuneCachePath, known),
  };
  return {
    name: "mlp",
    title: "MLP",
    tensors: mlpNamedTensors,
    encode: encodeMlp,
    decode(bytes, file) {
      const decoded = decodeMlp(bytes, file);
      const { sizes } = decoded.params, want = mlpSizes(sizes.slice(1, -1));
      if (hidden && sizes.join() !== mlpSizes(hidden).join()) {
        throw new UserError(
          `${file}: model has layers ${sizes.join("→")}, --hidden ${hidden.join(",")} makes ` +
            `${mlpSizes(hidden).join("→")} (drop --hidden to take the file's)`,
        );
      }
      if (sizes.join() !== want.join()) {
        throw new UserError(
          `${file}: model has layers ${sizes.join("→")}, the data needs ${want[0]} inputs and ` +
            `${want.at(-1)} outputs`,
        );
      }
      return decoded;
    },
    initialParams: (config) =>
      initialParams(config.init ?? "original", config.seed, mlpSizes(config.hidden)),
    checkDevice: (gpu, config, nTest) =>
      checkMlpLimits(
        gpu.device.limits,
        mlpSizes(config.hidden),
        activationRows(config.batchSize, nTest),
      ),
    initName: (config) => config.init ?? "original",
    createEngine: (setup) => createMlpEngineTuned(setup, cache),
  };
}
