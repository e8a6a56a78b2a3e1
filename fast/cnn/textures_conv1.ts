/**
 * The texture variant of conv1's stages. Forward: the convolution, its ReLU
 * and pool1 in one kernel (`cnnConvPoolTexture`) reading the image and
 * [W1; b1]'s texture, a1 written into conv2's texture. Backward: im2col
 * written into a texture (`im2colTexture`, one image per texture row), pool1's
 * backward into ∂z1's texture, the weight gradient as a 1×1 convolution of K1
 * (padded) channels over a 1 × h1·w1 image, by conv2's texture kernel
 * (`cnnConvWeightGradTexture`; fast/cnn/textures.ts). The same sums in the
 * same order as `cnnMatmulVec4` and `cnnMatmulTransAVec4` on the im2col
 * columns, so bit for bit their results; fast/cnn/engine.ts chooses them on
 * CPU adapters where `conv1TextureFits` says they fit, with conv2's texture
 * variant (`cnnVariants`), and fast/cnn/step.ts puts these stages in its list.
 *
 * Not here: the textures themselves (fast/cnn/buffers.ts), conv2's variant.
 *
 * @module
 */

import type { CnnDims, CnnShape } from "../../shared/model/cnn.ts";
import type { StageSpec } from "../kit.ts";
import type { CnnBuffers, CnnNet } from "./step.ts";
import { block, stage } from "./stage.ts";
import { columnsPerThread } from "./textures.ts";

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
 * 8), the image width a multiple of 4 (`cnnConvPoolTexture` reads its lines
 * as vec4s), and every texture within the device's `maxTextureDimension2D`.
 * The variant writes a1 into conv2's texture: it needs conv2's texture
 * variant too (`conv2TextureFits`).
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
  return shape.c1 % 8 === 0 && kPad % 8 === 0 && shape.width % 4 === 0 &&
    side <= maxTextureDimension2D;
}

/** conv1's constants as a 1×1 convolution of K1 channels over a 1 × h1·w1 image. */
function asPointwise(net: CnnNet) {
  const m1 = net.dims.h1 * net.dims.w1;
  return { H: 1, W: m1, C: net.layers[0].kPad, KS: 1, N: net.shape.c1 };
}

/** Output pixels per invocation of `cnnConvPoolTexture` along a line: 8, or fewer for a narrower z1. */
function convPoolPixels(w1: number): number {
  return Math.min(8, 4 * Math.ceil(w1 / 4));
}

/**
 * conv1's forward on textures, with pool1's, after the input (two stages):
 * W1Tex ← [W1; b1], then z1 = conv(x, W1) + b1, its ReLU and max-pool in one
 * kernel (`cnnConvPoolTexture`), a1 written into conv2's texture.
 */
export function conv1TextureForward(net: CnnNet, b: CnnBuffers): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad } = net.layers[0];
  const w1 = block(net, b.params, 0);
  const pxb = convPoolPixels(d.w1);
  const invocations = (c: number) => c * d.p1h * Math.ceil(d.w1 / pxb) * (s.c1 / 4);
  return [
    // W1Tex[k, n4] = [W1; b1][k, 4·n4 .. 4·n4 + 3]                  [K1 + 1, C1] → [K1 + 1][C1/4]
    stage(
      "conv1",
      "cnnToTexture",
      { WIDTH: s.c1 / 4, ROWS: kPad + 1 },
      { src: w1, tex: b.w1Tex! },
      () => (kPad + 1) * s.c1 / 4,
    ),
    // z1[i, oy, ox, n] = b1[n] + Σ_{ky, kx} x[i, oy + ky, ox + kx] · W1[(ky, kx), n]   → z1: [B, h1, w1, C1]
    // a1[i, py, px, c] = max_{dy, dx < 2} relu(z1[i, 2py + dy, 2px + dx, c]), arg1 = where,
    //   into a1's texture [B·p1h][p1w·C1/4] (no im2col columns, z1 not read back)
    stage(
      "conv1",
      "cnnConvPoolTexture",
      { H: s.height, W: s.width, KS: s.kernel, KPAD: kPad, N: s.c1, PXB: pxb },
      { x: b.x, wTex: b.w1Tex!, z: b.z1, pooled: b.a1Tex!, argmax: b.arg1 },
      invocations,
      (c) => 2 * c * d.h1 * d.w1 * d.k1 * s.c1,
    ),
  ];
}

/**
 * conv1's backward on textures, after ∂a1: conv1's im2col columns written
 * into a texture (`im2colTexture`: the forward does without them, and the
 * test pass needs none); pool1's backward into ∂z1's texture
 * (`maxPoolBackwardTexture`); partial sums per slice of `sliceRows` rows
 * (`cnnConvWeightGradTexture`, part: [S, K1 + 1, C1]), then their sum in
 * order into ∂[W1; b1] (`cnnSumSlices`). x needs no gradient.
 */
export function conv1TextureBackward(
  net: CnnNet,
  b: CnnBuffers,
  sliceRows: number,
): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad, n } = net.layers[0];
  const dW = block(net, b.grads, 0);
  const m1 = d.h1 * d.w1, nv = columnsPerThread(s.c1), gZ1Width = m1 * s.c1 / 4;
  const blocks = (kPad / 8 + 1) * (s.c1 / 4 / nv);
  return [
    // cols1Tex[i, ((oy·w1 + ox), q)] = cols1[(i, oy, ox), 4q .. 4q + 3], for the weight gradient:
    // cols1[(i, oy, ox), (ky, kx)] = x[i, oy + ky, ox + kx]          x: [B, H, W, 1] → [B][h1·w1·K1/4]
    stage(
      "conv1",
      "im2colTexture",
      { H: s.height, W: s.width, C: 1, K: s.kernel, COLS: kPad },
      { x: b.x, cols: b.cols1Tex! },
      (c) => c * m1,
    ),
    // Backward of  a1 = max-pool(relu(z1)):  ∂z1[j] = ∂a1[o] where arg1[o] = j and z1[j] > 0, else 0,
    //   straight into ∂z1's texture: gZ1Tex[i, ((oy·w1 + ox), n4)] = ∂z1[i, oy, ox, 4·n4 .. 4·n4 + 3]
    //                                                         [B, h1, w1, C1] → [B][h1·w1·C1/4]
    stage(
      "pool1",
      "maxPoolBackwardTexture",
      { H: d.h1, W: d.w1, C: s.c1, WIDTH: gZ1Width },
      { gout: b.gPool1, argmax: b.arg1, z: b.z1, gz: b.gZ1Tex! },
      (c) => c * d.p1h * d.p1w * s.c1 / 4, // one invocation per pooled output's 4 channels
    ),
    // Backward of  z1 = cols1 · W1 + b1:  ∂[W1; b1] = [cols1 | 1]ᵀ · ∂z1, in slices of rows:
    // part[s, k, n] = Σ_{m in slice s} cols1[m, k] · ∂z1[m, n],  part[s, K1, n] = Σ ∂z1[m, n]
    stage(
      "conv1",
      "cnnConvWeightGradTexture",
      { ...asPointwise(net), NV: nv, SLICE_ROWS: sliceRows },
      { aTex: b.cols1Tex!, gTex: b.gZ1Tex!, part: b.partial },
      (c) => Math.ceil(c * m1 / sliceRows) * blocks,
      (c) => 2 * c * m1 * (d.k1 + 1) * s.c1,
    ),
    // ∂[W1; b1] = Σ_s part[s]                                              [K1 + 1, C1]
    stage(
      "conv1",
      "cnnSumSlices",
      { LEN: (kPad + 1) * n, ROWS_PER_IMAGE: m1, SLICE_ROWS: sliceRows },
      { part: b.partial, dw: dW },
      () => (kPad + 1) * n,
    ),
  ];
}
