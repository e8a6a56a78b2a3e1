/**
 * The texture variant of conv2's stages: the convolution, its weight gradient
 * and its input gradient (col2im included) as implicit GEMMs (no im2col
 * columns) reading their operands through `rgba32float` textures; a1 and ∂z2
 * are written into those textures by the pool (`pool1TextureStage`, or
 * conv1's texture variant) and by pool2's backward, [W2; b2] is copied into
 * one. Each kernel loads a value once for many multiply-adds, which is what
 * decides speed on llvmpipe (bench/load_costs.ts; fast/DESIGN.md, "The CNN").
 * It computes the same sums in the same order as the stages it replaces
 * (im2col + `cnnMatmulVec4`, `cnnMatmulTransAVec4`, `cnnMatmulTransBVec4` +
 * `col2imVec4`), so the results are bit for bit theirs; fast/cnn/engine.ts
 * chooses it on CPU adapters where `conv2TextureFits` says it fits
 * (`cnnVariants`), and fast/cnn/step.ts puts these stages in its list.
 *
 * Not here: the textures themselves (fast/cnn/buffers.ts), the other stages
 * (fast/cnn/step.ts), recording (fast/kit.ts).
 *
 * @module
 */

import type { CnnDims, CnnShape } from "../../shared/model/cnn.ts";
import type { StageSpec } from "../kit.ts";
import { block, stage } from "./stage.ts";
import type { CnnBuffers, CnnNet } from "./step.ts";

/** vec4 columns of z (or of ∂W) per invocation of the texture kernels: 4, or 2 (N a multiple of 8). */
export function columnsPerThread(n: number): number {
  return (n / 4) % 4 === 0 ? 4 : 2;
}

/**
 * Whether conv2 can run on textures for batches of `batchSize`: C1 a
 * multiple of 8 (so K2 = k·k·C1 needs no padding rows: the texture kernels
 * read and write W2's k·k·C1 + 1 rows, the parameters hold kPad + 1), C2 of
 * 8 (the layer's im2col variant then runs the vec4 kernels, whose sums these
 * repeat), and a1's texture `[B·p1h][p1w·C1/4]` and W2's `[k·k·C1 + 1][C2/4]`
 * within the device's `maxTextureDimension2D`.
 */
export function conv2TextureFits(
  shape: CnnShape,
  dims: CnnDims,
  batchSize: number,
  maxTextureDimension2D: number,
): boolean {
  const side = Math.max(
    ...Object.values(conv2TextureSizes(shape, dims, batchSize)).flat(),
  );
  return shape.c1 % 8 === 0 && shape.c2 % 8 === 0 && side <= maxTextureDimension2D;
}

/**
 * The [width, height] in texels of conv2's textures: a1 `[B·p1h][p1w·C1/4]`,
 * W2 `[K2 + 1][C2/4]`, ∂z2 `[B·h2][w2·C2/4]`.
 */
export function conv2TextureSizes(
  shape: CnnShape,
  dims: CnnDims,
  batchSize: number,
): { a1: [number, number]; w2: [number, number]; gZ2: [number, number] } {
  return {
    a1: [dims.p1w * shape.c1 / 4, batchSize * dims.p1h],
    w2: [shape.c2 / 4, dims.k2 + 1],
    gZ2: [dims.w2 * shape.c2 / 4, batchSize * dims.h2],
  };
}

/**
 * pool1 into a1's texture (`maxPoolTexture`), for conv2's texture variant
 * after conv1's im2col variant (conv1's texture variant pools in its own
 * kernel).
 */
export function pool1TextureStage(net: CnnNet, b: CnnBuffers): StageSpec {
  const { shape: s, dims: d } = net;
  const a1Width = d.p1w * s.c1 / 4;
  // a1[i, py, px, c] = max_{dy, dx < 2} relu(z1[i, 2py + dy, 2px + dx, c]), arg1 = where,
  //   straight into a1's texture: a1Tex[(i, py), (px, c4)] = a1[i, py, px, 4·c4 .. 4·c4 + 3]
  //                                           [B, h1, w1, C1] → [B·p1h][p1w·C1/4], arg1
  return stage(
    "pool1",
    "maxPoolTexture",
    { H: d.h1, W: d.w1, C: s.c1 },
    { z: b.z1!, pooled: b.a1Tex!, argmax: b.arg1 },
    (c) => c * d.p1h * a1Width,
  );
}

/**
 * conv2's forward on textures, after a1 is in its texture (two stages):
 * W2Tex ← [W2; b2], z2 = conv(a1, W2) + b2 (`cnnConvTexture`).
 */
export function conv2TextureForward(net: CnnNet, b: CnnBuffers): StageSpec[] {
  const { shape: s, dims: d } = net, a1Tex = b.a1Tex!, w2Tex = b.w2Tex!;
  const { kPad } = net.layers[1];
  const w2 = block(net, b.params, 1);
  const nv = columnsPerThread(s.c2);
  const invocations = (c: number) => c * d.h2 * (s.c2 / 4 / nv); // one output line each
  return [
    // W2Tex[k, n4] = [W2; b2][k, 4·n4 .. 4·n4 + 3]              [K2 + 1, C2] → [K2 + 1][C2/4]
    stage(
      "conv2",
      "cnnToTexture",
      { WIDTH: s.c2 / 4, ROWS: kPad + 1 },
      { src: w2, tex: w2Tex },
      () => (kPad + 1) * s.c2 / 4,
    ),
    // z2[(i, oy, ox), n] = b2[n] + Σ_{ky, kx, c} a1[i, oy + ky, ox + kx, c] · W2[(ky, kx, c), n]
    //                                                  → z2: [B·h2·w2, C2], no im2col columns
    stage(
      "conv2",
      "cnnConvTexture",
      { H: d.p1h, W: d.p1w, C: s.c1, KS: s.kernel, N: s.c2, NV: nv, WO: d.w2, PX: d.w2 },
      { aTex: a1Tex, wTex: w2Tex, z: b.z2 },
      (c) => 64 * Math.ceil(invocations(c) / 16), // workgroups of 16 (the kit counts in 64s)
      (c) => 2 * c * d.h2 * d.w2 * d.k2 * s.c2,
    ),
  ];
}

/**
 * conv2's backward on textures, after ∂a2: pool2's backward into ∂z2's
 * texture (`maxPoolBackwardTexture`); the
 * split-K weight gradient on a1's texture, partial sums per slice of
 * `sliceRows` rows (`cnnConvWeightGradTexture`, part: [S, K2 + 1, C2]), then
 * their sum in order into ∂[W2; b2] (`cnnSumSlices`, as the other variant);
 * ∂a1 from the textures of ∂z2 and W2, then pool1's backward into ∂z1, in
 * one kernel (`cnnConvInputGradPoolTexture`): conv1's backward, either
 * variant, starts from ∂z1.
 */
export function conv2TextureBackward(
  net: CnnNet,
  b: CnnBuffers,
  sliceRows: number,
): StageSpec[] {
  const { shape: s, dims: d } = net;
  const { kPad, n } = net.layers[1];
  const dW = block(net, b.grads, 1);
  const nv = columnsPerThread(s.c2), rows = d.h2 * d.w2;
  return [
    // Backward of  a2 = max-pool(relu(z2)):  ∂z2[j] = ∂a2[o] where arg2[o] = j and z2[j] > 0, else 0,
    //   straight into ∂z2's texture: gZ2Tex[(i, oy), (ox, n4)] = ∂z2[i, oy, ox, 4·n4 .. 4·n4 + 3]
    //                                                      [B, h2, w2, C2] → [B·h2][w2·C2/4]
    stage(
      "pool2",
      "maxPoolBackwardTexture",
      { H: d.h2, W: d.w2, C: s.c2 },
      { gout: b.gPool2, argmax: b.arg2, z: b.z2, gz: b.gZ2Tex! },
      (c) => c * d.features / 4, // one invocation per pooled output's 4 channels
    ),
    // Backward of  z2 = cols2 · W2 + b2:  ∂[W2; b2] = [cols2 | 1]ᵀ · ∂z2, in slices of rows:
    // part[s, k, n] = Σ_{m in slice s} cols2[m, k] · ∂z2[m, n] (cols2 read from a1's texture),
    // part[s, K2, n] = Σ_{m in slice s} ∂z2[m, n]                         → part: [S, K2 + 1, C2]
    stage(
      "conv2",
      "cnnConvWeightGradTexture",
      {
        H: d.p1h,
        W: d.p1w,
        C: s.c1,
        KS: s.kernel,
        N: s.c2,
        NV: nv,
        SLICE_ROWS: sliceRows,
      },
      { aTex: b.a1Tex!, gTex: b.gZ2Tex!, part: b.partial },
      (c) => Math.ceil(c * rows / sliceRows) * s.kernel * (s.c1 / 4) * (s.c2 / 4 / nv),
      (c) => 2 * c * rows * (d.k2 + 1) * s.c2,
    ),
    // ∂[W2; b2] = Σ_s part[s]                                              [K2 + 1, C2]
    stage(
      "conv2",
      "cnnSumSlices",
      { LEN: (kPad + 1) * n, ROWS_PER_IMAGE: rows, SLICE_ROWS: sliceRows },
      { part: b.partial, dw: dW },
      () => (kPad + 1) * n,
    ),
    // Backward of  z2 = cols2 · W2 + b2,  cols2[(i, oy, ox), (ky, kx, c)] = a1[i, oy + ky, ox + kx, c]:
    // ∂a1[i, y, x, c] = Σ_{ky, kx} Σ_n ∂z2[i, y − ky, x − kx, n] · W2[(ky, kx, c), n]
    //   (∂cols2 = ∂z2 · W2ᵀ and its col2im, without ∂cols2), in registers, then
    // backward of  a1 = max-pool(relu(z1)):  ∂z1[j] = ∂a1[o] where arg1[o] = j and a1[o] > 0, else 0
    //                                                                  → ∂z1: [B, h1, w1, C1]
    stage(
      "conv2",
      "cnnConvInputGradPoolTexture",
      { H: d.p1h, W: d.p1w, C: s.c1, KS: s.kernel, N: s.c2, PH: d.h1, PW: d.w1 },
      { gTex: b.gZ2Tex!, wTex: b.w2Tex!, aTex: b.a1Tex!, argmax: b.arg1, gp: b.gZ1 },
      (c) => c * d.p1h * s.c1 / 4,
      (c) => 2 * c * d.h2 * d.w2 * d.k2 * s.c2,
    ),
  ];
}
