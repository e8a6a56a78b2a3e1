/**
 * The texture variant of conv1's stages: im2col written into a texture
 * (`im2colTexture`, one image per texture row), then the convolution and its
 * weight gradient as a 1×1 convolution of K1 (padded) channels over a
 * 1 × h1·w1 image, by the same texture kernels as conv2's
 * (`cnnConvTexture`, `cnnConvWeightGradTexture`; fast/cnn/textures.ts). The
 * same sums in the same order as `cnnMatmulVec4` and `cnnMatmulTransAVec4`
 * on the im2col columns, so bit for bit their results; fast/cnn/step.ts
 * takes these stages where `conv1TextureFits` says they fit.
 *
 * Not here: the textures themselves (fast/cnn/buffers.ts), conv2's variant.
 *
 * @module
 */

import type { CnnDims, CnnShape } from "../../shared/model/cnn.ts";
import type { StageSpec } from "../kit.ts";
import type { CnnBuffers, CnnNet } from "./step.ts";
import { batchStage, columnsPerThread } from "./textures.ts";

/**
 * The [width, height] in texels of conv1's textures, one image per row:
 * cols1 `[B][h1·w1·K1/4]` (K1 = k·k padded to `kPad`), [W1; b1]
 * `[K1 + 1][C1/4]`, ∂z1 `[B][h1·w1·C1/4]`.
 */
export function conv1TextureSizes(
  shape: CnnShape,
  dims: CnnDims,
  kPad: number,
  batchSize: number,
): { cols1: [number, number]; w1: [number, number]; gZ1: [number, number] } {
  const m1 = dims.h1 * dims.w1;
  return {
    cols1: [m1 * kPad / 4, batchSize],
    w1: [shape.c1 / 4, kPad + 1],
    gZ1: [m1 * shape.c1 / 4, batchSize],
  };
}

/**
 * Whether conv1 can run on textures: C1 a multiple of 8 (the layer uses the
 * vec4 kernels, whose sums these repeat, and K1 is padded to a multiple of
 * 8), and every texture within the device's `maxTextureDimension2D`.
 */
export function conv1TextureFits(
  shape: CnnShape,
  dims: CnnDims,
  kPad: number,
  batchSize: number,
  maxTextureDimension2D: number,
): boolean {
  const sizes = conv1TextureSizes(shape, dims, kPad, batchSize);
  const side = Math.max(...Object.values(sizes).flat());
  return shape.c1 % 8 === 0 && kPad % 8 === 0 && side <= maxTextureDimension2D;
}

/** conv1's constants as a 1×1 convolution of K1 channels over a 1 × h1·w1 image. */
function asPointwise(net: CnnNet) {
  const m1 = net.dims.h1 * net.dims.w1;
  return { H: 1, W: m1, C: net.layers[0].kPad, KS: 1, N: net.shape.c1 };
}

/**
 * conv1's forward on textures, after the input (three stages):
 *   cols1Tex ← im2col(x),  W1Tex ← [W1; b1],  z1 = cols1 · W1 + b1 (`cnnConvTexture`).
 */
export function conv1TextureForward(net: CnnNet, b: CnnBuffers): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad, n, offset } = net.layers[0];
  const w1 = { buffer: b.params, offset: offset * 4, size: (kPad + 1) * n * 4 };
  const m1 = d.h1 * d.w1, nv = columnsPerThread(s.c1);
  const px = [8, 4, 2, 1].find((p) => m1 % p === 0)!; // output pixels per invocation
  const invocations = (c: number) => c * (m1 / px) * (s.c1 / 4 / nv);
  return [
    // cols1Tex[i, ((oy·w1 + ox), q)] = cols1[(i, oy, ox), 4q .. 4q + 3],
    // cols1[(i, oy, ox), (ky, kx)] = x[i, oy + ky, ox + kx]          x: [B, H, W, 1] → [B][h1·w1·K1/4]
    batchStage(
      "conv1 im2colTexture",
      "im2colTexture",
      { H: s.height, W: s.width, C: 1, K: s.kernel, COLS: kPad },
      { x: b.x, cols: b.cols1Tex! },
      (c) => c * m1,
    ),
    // W1Tex[k, n4] = [W1; b1][k, 4·n4 .. 4·n4 + 3]                  [K1 + 1, C1] → [K1 + 1][C1/4]
    batchStage(
      "conv1 cnnToTexture",
      "cnnToTexture",
      { WIDTH: s.c1 / 4, ROWS: kPad + 1, ROWS_PER_IMAGE: 0, PER_IMAGE: 0 },
      { src: w1, tex: b.w1Tex! },
      () => (kPad + 1) * s.c1 / 4,
    ),
    // z1 = cols1 · W1 + b1                          [B·h1·w1, K1] · [K1 + 1, C1] → [B·h1·w1, C1]
    batchStage(
      "conv1 cnnConvTexture",
      "cnnConvTexture",
      { ...asPointwise(net), NV: nv, WO: m1, PX: px },
      { aTex: b.cols1Tex!, wTex: b.w1Tex!, z: b.z1 },
      (c) => 64 * Math.ceil(invocations(c) / 16), // workgroups of 16 (the kit counts in 64s)
      (c) => 2 * c * m1 * d.k1 * s.c1,
    ),
  ];
}

/**
 * conv1's backward on textures, after ∂a1: pool1's backward into ∂z1's
 * texture (`maxPoolBackwardTexture`); partial sums per slice of `sliceRows` rows
 * (`cnnConvWeightGradTexture`, part: [S, K1 + 1, C1]), then their sum in
 * order into ∂[W1; b1] (`cnnSumSlices`). x needs no gradient.
 */
export function conv1TextureBackward(
  net: CnnNet,
  b: CnnBuffers,
  sliceRows: number,
): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad, n, offset } = net.layers[0];
  const dW = { buffer: b.grads, offset: offset * 4, size: (kPad + 1) * n * 4 };
  const m1 = d.h1 * d.w1, nv = columnsPerThread(s.c1), gZ1Width = m1 * s.c1 / 4;
  const blocks = (kPad / 8 + 1) * (s.c1 / 4 / nv);
  return [
    // Backward of  a1 = max-pool(relu(z1)):  ∂z1[j] = ∂a1[o] where arg1[o] = j and z1[j] > 0, else 0,
    //   straight into ∂z1's texture: gZ1Tex[i, ((oy·w1 + ox), n4)] = ∂z1[i, oy, ox, 4·n4 .. 4·n4 + 3]
    //                                                         [B, h1, w1, C1] → [B][h1·w1·C1/4]
    batchStage(
      "pool1 maxPoolBackwardTexture",
      "maxPoolBackwardTexture",
      { H: d.h1, W: d.w1, C: s.c1, WIDTH: gZ1Width },
      { gout: b.gPool1, argmax: b.arg1, z: b.z1, gz: b.gZ1Tex! },
      (c) => c * gZ1Width,
    ),
    // part[s, k, n] = Σ_{m in slice s} cols1[m, k] · ∂z1[m, n],  part[s, K1, n] = Σ ∂z1[m, n]
    batchStage(
      "conv1 cnnConvWeightGradTexture",
      "cnnConvWeightGradTexture",
      { ...asPointwise(net), NV: nv, SLICE_ROWS: sliceRows },
      { aTex: b.cols1Tex!, gTex: b.gZ1Tex!, part: b.partial },
      (c) => Math.ceil(c * m1 / sliceRows) * blocks,
      (c) => 2 * c * m1 * (d.k1 + 1) * s.c1,
    ),
    // ∂[W1; b1] = Σ_s part[s]                                              [K1 + 1, C1]
    batchStage(
      "conv1 cnnSumSlices",
      "cnnSumSlices",
      { LEN: (kPad + 1) * n, ROWS_PER_IMAGE: m1, SLICE_ROWS: sliceRows },
      { part: b.partial, dw: dW },
      () => (kPad + 1) * n,
    ),
  ];
}
