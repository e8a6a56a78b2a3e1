/**
 * The model both trainers train, and a plain CPU reference of it.
 *
 * MLP pixels → 512 (ReLU) → 128 (ReLU) → classes by default (on MNIST 784 →
 * 512 → 128 → 10, the original's network; `--hidden` picks other hidden
 * layers, any number of them; the input and output widths come from the
 * data: `mlpSizes`), softmax cross-entropy averaged over the batch, plain
 * SGD. Weights are stored `W[in][out]` row-major, so a
 * layer is `z = x·W + b` with `x: [B, in]`, `W: [in, out]`, `z: [B, out]`.
 *
 * The CPU reference here is the oracle every GPU kernel and trainer is tested
 * against. It computes in float64 (JavaScript numbers) and is itself checked
 * with finite differences in `tests/model_test.ts`.
 *
 * @module
 */

import { mulberry32 } from "./rng.ts";
import { type DataShape, MNIST_SHAPE } from "../data/dataset.ts";

/** The hidden layers' widths by default (`--hidden 512,128`: the original's network). */
export const DEFAULT_HIDDEN: readonly number[] = [512, 128];

/**
 * Layer widths `[pixels, ...hidden, classes]` for data of `shape`: the input
 * (`height · width` pixels), the hidden layers (ReLU), the output (softmax,
 * one per class). Both trainers take any such list.
 */
export function mlpSizes(
  hidden: readonly number[] = DEFAULT_HIDDEN,
  shape: DataShape = MNIST_SHAPE,
): number[] {
  return [shape.height * shape.width, ...hidden, shape.classes];
}

/** Layer widths of the default MLP on MNIST: 784 → 512 → 128 → 10. */
export const LAYER_SIZES: readonly number[] = mlpSizes();

/** Weights and biases of the MLP; `weights[l]` is `[in, out]` row-major. */
export interface MlpParams {
  sizes: number[];
  weights: Float32Array[];
  biases: Float32Array[];
}

/** The ways the MLP's weights can start (`--init`). */
export const INITS = ["original", "kaiming"] as const;
/** `original`: the original program's formula (the default); `kaiming`: He-uniform from `--seed`. */
export type InitName = typeof INITS[number];

/**
 * The initial parameters `init` gives: `originalParams` or `initParams(seed)`.
 * Only `kaiming` uses the seed.
 */
export function initialParams(
  init: InitName,
  seed: number,
  sizes: readonly number[] = LAYER_SIZES,
): MlpParams {
  return init === "original" ? originalParams(sizes) : initParams(seed, sizes);
}

/** One step of the original program's linear congruential generator, modulo 2^32. */
function lcg(x: number): number {
  return (Math.imul(x, 1664525) + 1013904223) >>> 0;
}

/**
 * The original program's initial weights (the run its README publishes).
 * For a layer `W[in][out]` stored row-major, entry `i` (0 ≤ i < in·out) is
 *
 *     h = lcg(lcg(i XOR 1234)),   r = (h & 0xFFFFFF) / 2^24   (r in [0, 1))
 *     W[i] = (2r − 1) · sqrt(6 / (in + out))                  (Glorot-uniform)
 *
 * every operation in float32, as the original computes it; the same `i`
 * sequence restarts at 0 in every layer. Biases start at 0. No seed.
 */
export function originalParams(sizes: readonly number[] = LAYER_SIZES): MlpParams {
  const f = Math.fround;
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l], fanOut = sizes[l + 1];
    const limit = f(Math.sqrt(f(6 / (fanIn + fanOut))));
    const w = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < w.length; i++) {
      const r = (lcg(lcg((i ^ 1234) >>> 0)) & 0xffffff) / 16777216; // exact in float32
      w[i] = f(f(2 * r - 1) * limit);
    }
    weights.push(w);
    biases.push(new Float32Array(fanOut));
  }
  return { sizes: [...sizes], weights, biases };
}

/**
 * The `kaiming` initial parameters for `seed`: each `W[in][out]` uniform in
 * ±sqrt(6 / fan_in) (He-uniform), drawn layer by layer in row-major order
 * from one `mulberry32(seed)` stream; biases zero. Same numbers everywhere.
 */
export function initParams(seed: number, sizes: readonly number[] = LAYER_SIZES): MlpParams {
  const rand = mulberry32(seed);
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l], fanOut = sizes[l + 1];
    const limit = Math.sqrt(6 / fanIn);
    const w = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * limit;
    weights.push(w);
    biases.push(new Float32Array(fanOut));
  }
  return { sizes: [...sizes], weights, biases };
}

/** A deep copy of `p`. */
export function cloneParams(p: MlpParams): MlpParams {
  return {
    sizes: [...p.sizes],
    weights: p.weights.map((w) => w.slice()),
    biases: p.biases.map((b) => b.slice()),
  };
}

/**
 * Pixels of images `start..start+count` as floats `byte / 255`,
 * `[count, pixels]` (`pixels` per image; default MNIST's 784).
 */
export function pixelsToFloats(
  images: Uint8Array,
  start: number,
  count: number,
  pixels: number = LAYER_SIZES[0],
): Float32Array {
  const out = new Float32Array(count * pixels);
  const base = start * pixels;
  for (let i = 0; i < out.length; i++) out[i] = images[base + i] / 255;
  return out;
}

// ---------------------------------------------------------------------------
// CPU reference, one function per step of the math (float64 arithmetic).

/** C[m, n] = A[m, k] · B[k, n]. */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += av * b[p * n + j];
    }
  }
  return c;
}

/** C[k, n] = A[m, k]ᵀ · B[m, n] (the weight-gradient shape). */
export function matmulTransA(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const c = new Float64Array(k * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      for (let j = 0; j < n; j++) c[p * n + j] += av * b[i * n + j];
    }
  }
  return c;
}

/** C[m, k] = A[m, n] · B[k, n]ᵀ (the input-gradient shape). */
export function matmulTransB(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const c = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j] * b[p * n + j];
      c[i * k + p] = s;
    }
  }
  return c;
}

/** z[r, j] += bias[j] for every row r, in place. */
export function addBias(z: Float64Array, bias: ArrayLike<number>): Float64Array {
  const n = bias.length;
  for (let i = 0; i < z.length; i++) z[i] += bias[i % n];
  return z;
}

/** max(0, z), elementwise, as a new array. */
export function relu(z: ArrayLike<number>): Float64Array {
  const a = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) a[i] = z[i] > 0 ? z[i] : 0;
  return a;
}

/** Row-wise softmax of `logits: [rows, n]`, stable (subtracts the row max). */
export function softmax(logits: ArrayLike<number>, rows: number, n: number): Float64Array {
  const p = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, logits[r * n + j]);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += p[r * n + j] = Math.exp(logits[r * n + j] - max);
    for (let j = 0; j < n; j++) p[r * n + j] /= sum;
  }
  return p;
}

/** Per-row cross-entropy −log p[r, y_r]. */
export function crossEntropy(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
): Float64Array {
  const loss = new Float64Array(labels.length);
  for (let r = 0; r < labels.length; r++) loss[r] = -Math.log(probs[r * n + labels[r]]);
  return loss;
}

/** ∂L/∂z for L = mean over the batch of −log softmax(z)_y: (p − onehot(y)) / B. */
export function softmaxCrossEntropyBackward(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
): Float64Array {
  const rows = labels.length;
  const g = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      g[r * n + j] = (probs[r * n + j] - (labels[r] === j ? 1 : 0)) / rows;
    }
  }
  return g;
}

/** Column sums of `g: [rows, n]` (the bias gradient). */
export function columnSums(g: ArrayLike<number>, rows: number, n: number): Float64Array {
  const s = new Float64Array(n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) s[j] += g[r * n + j];
  return s;
}

/** ∂L/∂z = ∂L/∂a where z > 0, else 0 (ReLU backward). */
export function reluBackward(gradA: ArrayLike<number>, z: ArrayLike<number>): Float64Array {
  const g = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) g[i] = z[i] > 0 ? gradA[i] : 0;
  return g;
}

/** Activations of one forward pass: `zs[l]` before ReLU, `acts[l]` its input. */
export interface ForwardPass {
  /** acts[0] = x, acts[l] = relu(zs[l-1]) for hidden layers. */
  acts: ArrayLike<number>[];
  /** Pre-activations of each layer; the last are the logits. */
  zs: Float64Array[];
  /** Softmax of the logits, `[B, classes]`. */
  probs: Float64Array;
}

/** The forward pass on a batch `x: [B, sizes[0]]`. */
export function forward(params: MlpParams, x: ArrayLike<number>, batch: number): ForwardPass {
  const { sizes } = params;
  const L = sizes.length - 1;
  const acts: ArrayLike<number>[] = [x];
  const zs: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    const z = addBias(
      matmul(acts[l], params.weights[l], batch, sizes[l], sizes[l + 1]),
      params.biases[l],
    );
    zs.push(z);
    if (l < L - 1) acts.push(relu(z));
  }
  return { acts, zs, probs: softmax(zs[L - 1], batch, sizes[L]) };
}

/** Loss and gradients of one batch. */
export interface BatchGradients {
  /** Mean cross-entropy over the batch. */
  loss: number;
  /** ∂L/∂W per layer, `[in, out]`. */
  weights: Float64Array[];
  /** ∂L/∂b per layer. */
  biases: Float64Array[];
}

/** Forward and backward pass: the batch loss and every parameter's gradient. */
export function lossAndGradients(
  params: MlpParams,
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
): BatchGradients {
  const { sizes } = params;
  const batch = labels.length;
  const L = sizes.length - 1;
  const fw = forward(params, x, batch);
  const losses = crossEntropy(fw.probs, labels, sizes[L]);
  let loss = 0;
  for (const v of losses) loss += v;
  loss /= batch;

  const gw: Float64Array[] = new Array(L);
  const gb: Float64Array[] = new Array(L);
  let gz = softmaxCrossEntropyBackward(fw.probs, labels, sizes[L]);
  for (let l = L - 1; l >= 0; l--) {
    gw[l] = matmulTransA(fw.acts[l], gz, batch, sizes[l], sizes[l + 1]);
    gb[l] = columnSums(gz, batch, sizes[l + 1]);
    if (l > 0) {
      const ga = matmulTransB(gz, params.weights[l], batch, sizes[l + 1], sizes[l]);
      gz = reluBackward(ga, fw.zs[l - 1]);
    }
  }
  return { loss, weights: gw, biases: gb };
}

/** θ ← θ − lr · ∂L/∂θ, in place. */
export function sgdUpdate(params: MlpParams, grads: BatchGradients, lr: number): void {
  for (let l = 0; l < params.weights.length; l++) {
    const w = params.weights[l], gw = grads.weights[l];
    for (let i = 0; i < w.length; i++) w[i] -= lr * gw[i];
    const b = params.biases[l], gb = grads.biases[l];
    for (let i = 0; i < b.length; i++) b[i] -= lr * gb[i];
  }
}

/** One SGD step on a batch, in place; returns the batch's mean loss. */
export function trainStep(
  params: MlpParams,
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  lr: number,
): number {
  const grads = lossAndGradients(params, x, labels);
  sgdUpdate(params, grads, lr);
  return grads.loss;
}

/** Predicted class (argmax of the logits) for each row of `x`. */
export function predict(params: MlpParams, x: ArrayLike<number>, batch: number): Uint8Array {
  const { zs } = forward(params, x, batch);
  const logits = zs[zs.length - 1];
  const n = params.sizes[params.sizes.length - 1];
  const out = new Uint8Array(batch);
  for (let r = 0; r < batch; r++) {
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[r * n + j] > logits[r * n + best]) best = j;
    out[r] = best;
  }
  return out;
}

/**
 * The batches of an epoch, in order: `[start, count]` pairs covering
 * `0..n-1`; the last batch holds the remainder when `batchSize` does not
 * divide `n`. Both trainers take batches from here, so their order is one.
 */
export function batchRanges(n: number, batchSize: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += batchSize) out.push([s, Math.min(batchSize, n - s)]);
  return out;
}

/** Multiply-adds of one training step on `batch` rows (forward + backward). */
export function stepMultiplyAdds(batch: number, sizes: readonly number[] = LAYER_SIZES): number {
  let macs = 0;
  for (let l = 0; l + 1 < sizes.length; l++) {
    const mk = sizes[l] * sizes[l + 1];
    macs += 2 * batch * mk; // forward x·W and weight gradient aᵀ·∂z
    if (l > 0) macs += batch * mk; // input gradient ∂z·Wᵀ (none for the first layer)
  }
  return macs;
}
