/**
 * What both trainers share around the training itself: preparing a run
 * (the data with its limits, the batch size checked, the device) and the
 * command-line entry point. The model's weights are each trainer's business.
 *
 * @module
 */

import { helpText, parseTrainArgs, type TrainConfig } from "./cli.ts";
import { runMain, UsageError } from "./errors.ts";
import { type Gpu, openGpu, type OpenGpuOptions } from "../gpu/device.ts";
import type { MlpParams } from "../model/mlp.ts";
import { loadMnist } from "../data/mnist.ts";
import { type Dataset, limitDataset } from "../data/dataset.ts";
import { formatEpoch, formatTest, type TrainSummary } from "./summary.ts";

/** Things a caller (a test, a benchmark) may hand a trainer instead of having it make them. */
export interface TrainOptions {
  /** An open device to reuse. */
  gpu?: Gpu;
  /** Data already loaded (limits in the config still apply). */
  data?: Dataset;
  /** Starting weights (the slow trainer's default: `initialParams(config.init ?? "original", config.seed)`). */
  params?: MlpParams;
  /** Notices for people: the adapter, resuming, files written (default: stderr). */
  log?: (line: string) => void;
  /**
   * The results: each epoch's line, the test accuracy, the confusion matrix and
   * the profile (default: stdout, so `deno task fast > run.log` keeps them; stderr
   * with `--json`, whose stdout holds the JSON alone; `log` when only `log` is given).
   */
  report?: (line: string) => void;
}

/** Everything a run needs, made ready (the model's weights are the trainer's business). */
export interface PreparedRun {
  gpu: Gpu;
  /** The data, limits applied: its arrays hold exactly `nTrain` and `nTest` images. */
  data: Dataset;
  /** Training and test set sizes after limits. */
  nTrain: number;
  nTest: number;
  log: (line: string) => void;
  report: (line: string) => void;
}

/** Loads data, applies limits, checks the batch size, opens the GPU. */
export async function prepareRun(
  config: TrainConfig,
  opts: Pick<TrainOptions, "gpu" | "data" | "log" | "report">,
  gpuOptions: OpenGpuOptions = {},
): Promise<PreparedRun> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const report = opts.report ?? opts.log ??
    ((line: string) => config.json ? console.error(line) : console.log(line));
  const data = limitDataset(
    opts.data ??
      await loadMnist({
        dataDir: config.dataDir,
        trainLimit: config.trainLimit,
        testLimit: config.testLimit,
      }),
    config.trainLimit,
    config.testLimit,
  );
  const nTrain = data.trainLabels.length;
  const nTest = data.testLabels.length;
  if (config.batchSize > nTrain) {
    throw new UsageError(
      `--batch-size ${config.batchSize} is larger than the training set (${nTrain} images)`,
    );
  }
  const gpu = opts.gpu ?? await openGpu({ timestamps: config.profile, ...gpuOptions });
  if (!opts.gpu) log(`adapter: ${gpu.description}`);
  return { gpu, data, nTrain, nTest, log, report };
}

/**
 * The whole command line of a trainer: parse flags, train, print. `train` is
 * the trainer's exported function, so the CLI runs the code tests run.
 */
export function trainerMain(
  name: "slow" | "fast",
  train: (config: TrainConfig) => Promise<TrainSummary>,
): Promise<never> {
  return runMain(async () => {
    const config = parseTrainArgs(Deno.args, name);
    if (config === "help") {
      console.log(helpText(name));
      return;
    }
    const summary = await train(config);
    if (config.json) console.log(JSON.stringify(summary));
  });
}

export { formatEpoch, formatTest };
