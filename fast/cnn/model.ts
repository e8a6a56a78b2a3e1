/**
 * The CNN as the run loop (fast/run.ts) sees it (`--model cnn`): its
 * starting weights (drawn from `--seed`, for the data's image size and
 * classes; a size it cannot take is refused in one line), its file
 * (safetensors, `encodeCnn`), its engine (fast/cnn/engine.ts), and its first layer's
 * filters under the `--plot` chart.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { UserError } from "../../shared/io/errors.ts";
import { gpuChecked } from "../../shared/gpu/device.ts";
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
import type { Engine } from "../engine.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createCnnEngine } from "./engine.ts";
import { cnnNamedTensors, decodeCnn, encodeCnn } from "../../shared/io/safetensors.ts";

/** Options of the CNN's run beyond `RunOptions`. */
interface CnnRunOptions extends RunOptions<CnnParams> {
  /**
   * The network's kernel and channels when `params` is not given (default
   * `MNIST_CNN`'s); its height, width and classes must be the data's.
   */
  shape?: CnnShape;
}

/** Trains the CNN as `deno task fast --model cnn` does (see fast/run.ts). */
export function trainCnn(config: TrainConfig, opts: CnnRunOptions = {}): Promise<TrainSummary> {
  return runModel(cnnModel(opts.shape), config, opts);
}

/**
 * The CNN `Model`. Its starting weights are `shape`'s network (given: it
 * must fit the data) or `MNIST_CNN`'s kernels and channels on the data's
 * image size and classes. A file (--load, --resume) brings its own image
 * size and classes (checked against the data by the run loop), and must have
 * this model's kernels and channels.
 */
export function cnnModel(shape?: CnnShape): Model<CnnParams> {
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
    async createEngine({ gpu, params, data, nTrain, config, optimizer, shuffle, ...s }) {
      const { batchSize } = config;
      // A device that refuses (out of memory, a limit) is one line that says what was asked of
      // it; what was made is freed before the error goes on.
      let made: Engine<CnnParams> | undefined;
      try {
        return await gpuChecked(
          gpu.device,
          `setting up the CNN for ${nTrain} images at --batch-size ${batchSize} ` +
            `(a smaller --batch-size needs less GPU memory)`,
          async () =>
            made = await createCnnEngine(gpu.device, {
              params,
              batchSize,
              lr: config.lr,
              optimizer,
              shuffle,
              data,
              passTimestamps: s.passTimestamps,
              software: gpu.software,
            }),
        );
      } catch (err) {
        made?.destroy();
        throw err;
      }
    },
    chartExtra: (p) => filtersSvg(p.weights[0], p.shape.kernel, p.shape.c1),
  };
}
