/**
 * The fast MLP's step on the GPU: the stages (dispatches) of one training
 * step and of the test pass, in the order they run, each with its formula
 * and shapes. This file only describes them (`MlpStage`); fast/mlp/encode.ts
 * records them into command buffers, with the variant the plan gives each
 * (fast/mlp/variants/matmul.ts: the matmul family of each slot, the output layer's
 * shape), and fast/mlp/engine.ts decides when.
 *
 * The network (shared/model/mlp.ts is its CPU reference), layer sizes
 * [n0, n1, …, nL], for a batch of `rows` images:
 *
 *     x [rows, n0] (bytes ÷ 255) → a_1 = relu(x·W_1 + b_1) → … → a_(L−1) [rows, n(L−1)]
 *       → z_L = a_(L−1)·W_L + b_L [rows, nL] → softmax → cross-entropy
 *
 * Hidden layers 1 … L − 1 each have a forward stage, an input-gradient
 * stage (not layer 1, whose input is the images) and a weight-gradient
 * stage; the output layer has two stages of its own. With SGD the weight
 * gradients update the weights in place; with momentum or Adam they store
 * ∂W, ∂b, and one optimiser stage updates every parameter at the end. Each
 * layer's input gradient is computed before its weights are updated.
 *
 * What a variant does beyond the formula is not a stage: blank-pixel lists
 * before layer 1's texture kernels (fast/mlp/variants/blank_pixels.ts), the copy of
 * an operand into the texture a texture variant reads, the split sums of the
 * output layer's weight gradient on GPUs. A stage names the operands it may
 * read from such a copy (`mirrored`) and those it writes (`writes`): the
 * encoder refreshes a copy right after its operand is written, when a stage
 * of the plan reads it.
 *
 * @module
 */

import type { Slot } from "./variants/matmul.ts";

/** One stage of a step. */
export interface MlpStage {
  /**
   * `matmul`: a tunable fused matmul (forward_i, inputGrad_i, weightGrad_i), its
   * variant the plan's; `output`: the output layer with softmax, cross-entropy and
   * their gradients; `outputWeightGrad`: the output layer's weight gradient;
   * `optimizer`: momentum's or Adam's update of every parameter; `logits` and
   * `confusion`: the test pass's output layer and its confusion counts.
   */
  kind: "matmul" | "output" | "outputWeightGrad" | "optimizer" | "logits" | "confusion";
  /** `matmul`: its slot. */
  slot?: Slot;
  /** Layer 1 of the test pass: reads the test images. */
  testImages?: boolean;
  /** Operands it reads that a variant may read from a copy (texture, uniform). */
  mirrored: string[];
  /** Operands it writes ("a<i>", "dz<i>", "W<i>"). */
  writes: string[];
}

/** A matmul stage of `slot`. */
function matmul(slot: Slot, mirrored: string[], writes: string[]): MlpStage {
  return { kind: "matmul", slot, mirrored, writes };
}

/** The forward stage of hidden layer i: a_i = relu(a_(i−1)·W_i + b_i). */
function forward(i: number, testImages = false): MlpStage {
  const input = i >= 2 ? [`a${i - 1}`] : []; // a_0 = x: image bytes, never copied
  return { ...matmul(`forward${i}`, [...input, `W${i}`], [`a${i}`]), testImages };
}

// ---------------------------------------------------------------------------
// One training step

/**
 * The stages of one training step for layer sizes `sizes` = [n0, …, nL]
 * (L ≥ 2); `storeGradients`: momentum or Adam (else SGD, in place).
 */
export function trainStages(sizes: readonly number[], storeGradients: boolean): MlpStage[] {
  const L = sizes.length - 1;
  const updates = (i: number) => storeGradients ? [] : [`W${i}`];
  const stages: MlpStage[] = [];
  // Forward, hidden layers i = 1 … L − 1, a_0 = x (the batch's image bytes ÷ 255):
  //   a_i = relu(a_(i−1)·W_i + b_i)     a_(i−1): [rows, n(i−1)], W_i: [n(i−1), n_i], a_i: [rows, n_i]
  for (let i = 1; i < L; i++) stages.push(forward(i));
  // The output layer, its loss and its gradient:
  //   z_L = a_(L−1)·W_L + b_L, p = softmax(z_L), losses[start + r] = −log p[r, y_r]    [rows, nL]
  //   ∂z_L = (p − onehot(y)) / rows: [rows, nL]
  // and, fused (the row's ∂z_L is at hand), the backward of  a_(L−1) = relu(z_(L−1)),
  // z_L = a_(L−1)·W_L + b_L  for a_(L−1), with W_L before its update:
  //   ∂z_(L−1) = (∂z_L·W_Lᵀ) ⊙ (a_(L−1) > 0): [rows, n(L−1)]
  stages.push({ kind: "output", mirrored: [`W${L}`], writes: [`dz${L - 1}`] });
  // Backward of  z_L = a_(L−1)·W_L + b_L  for W_L, b_L:
  //   ∂W_L = a_(L−1)ᵀ·∂z_L: [n(L−1), nL], ∂b_L = Σ_r ∂z_L;  SGD: W_L −= lr·∂W_L, b_L −= lr·∂b_L
  stages.push({ kind: "outputWeightGrad", mirrored: [], writes: updates(L) });
  for (let i = L - 1; i >= 1; i--) {
    const input = i >= 2 ? [`a${i - 1}`] : [];
    if (i >= 2) {
      // Backward of  a_i = relu(a_(i−1)·W_i + b_i)  for its input, with W_i before its update:
      //   ∂z_(i−1) = (∂z_i·W_iᵀ) ⊙ (a_(i−1) > 0)    ∂z_i: [rows, n_i] → ∂z_(i−1): [rows, n(i−1)]
      // (layer 1's input is the images: no input gradient)
      stages.push(matmul(`inputGrad${i}`, [`dz${i}`, `W${i}`], [`dz${i - 1}`]));
    }
    // Backward of  a_i = relu(a_(i−1)·W_i + b_i)  for W_i, b_i:
    //   ∂W_i = a_(i−1)ᵀ·∂z_i: [n(i−1), n_i], ∂b_i = Σ_r ∂z_i;  SGD: W_i −= lr·∂W_i, b_i −= lr·∂b_i
    stages.push(matmul(`weightGrad${i}`, [...input, `dz${i}`], updates(i)));
  }
  if (storeGradients) {
    // Momentum, Adam(W): the weight-gradient stages stored ∂θ; now every parameter at once,
    //   θ[j] ← update(θ[j], ∂θ[j], state[j]) for each float j of the packed buffer
    const all = sizes.slice(1).map((_, l) => `W${l + 1}`);
    stages.push({ kind: "optimizer", mirrored: [], writes: all });
  }
  return stages;
}

// ---------------------------------------------------------------------------
// The test pass

/** The stages of the test pass on a chunk of the test images, for layer sizes `sizes`. */
export function testStages(sizes: readonly number[]): MlpStage[] {
  const L = sizes.length - 1;
  const stages: MlpStage[] = [];
  // Forward, hidden layers i = 1 … L − 1, as in training (layer 1 reads the test images):
  //   a_i = relu(a_(i−1)·W_i + b_i)
  for (let i = 1; i < L; i++) stages.push(forward(i, i === 1));
  // z_L = a_(L−1)·W_L + b_L                         [rows, n(L−1)] · [n(L−1), nL] → [rows, nL]
  stages.push({ kind: "logits", mirrored: [], writes: [] });
  // confusion[y_r, argmax_c z_L[r, c]] += 1 (first maximum)   confusion: [nL, nL], cleared first
  stages.push({ kind: "confusion", mirrored: [], writes: [] });
  return stages;
}
