/**
 * Optimisers: their hyper-parameters, defaults, and a float64 CPU reference
 * of one update step of each, the oracle of the GPU kernels
 * `shared/kernels/{sgdStep,momentumStep,adamStep}.wgsl`.
 *
 * The updates follow PyTorch (no weight decay, no dampening, no Nesterov):
 *
 * - SGD: θ ← θ − lr·g
 * - momentum (`torch.optim.SGD(momentum=μ)`): v ← μ·v + g; θ ← θ − lr·v
 *   (v starts at zero, so the first step is v = g, as PyTorch's clone).
 * - Adam (Kingma & Ba, `torch.optim.Adam`), step t = 1, 2, …:
 *   m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 *   θ ← θ − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + ε).
 *
 * @module
 */

/** The optimisers a trainer can use. */
export type OptimizerName = "sgd" | "momentum" | "adam";

/** Every optimiser name, in the order help texts list them. */
export const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "momentum", "adam"];

/** Optimiser settings of the fast trainer (both models). */
export interface OptimizerOptions {
  optimizer: OptimizerName;
  /** μ of the momentum optimiser. */
  momentum: number;
  /** Adam's decay of the first moment. */
  beta1: number;
  /** Adam's decay of the second moment. */
  beta2: number;
  /** Adam's ε, added to sqrt(v̂). */
  eps: number;
}

/** The defaults of PyTorch and Keras: plain SGD; μ 0.9; β1 0.9, β2 0.999, ε 1e-8. */
export const OPTIMIZER_DEFAULTS: OptimizerOptions = {
  optimizer: "sgd",
  momentum: 0.9,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
};

/** θ ← θ − lr·g, in place. */
export function sgdStep(param: Float32Array | Float64Array, grad: ArrayLike<number>, lr: number) {
  for (let i = 0; i < param.length; i++) param[i] -= lr * grad[i];
}

/** v ← μ·v + g; θ ← θ − lr·v, in place (PyTorch's SGD with momentum). */
export function momentumStep(
  param: Float32Array | Float64Array,
  grad: ArrayLike<number>,
  velocity: Float64Array,
  lr: number,
  momentum: number,
): void {
  for (let i = 0; i < param.length; i++) {
    velocity[i] = momentum * velocity[i] + grad[i];
    param[i] -= lr * velocity[i];
  }
}

/** Adam's state of one tensor: first and second moments. */
export interface AdamState {
  m: Float64Array;
  v: Float64Array;
}

/**
 * One Adam step `t` (1-based), in place, with PyTorch's bias correction:
 * θ ← θ − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + ε).
 */
export function adamStep(
  param: Float32Array | Float64Array,
  grad: ArrayLike<number>,
  state: AdamState,
  step: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
): void {
  const stepSize = lr / (1 - beta1 ** step);
  const sqrtCorrection2 = Math.sqrt(1 - beta2 ** step);
  const { m, v } = state;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    param[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / sqrtCorrection2 + eps);
  }
}

/**
 * The state an optimiser keeps for a list of tensors, and its step count:
 * float64 in this CPU reference (`optimizerStep` advances it; nothing is
 * global), float32 as the GPU engines hold it (fast/engine.ts).
 */
export interface OptimizerState<F extends Float32Array | Float64Array = Float64Array> {
  /** Steps taken so far (Adam's t after the next step is `step + 1`). */
  step: number;
  /** Momentum's velocity, or Adam's first moment, per tensor. */
  first: F[];
  /** Adam's second moment per tensor (empty otherwise). */
  second: F[];
}

/** Zero state for tensors of the given lengths. */
export function newOptimizerState(
  name: OptimizerName,
  lengths: readonly number[],
): OptimizerState {
  return {
    step: 0,
    first: name === "sgd" ? [] : lengths.map((n) => new Float64Array(n)),
    second: name === "adam" ? lengths.map((n) => new Float64Array(n)) : [],
  };
}

/** One step of `opts.optimizer` on every tensor in `params`, in place. */
export function optimizerStep(
  params: (Float32Array | Float64Array)[],
  grads: ArrayLike<number>[],
  state: OptimizerState,
  lr: number,
  opts: OptimizerOptions,
): void {
  state.step++;
  params.forEach((p, i) => {
    switch (opts.optimizer) {
      case "sgd":
        sgdStep(p, grads[i], lr);
        break;
      case "momentum":
        momentumStep(p, grads[i], state.first[i], lr, opts.momentum);
        break;
      case "adam":
        adamStep(
          p,
          grads[i],
          { m: state.first[i], v: state.second[i] },
          state.step,
          lr,
          opts.beta1,
          opts.beta2,
          opts.eps,
        );
        break;
    }
  });
}

/** Bytes of the `OptimizerStep` uniform of the optimiser kernels (9 fields, padded to 16). */
export const OPTIMIZER_UNIFORM_BYTES = 48;

/**
 * The `OptimizerStep` uniform of `sgdStep.wgsl`, `momentumStep.wgsl` and
 * `adamStep.wgsl`: `count` elements, step `t` (1-based), lr, μ, β1, β2, ε,
 * and Adam's bias corrections 1 − β1ᵗ and 1 − β2ᵗ computed here in float64.
 * Written into `into` at `offset` when given (e.g. one entry per step at
 * 256-byte strides, bound with a dynamic offset).
 */
export function optimizerUniform(
  count: number,
  step: number,
  lr: number,
  opts: OptimizerOptions,
  into: ArrayBuffer = new ArrayBuffer(OPTIMIZER_UNIFORM_BYTES),
  offset = 0,
): ArrayBuffer {
  const view = new DataView(into, offset, OPTIMIZER_UNIFORM_BYTES);
  view.setUint32(0, count, true);
  view.setUint32(4, step, true);
  view.setFloat32(8, lr, true);
  view.setFloat32(12, opts.momentum, true);
  view.setFloat32(16, opts.beta1, true);
  view.setFloat32(20, opts.beta2, true);
  view.setFloat32(24, opts.eps, true);
  view.setFloat32(28, 1 - opts.beta1 ** step, true);
  view.setFloat32(32, 1 - opts.beta2 ** step, true);
  return into;
}
