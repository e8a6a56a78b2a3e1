/**
 * Slow beside fast in the page: the same few training steps run the naive
 * way (slow/trainer.ts: every kernel its own pipeline, submit and wait) and
 * with the fast engine (all steps in one command buffer, one wait), from the
 * same weights on the same images, timed per step.
 *
 * @module
 */

import type { Gpu } from "../../shared/gpu/device.ts";
import { type Dataset, limitDataset } from "../../shared/data/dataset.ts";
import { cloneParams, type MlpParams } from "../../shared/model/mlp.ts";
import { SlowTrainer } from "../../slow/trainer.ts";
import { createMlpEngine } from "../mlp/engine.ts";

/** What `compareSlowFast` measured. */
export interface Comparison {
  steps: number;
  batchSize: number;
  /** Milliseconds of each slow step (upload, ~25 dispatches each awaited, loss readback). */
  slowMs: number[];
  /** Milliseconds per step of the fast engine: all steps in one submit, one readback. */
  fastMsPerStep: number;
  /** The fast engine's one-off set-up (buffers, pipelines), not in `fastMsPerStep`. */
  fastSetupMs: number;
  /** Mean loss of each step, slow and fast: the same math, so the same numbers. */
  slowLosses: number[];
  fastLosses: number[];
}

const mean = (xs: Float32Array) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Runs `steps` SGD steps of `batchSize` images from `params` (not changed)
 * both ways; see `Comparison`. The fast engine runs them once to warm up
 * (its kernels' first use), then again from the same weights, timed.
 */
export async function compareSlowFast(
  gpu: Gpu,
  data: Dataset,
  params: MlpParams,
  batchSize: number,
  lr: number,
  steps: number,
): Promise<Comparison> {
  const n = steps * batchSize;
  const slow = new SlowTrainer(gpu, cloneParams(params));
  const slowMs: number[] = [], slowLosses: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const losses = await slow.step(
        data.trainImages,
        data.trainLabels,
        i * batchSize,
        batchSize,
        lr,
      );
      slowMs.push(performance.now() - t0);
      slowLosses.push(mean(losses));
    }
  } finally {
    slow.destroy();
  }
  const engineData = limitDataset(data, n, 0);
  const t0 = performance.now();
  const warm = await createMlpEngine(gpu, params, engineData, { batchSize, lr });
  warm.runSteps(0, steps);
  await warm.readLosses(0, 1);
  warm.destroy();
  const fast = await createMlpEngine(gpu, params, engineData, { batchSize, lr });
  const fastSetupMs = performance.now() - t0;
  try {
    const t1 = performance.now();
    fast.runSteps(0, steps);
    const losses = await fast.readLosses(0, n);
    const fastMsPerStep = (performance.now() - t1) / steps;
    const fastLosses = Array.from(
      { length: steps },
      (_, i) => mean(losses.subarray(i * batchSize, (i + 1) * batchSize)),
    );
    return { steps, batchSize, slowMs, fastMsPerStep, fastSetupMs, slowLosses, fastLosses };
  } finally {
    fast.destroy();
  }
}
