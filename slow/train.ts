/**
 * The slow trainer: the MLP trained on the GPU the way a learner first writes
 * it. Correct, readable, and honestly slow.
 *
 * Every step of the math is its own WGSL kernel (`shared/kernels/slow/<name>.wgsl`)
 * and its own dispatch, and every dispatch goes through {@linkcode dispatch},
 * which builds everything from scratch, submits, and waits for the GPU. Each
 * deliberate inefficiency is named in a comment where it happens (search for
 * "SLOW:"); README.md ("The math, derived" and "One batch through the slow
 * trainer") derives the math and lists them all.
 *
 * The one sane thing: weights and biases live in GPU buffers for the whole
 * run ({@linkcode SlowTrainer}); they are read back only when asked.
 *
 * `dispatch` and `SlowTrainer` live in slow/trainer.ts (no command line or
 * file access there, so that the web page runs them too) and are exported
 * from here as well; this file adds `trainSlow`, the command line's run.
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { checkMlpLimits } from "../shared/gpu/limits.ts";
import { formatProfile, GpuProfiler } from "../shared/gpu/profiler.ts";
import { batchRanges, initialParams, mlpSizes } from "../shared/model/mlp.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../shared/io/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../shared/io/prepare.ts";
import { SlowTrainer } from "./trainer.ts";

export {
  dispatch,
  LINEAR_WORKGROUP,
  linearGroups,
  MATMUL_TILE,
  matmulGroups,
  shapeUniform,
  type SlowKernel,
  SlowTrainer,
} from "./trainer.ts";

/**
 * Trains the MLP with the slow trainer and tests it: reports one line per epoch
 * and the test accuracy, returns the summary (`--json` prints it).
 */
export async function trainSlow(
  config: TrainConfig,
  opts: TrainOptions = {},
): Promise<TrainSummary> {
  const run = await prepareRun(config, opts);
  const { gpu, data, nTrain, nTest, report } = run;
  // The layer sizes: the data's pixels in, --hidden, its classes out.
  const sizes = opts.params?.sizes ?? mlpSizes(config.hidden, data);
  try {
    checkMlpLimits(gpu.device.limits, sizes, config.batchSize, "setting up the slow trainer: ");
  } catch (err) {
    if (!opts.gpu) gpu.device.destroy();
    throw err;
  }
  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  const params = opts.params ?? initialParams(config.init ?? "original", config.seed, sizes);
  const trainer = new SlowTrainer(gpu, params, profiler);
  let trainMs = 0;
  try {
    const batches = batchRanges(nTrain, config.batchSize);
    const epochs: EpochResult[] = [];
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      const progress = epochProgress(epoch, batches.length);
      const t0 = performance.now();
      let lossSum = 0;
      for (let b = 0; b < batches.length; b++) {
        const [start, count] = batches[b];
        const losses = await trainer.step(
          data.trainImages,
          data.trainLabels,
          start,
          count,
          config.lr,
        );
        for (const v of losses) lossSum += v;
        progress.tick(b + 1);
      }
      progress.clear();
      const result: EpochResult = { epoch, loss: lossSum / nTrain, ms: performance.now() - t0 };
      report(formatEpoch(result));
      epochs.push(result);
      trainMs += result.ms;
      await profiler.collect(); // outside the epoch's clock
    }
    // The profile covers training only: the test pass below is not profiled.
    const profile = config.profile ? profiler.report(trainMs) : undefined;
    profiler.reset();

    const t0 = performance.now();
    let correct = 0;
    for (const [start, count] of batchRanges(nTest, config.batchSize)) {
      const pred = await trainer.predict(data.testImages, start, count);
      for (let i = 0; i < count; i++) if (pred[i] === data.testLabels[start + i]) correct++;
    }
    const test = {
      accuracy: nTest > 0 ? correct / nTest : 0,
      correct,
      total: nTest,
      ms: performance.now() - t0,
    };
    report(formatTest(test));
    if (profile) report(formatProfile(profile));
    return {
      trainer: "slow",
      adapter: gpu.description,
      data: { source: data.source, train: nTrain, test: nTest },
      config: {
        epochs: config.epochs,
        batchSize: config.batchSize,
        lr: config.lr,
        seed: config.seed,
        init: config.init ?? "original",
        ...(config.hidden ? { hidden: config.hidden } : {}),
      },
      epochs,
      test,
      ...(profile ? { profile } : {}),
    };
  } finally {
    profiler.destroy();
    trainer.destroy();
    // A device this run opened itself is closed with it; a caller's is left open.
    if (!opts.gpu) gpu.device.destroy();
  }
}
