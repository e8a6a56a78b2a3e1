/**
 * The float64 CPU reference (shared/model/mlp.ts) trained over an epoch's
 * batches: the oracle the benchmarks check every trainer's epoch loss against.
 *
 * @module
 */

import {
  batchRanges,
  cloneParams,
  type MlpParams,
  pixelsToFloats,
  trainStep,
} from "../shared/model/mlp.ts";

/** Images and labels, as in `MnistData`. */
export interface TrainImages {
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
}

/**
 * Epoch-1 mean loss (sum over the images of −log p_y, each taken during its
 * own step, over `nTrain`) of the CPU reference on `batchRanges(nTrain,
 * batchSize)` from `params` (left unchanged).
 */
export function referenceEpochLoss(
  data: TrainImages,
  nTrain: number,
  batchSize: number,
  lr: number,
  params: MlpParams,
): number {
  const p = cloneParams(params);
  let sum = 0;
  for (const [start, count] of batchRanges(nTrain, batchSize)) {
    const x = pixelsToFloats(data.trainImages, start, count);
    sum += count * trainStep(p, x, data.trainLabels.subarray(start, start + count), lr);
  }
  return sum / nTrain;
}
