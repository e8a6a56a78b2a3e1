/**
 * The MLP as the run loop (fast/run.ts) sees it: its starting weights
 * (`--init`; the data's pixels in, its classes out), its file (safetensors, `encodeMlp`), and its engine, made by
 * the tuner (fast/mlp/tuner.ts's `createMlpEngineTuned`: the matmul variant
 * of each slot taken from the tune cache, timed on a GPU or with `--tune`,
 * or the adapter type's default). The tune cache is fast/files.ts's file.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { initialParams, type MlpParams, mlpSizes } from "../../shared/model/mlp.ts";
import { decodeMlp, encodeMlp, mlpNamedTensors } from "../../shared/io/safetensors.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import { UserError } from "../../shared/io/errors.ts";
import { readTuneCache, TUNE_CACHE_PATH, writeTuneCache } from "../files.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createMlpEngineTuned, type TuneCacheFile } from "./tuner.ts";

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
  const cache: TuneCacheFile | null = tuneCachePath === null ? null : {
    read: () => readTuneCache(tuneCachePath),
    write: (known) => writeTuneCache(tuneCachePath, known),
  };
  return {
    name: "mlp",
    title: "MLP",
    tensors: mlpNamedTensors,
    encode: (params, image, extra, more) => encodeMlp(params, extra, more, image),
    decode: (bytes, file) => {
      // Any image size and classes; the hidden layers are the original's (512, 128).
      const decoded = decodeMlp(bytes, file);
      const want = mlpSizes(decoded.shape);
      if (decoded.params.sizes.join(",") !== want.join(",")) {
        throw new UserError(
          `${file}: model has layers ${decoded.params.sizes.join("→")}, this program needs ` +
            `${want.join("→")}`,
        );
      }
      return decoded;
    },
    initialParams: (config, shape) =>
      initialParams(config.init ?? "original", config.seed, mlpSizes(shape)),
    initName: (config) => config.init ?? "original",
    createEngine: (setup) => {
      // The engine packs 4 pixels per u32 word (fast/mlp/buffers.ts).
      const { height, width } = setup.data;
      if ((height * width) % 4 !== 0) {
        throw new UserError(
          `${setup.data.files?.trainImages ?? setup.data.source}: the fast MLP packs 4 pixels ` +
            `per word and cannot take ${height}x${width} images (${height * width} pixels, not ` +
            `a multiple of 4); the slow trainer takes any size`,
        );
      }
      return createMlpEngineTuned(setup, cache);
    },
  };
}
