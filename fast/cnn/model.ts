/**
 * The CNN as the run loop (fast/run.ts) sees it (`--model cnn`): its
 * starting weights (drawn from `--seed`, for the data's image size and
 * classes; a size it cannot take is refused in one line), its file
 * (safetensors, `encodeCnn`), its engine (fast/cnn/engine.ts, its variants
 * chosen by fast/cnn/tuner.ts), and its first layer's filters under the
 * `--plot` chart.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { UserError } from "../../shared/io/errors.ts";
import {
  type CnnParams,
  type CnnShape,
  cnnShapeFor,
  cnnSizeProblem,
  initCnnParams,
  MNIST_CNN,
} from "../../shared/model/cnn.ts";
import { checkModelFits } from "../../shared/data/dataset.ts";
import { filtersSvg } from "../../shared/io/report.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createCnnEngineTuned } from "./tuner.ts";
import { TUNE_CACHE_PATH, tuneCacheFile } from "../files.ts";
import { cnnNamedTensors, decodeCnn, encodeCnn } from "../../shared/io/safetensors.ts";

/** Options of the CNN's run beyond `RunOptions`. */
interface CnnRunOptions extends RunOptions<CnnParams> {
  /**
   * The network's kernel and channels when `params` is not given (default
   * `MNIST_CNN`'s); its height, width and classes must be the data's.
   */
  shape?: CnnShape;
  /** The tuning cache; `null` neither reads nor writes one. Default `TUNE_CACHE_PATH`. */
  tuneCachePath?: string | null;
}

/** Trains the CNN as `deno task fast --model cnn` does (see fast/run.ts). */
export function trainCnn(config: TrainConfig, opts: CnnRunOptions = {}): Promise<TrainSummary> {
  return runModel(cnnModel(opts.shape, opts.tuneCachePath), config, opts);
}

/**
 * The CNN `Model`, with the tune cache at `tuneCachePath` (`null`: none;
 * fast/cnn/tuner.ts chooses its convolutions' variants). Its starting
 * weights are `shape`'s network (given: it must fit the data) or
 * `MNIST_CNN`'s kernels and channels on the data's image size and classes.
 * A file (--load, --resume) brings its own image size and classes (checked
 * against the data by the run loop), and must have this model's kernels and
 * channels.
 */
export function cnnModel(
  shape?: CnnShape,
  tuneCachePath: string | null = TUNE_CACHE_PATH,
): Model<CnnParams> {
  const cache = tuneCacheFile(tuneCachePath);
  return {
    name: "cnn",
    title: "CNN",
    tensors: cnnNamedTensors,
    encode: (params, _image, extra, more) => encodeCnn(params, extra, more),
    decode: (bytes, file) => {
      // Any image size and classes; the kernels and channels are this model's.
      const decoded = decodeCnn(bytes, file);
      const [has, needs] = [decoded.params.shape, shape ?? MNIST_CNN];
      const layers = (s: CnnShape) =>
        `${s.kernel}x${s.kernel} kernels, ${s.c1} and ${s.c2} channels`;
      if (layers(has) !== layers(needs)) {
        throw new UserError(
          `${file}: the CNN has ${layers(has)}; this program needs ${layers(needs)}`,
        );
      }
      return decoded;
    },
    initialParams: (config, data) => {
      if (shape) checkModelFits(shape, "the CNN's shape", data);
      const s = shape ?? cnnShapeFor(data);
      const why = cnnSizeProblem(s);
      if (why) throw new UserError(`${data.files?.trainImages ?? data.source}: ${why}`);
      return initCnnParams(config.seed, s);
    },
    createEngine: (setup) => createCnnEngineTuned(setup, cache),
    chartExtra: (p) => filtersSvg(p.weights[0], p.shape.kernel, p.shape.c1),
  };
}
