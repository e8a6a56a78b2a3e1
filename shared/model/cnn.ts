/**
 * The convolutional network of the fast trainer (`--model cnn`), its
 * initialisation, and its float64 CPU reference: the oracle of the GPU
 * engine in `fast/cnn/engine.ts`, itself checked with finite differences in
 * `tests/cnn_test.ts`.
 *
 * LeNet-style, generic in sizes (tests use tiny ones):
 *
 *     x [B, H, W, 1] → conv k×k (1→C1, valid) → ReLU → 2×2 max-pool
 *       → conv k×k (C1→C2, valid) → ReLU → 2×2 max-pool
 *       → flatten (y, x, c) → linear (F → classes) → softmax cross-entropy (mean over B)
 *
 * Layout: activations are NHWC, `[B, H, W, C]` row-major, so a conv's
 * output `[B·Ho·Wo, Cout]` is a plain matrix. A convolution is im2col
 * followed by a matmul: `cols[(b, oy, ox), (ky, kx, c)] = in[b, oy+ky, ox+kx, c]`,
 * `z = cols · W + b` with `W: [k·k·Cin, Cout]` (rows in (ky, kx, c) order).
 * Pooling takes floor(H/2) × floor(W/2) windows (an odd last row/column is
 * dropped, as PyTorch's MaxPool2d does); ties go to the first maximum in
 * window order (dy, dx).
 *
 * @module
 */

import {
  addBias,
  columnSums,
  crossEntropy,
  matmul,
  matmulTransA,
  matmulTransB,
  relu,
  reluBackward,
  softmax,
  softmaxCrossEntropyBackward,
} from "./mlp.ts";
import {
  newOptimizerState,
  type OptimizerOptions,
  type OptimizerState,
  optimizerStep,
} from "./optim.ts";
import { mulberry32 } from "./rng.ts";

/** Sizes of a CNN. */
export interface CnnShape {
  /** Input height and width in pixels (28 for MNIST). */
  height: number;
  width: number;
  /** Side of both convolution kernels. */
  kernel: number;
  /** Output channels of the first and second convolution. */
  c1: number;
  c2: number;
  /** Number of classes (10). */
  classes: number;
}

/**
 * The CNN trained on MNIST: 5×5 kernels, 16 then 32 channels. Feature maps:
 * 28² → conv 24²×16 → pool 12²×16 → conv 8²×32 → pool 4²×32 = 512 → 10.
 */
export const MNIST_CNN: CnnShape = {
  height: 28,
  width: 28,
  kernel: 5,
  c1: 16,
  c2: 32,
  classes: 10,
};

/**
 * The CNN for images of `height × width` and `classes` classes: `base`'s
 * kernels and channels (default `MNIST_CNN`'s) on that input. Whether it
 * can take that size is `cnnSizeProblem`'s question.
 */
export function cnnShapeFor(
  data: { height: number; width: number; classes: number },
  base: CnnShape = MNIST_CNN,
): CnnShape {
  return { ...base, height: data.height, width: data.width, classes: data.classes };
}

/**
 * Why the CNN of `s` cannot take its images (conv k×k → pool 2 → conv k×k →
 * pool 2 leaves no pixel), in one line naming the size; undefined when it can.
 */
export function cnnSizeProblem(s: CnnShape): string | undefined {
  const k = s.kernel;
  const h1 = s.height - k + 1, w1 = s.width - k + 1;
  const p1h = Math.floor(h1 / 2), p1w = Math.floor(w1 / 2);
  const h2 = p1h - k + 1, w2 = p1w - k + 1;
  if (Math.floor(h2 / 2) >= 1 && Math.floor(w2 / 2) >= 1) return undefined;
  // The smallest side that leaves one pixel: 2·(k − 1 + 2) + k − 1.
  const least = 2 * (k + 1) + k - 1;
  const steps = [`${k}x${k} conv → ${Math.max(h1, 0)}x${Math.max(w1, 0)}`];
  if (h1 > 0 && w1 > 0) steps.push(`2x2 pool → ${p1h}x${p1w}`);
  if (p1h > 0 && p1w > 0) steps.push(`${k}x${k} conv → ${Math.max(h2, 0)}x${Math.max(w2, 0)}`);
  if (h2 > 0 && w2 > 0) steps.push(`2x2 pool → ${Math.floor(h2 / 2)}x${Math.floor(w2 / 2)}`);
  return `the CNN cannot take ${s.height}x${s.width} images (${steps.join(", ")}: ` +
    `no pixel left); it needs at least ${least}x${least}`;
}

/** Every size derived from a `CnnShape`. */
export interface CnnDims {
  /** First conv output (h1 × w1) and its pooled size (p1h × p1w). */
  h1: number;
  w1: number;
  p1h: number;
  p1w: number;
  /** Second conv output and its pooled size. */
  h2: number;
  w2: number;
  p2h: number;
  p2w: number;
  /** Rows of each conv weight matrix: k·k·Cin. */
  k1: number;
  k2: number;
  /** Inputs of the linear layer: p2h·p2w·C2. */
  features: number;
}

/** The derived sizes; throws a RangeError when a feature map would be empty. */
export function cnnDims(s: CnnShape): CnnDims {
  const h1 = s.height - s.kernel + 1, w1 = s.width - s.kernel + 1;
  const p1h = Math.floor(h1 / 2), p1w = Math.floor(w1 / 2);
  const h2 = p1h - s.kernel + 1, w2 = p1w - s.kernel + 1;
  const p2h = Math.floor(h2 / 2), p2w = Math.floor(w2 / 2);
  if (p2h < 1 || p2w < 1 || s.c1 < 1 || s.c2 < 1 || s.classes < 2) {
    throw new RangeError(`CNN shape ${JSON.stringify(s)} leaves no features`);
  }
  return {
    h1,
    w1,
    p1h,
    p1w,
    h2,
    w2,
    p2h,
    p2w,
    k1: s.kernel * s.kernel,
    k2: s.kernel * s.kernel * s.c1,
    features: p2h * p2w * s.c2,
  };
}

/**
 * Parameters of a CNN: `weights[0]` `[k·k, C1]`, `weights[1]` `[k·k·C1, C2]`,
 * `weights[2]` `[F, classes]`, all `[in][out]` row-major; `biases[l]` `[out]`.
 */
export interface CnnParams {
  shape: CnnShape;
  /** Float32 for training; the finite-difference check perturbs float64 copies. */
  weights: (Float32Array | Float64Array)[];
  biases: (Float32Array | Float64Array)[];
}

/** `[fan_in, fan_out]` of the three weight matrices. */
export function cnnLayerSizes(shape: CnnShape): [number, number][] {
  const d = cnnDims(shape);
  return [[d.k1, shape.c1], [d.k2, shape.c2], [d.features, shape.classes]];
}

/**
 * Initial parameters: each weight uniform in ±sqrt(6 / fan_in) (He-uniform),
 * drawn conv1, conv2, linear, each row-major, from one `mulberry32(seed)`
 * stream; biases zero.
 */
export function initCnnParams(seed: number, shape: CnnShape = MNIST_CNN): CnnParams {
  const rand = mulberry32(seed);
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (const [fanIn, fanOut] of cnnLayerSizes(shape)) {
    const limit = Math.sqrt(6 / fanIn);
    const w = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * limit;
    weights.push(w);
    biases.push(new Float32Array(fanOut));
  }
  return { shape: { ...shape }, weights, biases };
}

/** A deep copy of `p`. */
export function cloneCnnParams(p: CnnParams): CnnParams {
  return {
    shape: { ...p.shape },
    weights: p.weights.map((w) => w.slice()),
    biases: p.biases.map((b) => b.slice()),
  };
}

// ---------------------------------------------------------------------------
// CPU reference of the CNN's own steps (float64).

/**
 * im2col of `x: [B, H, W, C]` for a valid k×k convolution:
 * `cols[(b, oy, ox), (ky, kx, c)] = x[b, oy+ky, ox+kx, c]`, shape `[B·Ho·Wo, k·k·C]`.
 */
export function im2col(
  x: ArrayLike<number>,
  batch: number,
  h: number,
  w: number,
  c: number,
  k: number,
): Float64Array {
  const ho = h - k + 1, wo = w - k + 1, kc = k * k * c;
  const cols = new Float64Array(batch * ho * wo * kc);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        const row = ((b * ho + oy) * wo + ox) * kc;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            for (let ch = 0; ch < c; ch++) {
              cols[row + (ky * k + kx) * c + ch] = x[((b * h + oy + ky) * w + ox + kx) * c + ch];
            }
          }
        }
      }
    }
  }
  return cols;
}

/**
 * col2im, the adjoint of `im2col`: sums each column entry back onto the input
 * pixel it was copied from. `gCols: [B·Ho·Wo, k·k·C]` → `gX: [B, H, W, C]`.
 */
export function col2im(
  gCols: ArrayLike<number>,
  batch: number,
  h: number,
  w: number,
  c: number,
  k: number,
): Float64Array {
  const ho = h - k + 1, wo = w - k + 1, kc = k * k * c;
  const gx = new Float64Array(batch * h * w * c);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        const row = ((b * ho + oy) * wo + ox) * kc;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            for (let ch = 0; ch < c; ch++) {
              gx[((b * h + oy + ky) * w + ox + kx) * c + ch] += gCols[row + (ky * k + kx) * c + ch];
            }
          }
        }
      }
    }
  }
  return gx;
}

/** Output of a 2×2 max-pool: the maxima and, for each, the flat input index it came from. */
export interface PoolResult {
  out: Float64Array;
  argmax: Uint32Array;
}

/**
 * 2×2 max-pool (stride 2) of `x: [B, H, W, C]` → `[B, floor(H/2), floor(W/2), C]`.
 * `argmax` holds the flat index into `x` of each maximum (first one on ties).
 */
export function maxPool(
  x: ArrayLike<number>,
  batch: number,
  h: number,
  w: number,
  c: number,
): PoolResult {
  const ph = Math.floor(h / 2), pw = Math.floor(w / 2);
  const out = new Float64Array(batch * ph * pw * c);
  const argmax = new Uint32Array(out.length);
  for (let b = 0; b < batch; b++) {
    for (let py = 0; py < ph; py++) {
      for (let px = 0; px < pw; px++) {
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity, at = 0;
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) {
              const i = ((b * h + 2 * py + dy) * w + 2 * px + dx) * c + ch;
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
            }
          }
          const o = ((b * ph + py) * pw + px) * c + ch;
          out[o] = best;
          argmax[o] = at;
        }
      }
    }
  }
  return { out, argmax };
}

/** Max-pool backward: each output gradient goes to its argmax; `[inputLength]`. */
export function maxPoolBackward(
  gOut: ArrayLike<number>,
  argmax: ArrayLike<number>,
  inputLength: number,
): Float64Array {
  const gIn = new Float64Array(inputLength);
  for (let o = 0; o < argmax.length; o++) gIn[argmax[o]] += gOut[o];
  return gIn;
}

/** Every intermediate of a CNN forward pass, kept for the backward pass. */
export interface CnnForwardPass {
  cols1: Float64Array;
  z1: Float64Array;
  pool1: PoolResult;
  cols2: Float64Array;
  z2: Float64Array;
  pool2: PoolResult;
  /** Logits `[B, classes]` and their softmax. */
  logits: Float64Array;
  probs: Float64Array;
}

/** The forward pass on `x: [B, H, W]` (floats, one channel). */
export function cnnForward(params: CnnParams, x: ArrayLike<number>, batch: number): CnnForwardPass {
  const s = params.shape, d = cnnDims(s);
  const cols1 = im2col(x, batch, s.height, s.width, 1, s.kernel);
  const z1 = addBias(
    matmul(cols1, params.weights[0], batch * d.h1 * d.w1, d.k1, s.c1),
    params.biases[0],
  );
  const pool1 = maxPool(relu(z1), batch, d.h1, d.w1, s.c1);
  const cols2 = im2col(pool1.out, batch, d.p1h, d.p1w, s.c1, s.kernel);
  const z2 = addBias(
    matmul(cols2, params.weights[1], batch * d.h2 * d.w2, d.k2, s.c2),
    params.biases[1],
  );
  const pool2 = maxPool(relu(z2), batch, d.h2, d.w2, s.c2);
  const logits = addBias(
    matmul(pool2.out, params.weights[2], batch, d.features, s.classes),
    params.biases[2],
  );
  return { cols1, z1, pool1, cols2, z2, pool2, logits, probs: softmax(logits, batch, s.classes) };
}

/** Loss and gradients of one batch. */
export interface CnnGradients {
  /** Mean cross-entropy over the batch. */
  loss: number;
  /** Per-image −log p_y. */
  losses: Float64Array;
  /** ∂L/∂W and ∂L/∂b per layer, shaped as the parameters. */
  weights: Float64Array[];
  biases: Float64Array[];
}

/** Forward and backward pass of a batch `x: [B, H, W]` with `labels: [B]`. */
export function cnnLossAndGradients(
  params: CnnParams,
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
): CnnGradients {
  const s = params.shape, d = cnnDims(s);
  const batch = labels.length;
  const fw = cnnForward(params, x, batch);
  const losses = crossEntropy(fw.probs, labels, s.classes);
  let loss = 0;
  for (const v of losses) loss += v;
  loss /= batch;

  const m1 = batch * d.h1 * d.w1, m2 = batch * d.h2 * d.w2;
  const gLogits = softmaxCrossEntropyBackward(fw.probs, labels, s.classes);
  const gW3 = matmulTransA(fw.pool2.out, gLogits, batch, d.features, s.classes);
  const gb3 = columnSums(gLogits, batch, s.classes);
  const gPool2 = matmulTransB(gLogits, params.weights[2], batch, s.classes, d.features);
  const gZ2 = reluBackward(maxPoolBackward(gPool2, fw.pool2.argmax, m2 * s.c2), fw.z2);
  const gW2 = matmulTransA(fw.cols2, gZ2, m2, d.k2, s.c2);
  const gb2 = columnSums(gZ2, m2, s.c2);
  const gCols2 = matmulTransB(gZ2, params.weights[1], m2, s.c2, d.k2);
  const gPool1 = col2im(gCols2, batch, d.p1h, d.p1w, s.c1, s.kernel);
  const gZ1 = reluBackward(maxPoolBackward(gPool1, fw.pool1.argmax, m1 * s.c1), fw.z1);
  const gW1 = matmulTransA(fw.cols1, gZ1, m1, d.k1, s.c1);
  const gb1 = columnSums(gZ1, m1, s.c1);
  return { loss, losses, weights: [gW1, gW2, gW3], biases: [gb1, gb2, gb3] };
}

/** The parameter tensors in optimiser order: W1, b1, W2, b2, W3, b3. */
export function cnnTensors(p: CnnParams): (Float32Array | Float64Array)[] {
  return [p.weights[0], p.biases[0], p.weights[1], p.biases[1], p.weights[2], p.biases[2]];
}

/** A zero optimiser state for `params`. */
export function newCnnOptimizerState(opts: OptimizerOptions, params: CnnParams): OptimizerState {
  return newOptimizerState(opts.optimizer, cnnTensors(params).map((t) => t.length));
}

/**
 * One training step on a batch, in place: gradients, then one optimiser step
 * on every tensor. Returns the batch's gradients (with its losses).
 */
export function cnnTrainStep(
  params: CnnParams,
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  lr: number,
  opts: OptimizerOptions,
  state: OptimizerState,
): CnnGradients {
  const g = cnnLossAndGradients(params, x, labels);
  const grads = [g.weights[0], g.biases[0], g.weights[1], g.biases[1], g.weights[2], g.biases[2]];
  optimizerStep(cnnTensors(params), grads, state, lr, opts);
  return g;
}

/** Predicted class (argmax of the logits, first on ties) of each image of `x`. */
export function cnnPredict(params: CnnParams, x: ArrayLike<number>, batch: number): Uint8Array {
  const { logits } = cnnForward(params, x, batch);
  const n = params.shape.classes;
  const out = new Uint8Array(batch);
  for (let r = 0; r < batch; r++) {
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[r * n + j] > logits[r * n + best]) best = j;
    out[r] = best;
  }
  return out;
}

/** Names of the CNN's layers (in files: tensors `<layer>.weight` and `<layer>.bias`). */
export const CNN_LAYER_NAMES: readonly string[] = ["conv1", "conv2", "linear"];
