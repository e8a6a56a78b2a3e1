/** Test data made in code: synthetic digits for the fast trainer's engine. */

import type { EngineData } from "../fast/engine.ts";
import { mulberry32 } from "../shared/rng.ts";

/** `n` synthetic digits: random bytes with many zeros (like MNIST), labels 0–9. */
export function synthetic(n: number, seed: number): { images: Uint8Array; labels: Uint8Array } {
  const rand = mulberry32(seed);
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < images.length; i++) images[i] = rand() < 0.6 ? 0 : Math.floor(rand() * 256);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = Math.floor(rand() * 10);
  return { images, labels };
}

/** Engine data of `nTrain` training and `nTest` test synthetic digits. */
export function engineData(nTrain: number, nTest: number, seed = 7): EngineData {
  const tr = synthetic(nTrain, seed), te = synthetic(nTest, seed + 1);
  return {
    trainImages: tr.images,
    trainLabels: tr.labels,
    testImages: te.images,
    testLabels: te.labels,
    nTrain,
    nTest,
  };
}
