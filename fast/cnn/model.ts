/**
 * The CNN as the run loop (fast/run.ts) sees it (`--model cnn`): its
 * starting weights (drawn from `--seed`), its file (safetensors,
 * `encodeCnn`), its engine (fast/cnn/engine.ts), and its first layer's
 * filters under the `--plot` chart.
 *
 * @module
 */

import type { TrainConfig } from "../../shared/io/cli.ts";
import { UserError } from "../../shared/io/errors.ts";
import { gpuChecked } from "../../shared/gpu/device.ts";
import { type CnnParams, type CnnShape, initCnnParams, MNIST_CNN } from "../../shared/model/cnn.ts";
import { filtersSvg } from "../../shared/io/report.ts";
import type { TrainSummary } from "../../shared/io/summary.ts";
import type { Engine } from "../engine.ts";
import { type Model, runModel, type RunOptions } from "../run.ts";
import { createCnnEngine } from "./engine.ts";
import { cnnNamedTensors, decodeCnn, encodeCnn } from "../../shared/io/safetensors.ts";

/** Options of the CNN's run beyond `RunOptions`. */
interface CnnRunOptions extends RunOptions<CnnParams> {
  /** The network's sizes when `params` is not given; default `MNIST_CNN`. */
  shape?: CnnShape;
}

/** Trains the CNN as `deno task fast --model cnn` does (see fast/run.ts). */
export function trainCnn(config: TrainConfig, opts: CnnRunOptions = {}): Promise<TrainSummary> {
  return runModel(cnnModel(opts.params?.shape ?? opts.shape ?? MNIST_CNN), config, opts);
}

/** The CNN `Model` of `shape` (a file of another shape is refused). */
export function cnnModel(shape: CnnShape = MNIST_CNN): Model<CnnParams> {
  return {
    name: "cnn",
    title: "CNN",
    tensors: cnnNamedTensors,
    encode: encodeCnn,
    decode: (bytes, file) => decodeCnn(bytes, file, shape),
    initialParams: (config) => initCnnParams(config.seed, shape),
    async createEngine({ gpu, params, data, nTrain, nTest, config, optimizer, shuffle, ...s }) {
      const pixels = params.shape.height * params.shape.width;
      if (data.trainImages.length !== data.trainLabels.length * pixels) {
        throw new UserError(
          `training images are ${data.trainImages.length / data.trainLabels.length} bytes each; ` +
            `the CNN takes ${params.shape.height}×${params.shape.width}`,
        );
      }
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
              train: { images: data.trainImages, labels: data.trainLabels, n: nTrain },
              test: { images: data.testImages, labels: data.testLabels, n: nTest },
              passTimestamps: s.passTimestamps,
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
