/**
 * Which variant each of the CNN's convolutions runs (fast/cnn/textures.ts
 * for conv2's texture variant, fast/cnn/textures_conv1.ts for conv1's; the
 * im2col stages of fast/cnn/step.ts otherwise): the choices that fit a shape
 * and batch on a device (`cnnCandidates`), and the one an engine runs when
 * none is timed (`cnnVariants`). Every choice computes the same bits
 * (tests/cnn_textures_test.ts); the tuner (fast/cnn/tuner.ts) times them.
 *
 * @module
 */

import { cnnDims, type CnnShape } from "../../shared/model/cnn.ts";
import { type CnnNet, layerBlocks } from "./step.ts";
import { conv2TextureFits } from "./textures.ts";
import { conv1TextureFits } from "./textures_conv1.ts";

/** Which variant each convolution runs (`CnnNet.conv1`, `CnnNet.conv2`). */
export type CnnVariants = Pick<CnnNet, "conv1" | "conv2">;

/**
 * Every choice of variants that fits `shape` at `batchSize` on a device
 * whose textures are at most `maxTextureDimension2D` texels a side: the
 * im2col variants, then conv2's texture variant where it fits, then both
 * texture variants where conv1's fits too (it needs conv2's). What the tuner
 * times (fast/cnn/tuner.ts); `cnnVariants` picks among them without timing.
 */
export function cnnCandidates(
  shape: CnnShape,
  batchSize: number,
  maxTextureDimension2D: number,
): CnnVariants[] {
  const dims = cnnDims(shape);
  const kPad1 = layerBlocks(shape).layers[0].kPad;
  const max = maxTextureDimension2D;
  const all: CnnVariants[] = [{ conv1: "im2col", conv2: "im2col" }];
  if (!conv2TextureFits(shape, dims, batchSize, max)) return all;
  all.push({ conv1: "im2col", conv2: "texture" });
  if (conv1TextureFits(shape, kPad1, max)) {
    all.push({ conv1: "texture", conv2: "texture" });
  }
  return all;
}

/**
 * The variants an engine runs: those `asked` for, else, on a CPU adapter
 * (`software`), "texture" where the shapes and the batch fit the device's
 * textures (`cnnCandidates`: `conv2TextureFits`, `conv1TextureFits`; conv1's
 * needs conv2's: its kernel writes a1 into conv2's texture), else "im2col".
 * The texture variants were made and timed on llvmpipe; on GPUs the im2col
 * ones are the ones measured (bench/RESULTS.md, _NVIDIA H200_), so they stay
 * the default there (the tuner, fast/cnn/tuner.ts, times them all there).
 * Throws, saying why, for a "texture" asked where it does not fit.
 */
export function cnnVariants(
  shape: CnnShape,
  batchSize: number,
  adapter: { maxTextureDimension2D: number; software: boolean },
  asked: Partial<CnnVariants>,
): CnnVariants {
  const fitting = cnnCandidates(shape, batchSize, adapter.maxTextureDimension2D);
  const fits2 = fitting.some((v) => v.conv2 === "texture");
  const conv2 = asked.conv2 ?? (fits2 && adapter.software ? "texture" : "im2col");
  if (conv2 === "texture" && !fits2) {
    throw new Error("conv2's texture variant does not fit this shape and batch (conv2TextureFits)");
  }
  const fits1 = conv2 === "texture" && fitting.some((v) => v.conv1 === "texture");
  const conv1 = asked.conv1 ?? (fits1 && adapter.software ? "texture" : "im2col");
  if (conv1 === "texture" && conv2 !== "texture") {
    throw new Error("conv1's texture variant writes a1 into conv2's texture: it needs conv2's");
  }
  if (conv1 === "texture" && !fits1) {
    throw new Error("conv1's texture variant does not fit this shape and batch (conv1TextureFits)");
  }
  return { conv1, conv2 };
}
