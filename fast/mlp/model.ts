/**
 * The MLP as the run loop (fast/run.ts) sees it: its starting weights
 * (`--init`; the data's pixels in, `--hidden`, its classes out), its file
 * (safetensors, `encodeMlp`), and its engine, made by the tuner
 * (fast/mlp/variants/tuner.ts's `createMlpEngineTuned`: the matmul variant
 * of each slot taken from the tune cache, timed on a GPU or with `--tune`,
 * or the adapter type's default). The tune cache is fast/files.ts's file.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { checkMlpLimits } from "../../shared/gpu/limits.ts";
import { DEFAULT_HIDDEN, initialParams, type MlpParams, mlpSizes } from "../../shared/model/mlp.ts";
import { decodeMlp, encodeMlp, mlpNamedTensors } from "../../shared/io/safetensors.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import { UserError } from "../../shared/io/errors.ts";
import { TUNE_CACHE_PATH, tuneCacheFile } from "../files.ts";
import { activationRows } from "./buffers.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createMlpEngineTuned } from "./variants/tuner.ts";

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
 * `hidden` (`--hidden`; unset: `DEFAULT_HIDDEN`): the hidden layers the run
 * trains, which a file given to `--load` or `--resume` must have.
 */
export function mlpModel(
  tuneCachePath: string | null = TUNE_CACHE_PATH,
  hidden?: readonly number[],
): Model<MlpParams> {
  const cache = tuneCacheFile(tuneCachePath);
  return {
    name: "mlp",
    title: "MLP",
    tensors: mlpNamedTensors,
    encode: (params, image, extra, more) => encodeMlp(params, extra, more, image),
    decode(bytes, file) {
      // Any image size and classes (the file's); the hidden layers must be the run's.
      const decoded = decodeMlp(bytes, file);
      const { sizes } = decoded.params;
      const want = mlpSizes(hidden, decoded.shape);
      if (sizes.join() !== want.join()) {
        const flag = `--hidden ${(hidden ?? DEFAULT_HIDDEN).join(",")}${
          hidden ? "" : " (the default)"
        }`;
        const sameEnds = sizes[0] === want[0] && sizes.at(-1) === want.at(-1);
        const fix = sameEnds && sizes.length > 2
          ? `: give --hidden ${sizes.slice(1, -1).join(",")}`
          : "";
        throw new UserError(
          `${file}: model has layers ${sizes.join("→")}, ${flag} makes ${want.join("→")}${fix}`,
        );
      }
      return decoded;
    },
    initialParams: (config, data) =>
      initialParams(config.init ?? "original", config.seed, mlpSizes(config.hidden, data)),
    checkDevice: (gpu, config, data, nTest, params) =>
      checkMlpLimits(
        gpu.device.limits,
        params?.sizes ?? mlpSizes(config.hidden, data),
        activationRows(config.batchSize, nTest),
        "setting up the fast trainer: ",
      ),
    initName: (config) => config.init ?? "original",
    createEngine: (setup) => createMlpEngineTuned(setup, cache),
  };
}
