/**
 * The texture variant of conv1's stages. Forward: the convolution, its ReLU
 * and pool1 in one kernel (`cnnConvPoolTexture`) reading the image and
 * [W1; b1]'s texture, a1 written into conv2's texture (z1 stays in
 * registers). Backward: from ∂z1 (conv2's texture variant continues its
 * input gradient through pool1's backward), the weight gradient read from
 * the image (`cnnConvWeightGradImage`). Neither direction writes im2col
 * columns. The same sums in the same order as `cnnMatmulVec4` and
 * `cnnMatmulTransAVec4` on the im2col columns, so bit for bit their results
 * (tests/cnn_textures_test.ts); fast/cnn/engine.ts chooses them on CPU
 * adapters where `conv1TextureFits` says they fit, with conv2's texture
 * variant (`cnnVariants`), and fast/cnn/step.ts puts these stages in its list.
 *
 * Not here: the texture itself (fast/cnn/buffers.ts), conv2's variant.
 *
 * @module
 */

import type { CnnShape } from "../../shared/model/cnn.ts";
import type { StageSpec } from "../kit.ts";
import type { CnnBuffers, CnnNet } from "./step.ts";
import { block, stage } from "./stage.ts";
import { columnsPerThread } from "./textures.ts";

/**
 * The [width, height] in texels of conv1's one texture, [W1; b1]
 * `[K1 + 1][C1/4]` (K1 = k·k padded to `kPad`).
 */
export function conv1TextureSize(shape: CnnShape, kPad: number): [number, number] {
  return [shape.c1 / 4, kPad + 1];
}

/**
 * Whether conv1 can run on textures: C1 a multiple of 8 (the layer uses the
 * vec4 kernels, whose sums these repeat, and K1 is padded to a multiple of
 * 8), the image width a multiple of 4 (`cnnConvPoolTexture` reads its lines
 * as vec4s), and [W1; b1]'s texture within the device's
 * `maxTextureDimension2D`. The variant writes a1 into conv2's texture: it
 * needs conv2's texture variant too (`conv2TextureFits`, which bounds the
 * batch).
 */
export function conv1TextureFits(
  shape: CnnShape,
  kPad: number,
  maxTextureDimension2D: number,
): boolean {
  const side = Math.max(...conv1TextureSize(shape, kPad));
  return shape.c1 % 8 === 0 && kPad % 8 === 0 && shape.width % 4 === 0 &&
    side <= maxTextureDimension2D;
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
    //   into a1's texture [B·p1h][p1w·C1/4] (no im2col columns; z1 never leaves the registers)
    stage(
      "conv1",
      "cnnConvPoolTexture",
      { H: s.height, W: s.width, KS: s.kernel, KPAD: kPad, N: s.c1, PXB: pxb },
      { x: b.x, wTex: b.w1Tex!, pooled: b.a1Tex!, argmax: b.arg1 },
      invocations,
      (c) => 2 * c * d.h1 * d.w1 * d.k1 * s.c1,
    ),
  ];
}

/**
 * conv1's backward on textures, after ∂z1 (conv2's texture variant continues
 * its input gradient through pool1's backward): partial sums per slice of
 * `sliceRows` rows read from the image and ∂z1 (`cnnConvWeightGradImage`,
 * part: [S, K1 + 1, C1]), then their sum in order into ∂[W1; b1]
 * (`cnnSumSlices`). x needs no gradient.
 */
export function conv1TextureBackward(
  net: CnnNet,
  b: CnnBuffers,
  sliceRows: number,
): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad, n } = net.layers[0];
  const dW = block(net, b.grads, 0);
  const m1 = d.h1 * d.w1, nv = columnsPerThread(s.c1);
  return [
    // Backward of  z1[i, oy, ox, n] = b1[n] + Σ_{ky, kx} x[i, oy + ky, ox + kx] · W1[(ky, kx), n],
    // in slices of rows m = (i, oy, ox), straight from the image (no im2col columns):
    // part[s, (ky, kx), n] = Σ_{m in slice s} x[i, oy + ky, ox + kx] · ∂z1[m, n],  part[s, K1, n] = Σ ∂z1[m, n]
    stage(
      "conv1",
      "cnnConvWeightGradImage",
      {
        H: s.height,
        W: s.width,
        KS: s.kernel,
        KPAD: kPad,
        N: s.c1,
        NV: nv,
        SLICE_ROWS: sliceRows,
      },
      { x: b.x, g: b.gZ1, part: b.partial },
      (c) => Math.ceil(c * m1 / sliceRows) * s.kernel * (s.c1 / 4 / nv),
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
