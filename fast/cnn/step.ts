/**
 * The CNN's step on the GPU: the stages (dispatches) of one training step
 * and of the test pass, in the order they run, each with its formula and
 * shapes. This file only describes them (`StageSpec`: kernel, constants,
 * buffers by the names the kernel declares, threads); fast/cnn/buffers.ts makes the buffers, and
 * fast/cnn/engine.ts compiles the pipelines (fast/kit.ts) and
 * records the stages.
 *
 * The network (shared/model/cnn.ts is its CPU reference), for a batch of B
 * images, NHWC:
 *
 *     x [B, H, W, 1] → conv1 (k×k, C1) → ReLU → 2×2 max-pool → a1 [B, h1/2, w1/2, C1]
 *       → conv2 (k×k, C2) → ReLU → 2×2 max-pool → a2 [B, F] → linear → logits [B, classes]
 *
 * A convolution is im2col then a matmul with the bias as W's last row
 * (`z = [cols | 1] · [W; b]`); ReLU is fused into the max-pool, and its mask
 * into the pool's backward. The backward stages run from the loss back to
 * conv1, then one optimiser dispatch updates every parameter. Each
 * convolution has a second variant on textures, the default where the shapes
 * fit (`CnnNet.conv1`, `conv2`; fast/cnn/textures_conv1.ts, textures.ts):
 * the same sums in the same order without the im2col matrices.
 *
 * @module
 */

import type { CnnDims, CnnShape } from "../../shared/model/cnn.ts";
import { CNN_LAYER_NAMES, cnnLayerSizes } from "../../shared/model/cnn.ts";
import { type OptimizerName, OPTIMIZERS } from "../../shared/model/optim.ts";
import { optimizerBindings, type StageSpec } from "../kit.ts";
import { block, stage } from "./stage.ts";
import { conv2TextureBackward, conv2TextureForward, pool1TextureStage } from "./textures.ts";
import { conv1TextureBackward, conv1TextureForward } from "./textures_conv1.ts";

/** Rows of the batch each split-K slice of the weight gradient sums. */
const SLICE_ROWS = 256;

// ---------------------------------------------------------------------------
// The parameter layout

/** Where a layer's `[K + 1, N]` block (weights, then the bias row) sits in the parameter buffer. */
interface LayerBlock {
  k: number;
  /** K as the kernels see it: k, or for a conv layer using the vec4 kernels k rounded up to 8. */
  kPad: number;
  n: number;
  /** Whether the layer uses the vec4 (8×8 block) matmul kernels. */
  vec4: boolean;
  /** Offset in floats, a multiple of 64 (256 bytes, the storage-offset alignment). */
  offset: number;
}

/**
 * The three layers' blocks in one parameter buffer, and its length in floats.
 * A layer whose N is a multiple of 8 uses the vec4 kernels; a conv layer's K
 * (its im2col columns) is then padded to a multiple of 8 with zero rows of W.
 */
export function layerBlocks(shape: CnnShape): { layers: LayerBlock[]; floats: number } {
  let offset = 0;
  const layers = cnnLayerSizes(shape).map(([k, n], l) => {
    const conv = l < 2;
    const vec4 = n % 8 === 0 && (conv || k % 8 === 0);
    const kPad = vec4 && conv ? Math.ceil(k / 8) * 8 : k;
    const block = { k, kPad, n, vec4, offset };
    offset += Math.ceil((kPad + 1) * n / 64) * 64;
    return block;
  });
  return { layers, floats: offset };
}

// ---------------------------------------------------------------------------
// What the stages work on

/** The network as the stages see it. */
export interface CnnNet {
  shape: CnnShape;
  dims: CnnDims;
  layers: LayerBlock[];
  /** Floats of the parameter buffer (and of the gradients' and the optimiser state's). */
  paramFloats: number;
  /** Pixels per image (H·W) and the u32 words an image takes on the GPU (ceil(pixels / 4)). */
  pixels: number;
  words: number;
  /** Training images (the length of the per-image losses). */
  nTrain: number;
  optimizer: OptimizerName;
  /**
   * conv1's variant: conv1 + ReLU + pool1 in one kernel and the weight gradient on an im2col
   * texture (fast/cnn/textures_conv1.ts; needs conv2's "texture"), or im2col + matmuls.
   */
  conv1: "texture" | "im2col";
  /** conv2's variant: implicit GEMMs on textures (fast/cnn/textures.ts), or im2col + matmuls. */
  conv2: "texture" | "im2col";
}

/** The GPU buffers of the step, all made once (fast/cnn/buffers.ts); B the batch size. */
export interface CnnBuffers {
  /** [W1|b1, W2|b2, W3|b3] as `LayerBlock`s say; the gradients and optimiser state alike. */
  params: GPUBuffer;
  grads: GPUBuffer;
  /** One buffer per part of the optimiser's state: none (SGD), momentum's velocity, Adam's m and v. */
  state: GPUBuffer[];
  /** Training images [nTrain, words] (packed bytes) and labels [nTrain] (u32), in the epoch's order. */
  trainImages: GPUBuffer;
  trainLabels: GPUBuffer;
  testImages: GPUBuffer;
  testLabels: GPUBuffer;
  x: GPUBuffer; // [B, H, W, 1]
  cols1?: GPUBuffer; // [B·h1·w1, K1]  conv1's im2col (K1 = k·k padded); "im2col" only
  z1?: GPUBuffer; // [B, h1, w1, C1]; conv1 "im2col" only (the texture variant pools in registers)
  pool1?: GPUBuffer; // [B, h1/2, w1/2, C1]  a1; conv2 "im2col" only (else a1Tex)
  arg1: GPUBuffer; // [B, h1/2, w1/2, C1]  pool1's argmax (u32)
  cols2?: GPUBuffer; // [B·h2·w2, K2]  conv2's im2col (K2 = k·k·C1 padded); "im2col" only
  /**
   * conv2 "texture" only: a1 as a texture [B·h1/2][w1/2·C1/4], [W2; b2] as one [K2 + 1][C2/4],
   * ∂z2 as one [B·h2][w2·C2/4].
   */
  a1Tex?: GPUTexture;
  w2Tex?: GPUTexture;
  gZ2Tex?: GPUTexture;
  /** conv1 "texture" only: [W1; b1] [K1 + 1][C1/4]. */
  w1Tex?: GPUTexture;
  z2: GPUBuffer; // [B, h2, w2, C2]
  pool2: GPUBuffer; // [B, F]  a2
  arg2: GPUBuffer; // [B, F]  pool2's argmax (u32)
  logits: GPUBuffer; // [B, classes]
  gLogits: GPUBuffer; // [B, classes]  ∂logits
  gPool2: GPUBuffer; // [B, F]  ∂a2
  gZ2?: GPUBuffer; // [B, h2, w2, C2]  ∂z2; conv2 "im2col" only (else gZ2Tex)
  gCols2?: GPUBuffer; // [B·h2·w2, K2]  ∂cols2; conv2 "im2col" only
  gPool1?: GPUBuffer; // [B, h1/2, w1/2, C1]  ∂a1; conv2 "im2col" only (else ∂a1 stays in registers)
  gZ1: GPUBuffer; // [B, h1, w1, C1]  ∂z1
  /** Split-K partial weight gradients, [S, K + 1, N] for the largest layer. */
  partial: GPUBuffer;
  /** Per-image losses of the epoch [nTrain], by position in its order; their sum [1]. */
  losses: GPUBuffer;
  total: GPUBuffer;
  /** Test counts [classes, classes] (u32): confusion[label][predicted]. */
  confusion: GPUBuffer;
}

/** Floats of the split-K partial sums buffer (`CnnBuffers.partial`) for batches of `batchSize`. */
export function partialFloats(net: CnnNet, batchSize: number): number {
  const rows = rowsPerImage(net);
  return Math.max(
    ...net.layers.map(({ kPad, n }, l) =>
      Math.ceil(batchSize * rows[l] / SLICE_ROWS) * (kPad + 1) * n
    ),
  );
}

/** Matmul rows per image of each layer: its im2col rows h·w, 1 for the linear layer. */
function rowsPerImage({ dims: d }: CnnNet): number[] {
  return [d.h1 * d.w1, d.h2 * d.w2, 1];
}

/** Blocks of side `side` covering an a × b matrix. */
const blocks = (a: number, b: number, side: number) => Math.ceil(a / side) * Math.ceil(b / side);

// ---------------------------------------------------------------------------
// The step and the test pass, as lists of stages

/** The stage lists the engine records; the forward stages are the same objects in both. */
interface CnnStages {
  /** One training step, in order: input, forward, loss, backward, optimiser. */
  trainStep: StageSpec[];
  /** After an epoch's last step: the sum of its per-image losses. */
  epochEnd: StageSpec;
  /** One test batch: input, forward, its confusion counts. */
  testBatch: StageSpec[];
}

/** Every stage of the CNN on the buffers `b`. */
export function cnnStages(net: CnnNet, b: CnnBuffers): CnnStages {
  const forward = forwardStages(net, b);
  return {
    trainStep: [inputStage(net, b, "train"), ...forward, ...lossAndBackwardStages(net, b)],
    epochEnd: totalLossStage(b),
    testBatch: [inputStage(net, b, "test"), ...forward, scoreStage(net, b)],
  };
}

// ---------------------------------------------------------------------------
// Forward: the batch's images to its logits

/** A batch of the training set (`set` "train", in the epoch's order) or the test set into x. */
function inputStage(net: CnnNet, b: CnnBuffers, set: "train" | "test"): StageSpec {
  // x[i, p] = images[start + i][p] / 255          images: [n, words] packed bytes → x: [B, H·W]
  return stage(
    "input",
    "cnnLoadBatch",
    { PIXELS: net.pixels, WORDS: net.words },
    { images: set === "train" ? b.trainImages : b.testImages, x: b.x },
    (c) => c * net.pixels,
  );
}

/** The forward pass of the batch in x: from x to `logits`. */
function forwardStages(net: CnnNet, b: CnnBuffers): StageSpec[] {
  const { shape: s, dims: d, layers } = net;
  const [m1, m2] = rowsPerImage(net);
  const p1 = d.p1h * d.p1w;
  return [
    ...(net.conv1 === "texture" ? conv1TextureForward(net, b) : [
      // cols1[(i, oy, ox), (ky, kx)] = x[i, oy + ky, ox + kx]      x: [B, H, W, 1] → cols1: [B·h1·w1, K1]
      im2colStage(
        net,
        "conv1",
        { H: s.height, W: s.width, C: 1 },
        b.x,
        b.cols1!,
        m1,
        layers[0].kPad,
      ),
      // z1 = cols1 · W1 + b1                          [B·h1·w1, K1] · [K1 + 1, C1] → [B·h1·w1, C1]
      matmulStage(net, 0, b.cols1!, block(net, b.params, 0), b.z1!),
    ]),
    // a1[i, py, px, c] = max_{dy, dx < 2} relu(z1[i, 2py + dy, 2px + dx, c]), arg1 = where,
    //   where conv2 reads it (conv1's texture variant pools in its own kernel)
    ...(net.conv1 === "texture" ? [] : net.conv2 === "texture" ? [pool1TextureStage(net, b)] : [
      stage(
        "pool1",
        "maxPool",
        { H: d.h1, W: d.w1, C: s.c1 },
        { z: b.z1!, pooled: b.pool1!, argmax: b.arg1 },
        (c) => c * p1 * s.c1,
      ),
    ]),
    ...(net.conv2 === "texture" ? conv2TextureForward(net, b) : [
      // cols2[(i, oy, ox), (ky, kx, c)] = a1[i, oy + ky, ox + kx, c]    → cols2: [B·h2·w2, K2]
      im2colStage(
        net,
        "conv2",
        { H: d.p1h, W: d.p1w, C: s.c1 },
        b.pool1!,
        b.cols2!,
        m2,
        layers[1].kPad,
      ),
      // z2 = cols2 · W2 + b2                          [B·h2·w2, K2] · [K2 + 1, C2] → [B·h2·w2, C2]
      matmulStage(net, 1, b.cols2!, block(net, b.params, 1), b.z2),
    ]),
    // a2[i, py, px, c] = max_{dy, dx < 2} relu(z2[i, 2py + dy, 2px + dx, c]), arg2 = where → [B, F]
    stage(
      "pool2",
      "maxPool",
      { H: d.h2, W: d.w2, C: s.c2 },
      { z: b.z2, pooled: b.pool2, argmax: b.arg2 },
      (c) => c * d.features,
    ),
    // logits = a2 · W3 + b3                         [B, F] · [F + 1, classes] → [B, classes]
    matmulStage(net, 2, b.pool2, block(net, b.params, 2), b.logits),
  ];
}

/** im2col of a layer's input, 4 columns per thread (`im2colVec4`) when its row stride allows. */
function im2colStage(
  net: CnnNet,
  layer: string,
  input: { H: number; W: number; C: number },
  from: GPUBuffer,
  cols: GPUBuffer,
  rows: number,
  stride: number,
): StageSpec {
  const vec4 = stride % 4 === 0;
  return stage(
    layer,
    vec4 ? "im2colVec4" : "im2col",
    { ...input, K: net.shape.kernel, COLS: stride },
    { x: from, cols },
    (c) => c * rows * (vec4 ? stride / 4 : stride),
  );
}

/** z = a · W + b of layer l (8×8 blocks per thread with vec4 loads, or 4×4 scalar). */
function matmulStage(
  net: CnnNet,
  l: number,
  a: GPUBuffer,
  w: GPUBufferBinding,
  z: GPUBuffer,
): StageSpec {
  const { k, kPad, n, vec4 } = net.layers[l], rows = rowsPerImage(net)[l];
  return stage(
    CNN_LAYER_NAMES[l],
    vec4 ? "cnnMatmulVec4" : "cnnMatmul",
    { K: kPad, N: n, ROWS_PER_IMAGE: rows },
    { a, w, z },
    (c) => blocks(c * rows, n, vec4 ? 8 : 4),
    (c) => 2 * c * rows * k * n,
  );
}

// ---------------------------------------------------------------------------
// One training step: forward, loss, backward, optimiser

/** After the forward pass of a training batch: the loss, the backward pass, the optimiser. */
function lossAndBackwardStages(net: CnnNet, b: CnnBuffers): StageSpec[] {
  const { shape: s, dims: d, layers } = net;
  const p1 = d.p1h * d.p1w, K2 = layers[1].kPad;
  const col2imVec4 = s.c1 % 4 === 0 && K2 % 4 === 0;
  return [
    // y = labels[start + i], p = softmax(logits[i]):  losses[start + i] = −log p[y],
    // ∂logits[i, j] = (p[j] − [j = y]) / count       logits, ∂logits: [B, classes]
    stage(
      "loss",
      "cnnLossGrad",
      { N: s.classes },
      { logits: b.logits, labels: b.trainLabels, losses: b.losses, glogits: b.gLogits },
      (c) => c,
    ),
    // Backward of  logits = a2 · W3 + b3:  ∂[W3; b3] = [a2 | 1]ᵀ · ∂logits,  ∂a2 = ∂logits · W3ᵀ
    ...weightGradStages(net, 2, b.pool2, b.gLogits, block(net, b.grads, 2), b.partial),
    inputGradStage(net, 2, b.gLogits, block(net, b.params, 2), b.gPool2),
    ...(net.conv2 === "texture" ? conv2TextureBackward(net, b, SLICE_ROWS) : [
      // Backward of  a2 = max-pool(relu(z2)):  ∂z2[j] = ∂a2[o] where arg2[o] = j and z2[j] > 0, else 0
      poolBackwardStage("pool2", { H: d.h2, W: d.w2, C: s.c2 }, {
        gout: b.gPool2,
        argmax: b.arg2,
        z: b.z2,
        gz: b.gZ2!,
      }),
      // Backward of  z2 = cols2 · W2 + b2:  ∂[W2; b2] = [cols2 | 1]ᵀ · ∂z2,  ∂cols2 = ∂z2 · W2ᵀ
      ...weightGradStages(net, 1, b.cols2!, b.gZ2!, block(net, b.grads, 1), b.partial),
      inputGradStage(net, 1, b.gZ2!, block(net, b.params, 1), b.gCols2!),
      // Backward of  cols2[(i, oy, ox), (ky, kx, c)] = a1[i, oy + ky, ox + kx, c]:
      //   ∂a1[i, y, x, c] = Σ_{ky, kx} ∂cols2[(i, y − ky, x − kx), (ky, kx, c)]   → [B, h1/2, w1/2, C1]
      stage(
        "conv2",
        col2imVec4 ? "col2imVec4" : "col2im",
        { H: d.p1h, W: d.p1w, C: s.c1, K: s.kernel, COLS: K2 },
        { gcols: b.gCols2!, gx: b.gPool1! },
        (c) => c * p1 * (col2imVec4 ? s.c1 / 4 : s.c1),
      ),
      // Backward of  a1 = max-pool(relu(z1)):  ∂z1[j] = ∂a1[o] where arg1[o] = j and z1[j] > 0, else 0
      poolBackwardStage("pool1", { H: d.h1, W: d.w1, C: s.c1 }, {
        gout: b.gPool1!,
        argmax: b.arg1,
        z: b.z1!,
        gz: b.gZ1,
      }),
    ]),
    // Both conv2 variants end at ∂z1 (the texture one continues its ∂a1 through pool1's backward).
    ...(net.conv1 === "texture" ? conv1TextureBackward(net, b, SLICE_ROWS) : [
      // Backward of  z1 = cols1 · W1 + b1:  ∂[W1; b1] = [cols1 | 1]ᵀ · ∂z1   (x needs no gradient)
      ...weightGradStages(net, 0, b.cols1!, b.gZ1, block(net, b.grads, 0), b.partial),
    ]),
    // θ ← the optimiser's step on every parameter at once (its kernel: sgdStep, momentumStep, …)
    {
      name: `params ${OPTIMIZERS[net.optimizer].kernel}`,
      kernel: OPTIMIZERS[net.optimizer].kernel,
      constants: {},
      uniform: "step",
      bindings: optimizerBindings(OPTIMIZERS[net.optimizer], b.params, b.grads, b.state),
      threads: () => net.paramFloats,
      flops: () => 0,
    },
  ];
}

/**
 * ∂[W; b] = [a | 1]ᵀ · g of layer l, split over the batch's rows: partial
 * sums per slice of SLICE_ROWS rows (`part: [S, K + 1, N]`), then their sum
 * in order into `dW` (deterministic).
 */
function weightGradStages(
  net: CnnNet,
  l: number,
  a: GPUBuffer,
  g: GPUBuffer,
  dW: GPUBufferBinding,
  partial: GPUBuffer,
): StageSpec[] {
  const { k, kPad, n, vec4 } = net.layers[l], rows = rowsPerImage(net)[l];
  const side = vec4 ? 8 : 4;
  return [
    stage(
      CNN_LAYER_NAMES[l],
      vec4 ? "cnnMatmulTransAVec4" : "cnnMatmulTransA",
      { K: kPad, N: n, ROWS_PER_IMAGE: rows, SLICE_ROWS },
      { a, g, part: partial },
      (c) => Math.ceil(c * rows / SLICE_ROWS) * blocks(kPad + 1, n, side),
      (c) => 2 * c * rows * (k + 1) * n,
    ),
    stage(
      CNN_LAYER_NAMES[l],
      "cnnSumSlices",
      { LEN: (kPad + 1) * n, ROWS_PER_IMAGE: rows, SLICE_ROWS },
      { part: partial, dw: dW },
      () => (kPad + 1) * n,
    ),
  ];
}

/** ∂a = g · Wᵀ of layer l (W's bias row unused): [M, N] · [N, K] → [M, K]. */
function inputGradStage(
  net: CnnNet,
  l: number,
  g: GPUBuffer,
  w: GPUBufferBinding,
  ga: GPUBuffer,
): StageSpec {
  const { k, kPad, n, vec4 } = net.layers[l], rows = rowsPerImage(net)[l];
  return stage(
    CNN_LAYER_NAMES[l],
    vec4 ? "cnnMatmulTransBVec4" : "cnnMatmulTransB",
    { K: kPad, N: n, ROWS_PER_IMAGE: rows },
    { g, w, ga },
    (c) => blocks(c * rows, kPad, vec4 ? 8 : 4),
    (c) => 2 * c * rows * k * n,
  );
}

/** The pool's (and ReLU's) backward, 4 channels per thread when C allows: ∂out, argmax, z → ∂z. */
function poolBackwardStage(
  layer: string,
  input: { H: number; W: number; C: number },
  bindings: { gout: GPUBuffer; argmax: GPUBuffer; z: GPUBuffer; gz: GPUBuffer },
): StageSpec {
  const vec4 = input.C % 4 === 0;
  return stage(
    layer,
    vec4 ? "maxPoolBackwardVec4" : "maxPoolBackward",
    input,
    bindings,
    (c) => c * input.H * input.W * (vec4 ? input.C / 4 : input.C),
  );
}

// ---------------------------------------------------------------------------
// The epoch's end and the test pass

/**
 * After an epoch's last step: total = Σ_{i < nTrain} losses[i], the reduction
 * both models use (common/sumLosses.wgsl: one workgroup of 256, a fixed order).
 */
function totalLossStage(b: CnnBuffers): StageSpec {
  return {
    name: "loss sumLosses",
    kernel: "sumLosses",
    constants: {},
    uniform: "batch", // the loss sum's entry: count = nTrain
    bindings: { losses: b.losses, total: b.total },
    threads: () => 1, // one workgroup
    flops: () => 0,
  };
}

/**
 * After the forward pass of a test batch:
 * confusion[labels[start + i], argmax_j logits[i, j]] += 1 (the first maximum),
 * confusion: [classes, classes], cleared before the test set.
 */
function scoreStage(net: CnnNet, b: CnnBuffers): StageSpec {
  return stage(
    "test",
    "argmaxConfusion",
    { CLASSES: net.shape.classes },
    { logits: b.logits, labels: b.testLabels, confusion: b.confusion },
    (c) => c,
  );
}
