/**
 * The optimisers, in one table: for each its name, the state it keeps per
 * parameter tensor, the hyper-parameters it reads (with their defaults,
 * flags and help), its float64 CPU reference step (the oracle of the GPU
 * kernels) and its WGSL kernel under `shared/kernels/optim/`, whose
 * `OptimizerStep` uniform `optimizerUniform` fills. The command line
 * (shared/io/cli.ts), the checkpoints (fast/checkpoint.ts) and both fast
 * engines (fast/mlp/, fast/cnn/) read `OPTIMIZERS` and `HYPER_PARAMETERS`
 * instead of switching on an optimiser's name. (The slow trainer has SGD only.)
 *
 * The updates follow PyTorch (no dampening, no Nesterov; weight decay only in AdamW):
 *
 * - SGD: θ ← θ − lr·g
 * - momentum (`torch.optim.SGD(momentum=μ)`): v ← μ·v + g; θ ← θ − lr·v
 *   (v starts at zero, so the first step is v = g, as PyTorch's clone).
 * - Adam (Kingma & Ba, `torch.optim.Adam`), step t = 1, 2, …:
 *   m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 *   θ ← θ − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + ε).
 * - AdamW (Loshchilov & Hutter, `torch.optim.AdamW`): decoupled weight decay
 *   λ, θ ← θ − lr·λ·θ, then Adam's step (Adam is AdamW with λ = 0; both run
 *   adamStep.wgsl).
 *
 * Not here: which buffers hold the state on the GPU, or when the kernel runs
 * (the engines).
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Hyper-parameters

/** The hyper-parameters an optimiser may read besides the learning rate. */
export type HyperName = "momentum" | "beta1" | "beta2" | "eps" | "weightDecay";

/** A value for every hyper-parameter. */
export type HyperParameters = Record<HyperName, number>;

/** One hyper-parameter: its flag, default, allowed values, help, and its place in the uniform. */
export interface HyperParameter {
  /** Its command-line flag without the dashes (`--momentum`); its checkpoint metadata key is this with `_` for `-`. */
  flag: string;
  default: number;
  /** Allowed values: `fraction` [0, 1), `positive` > 0, `nonnegative` ≥ 0. */
  range: "fraction" | "positive" | "nonnegative";
  /** What it is, for `--help` (the default is added there). */
  help: string;
  /** Byte offset of its f32 in the `OptimizerStep` uniform (shared/kernels/optim/optimizerStep.wgsl). */
  offset: number;
  /**
   * Whether every checkpoint records it, whatever its optimiser (true for
   * the first four: files have always carried them, and a file's bytes stay
   * as they were); otherwise only checkpoints of an optimiser that reads it.
   */
  inEveryCheckpoint: boolean;
}

/** Every hyper-parameter, in the order `--help` and checkpoints list them. */
export const HYPER_PARAMETERS: Readonly<Record<HyperName, HyperParameter>> = {
  momentum: {
    flag: "momentum",
    default: 0.9,
    range: "fraction",
    help: "μ of momentum",
    offset: 12,
    inEveryCheckpoint: true,
  },
  beta1: {
    flag: "beta1",
    default: 0.9,
    range: "fraction",
    help: "Adam's β1",
    offset: 16,
    inEveryCheckpoint: true,
  },
  beta2: {
    flag: "beta2",
    default: 0.999,
    range: "fraction",
    help: "Adam's β2",
    offset: 20,
    inEveryCheckpoint: true,
  },
  eps: {
    flag: "eps",
    default: 1e-8,
    range: "positive",
    help: "Adam's ε",
    offset: 24,
    inEveryCheckpoint: true,
  },
  weightDecay: {
    flag: "weight-decay",
    default: 0.01,
    range: "nonnegative",
    help: "AdamW's decoupled weight decay λ: θ −= lr·λ·θ",
    offset: 36,
    inEveryCheckpoint: false,
  },
};

/** The hyper-parameters' names, in `HYPER_PARAMETERS`' order. */
export const HYPER_NAMES = Object.keys(HYPER_PARAMETERS) as readonly HyperName[];

// ---------------------------------------------------------------------------
// The table of optimisers

/** The optimisers a trainer can use: the keys of `OPTIMIZERS`. */
export type OptimizerName = "sgd" | "momentum" | "adam" | "adamw";

/** A kernel under shared/kernels/optim/, each taking the `OptimizerStep` uniform at binding 0. */
export type OptimizerKernel = "sgdStep" | "momentumStep" | "adamStep";

/** Optimiser settings of the fast trainer (both models): the optimiser and every hyper-parameter. */
export type OptimizerOptions = { optimizer: OptimizerName } & HyperParameters;

/** A parameter tensor, updated in place. */
type Param = Float32Array | Float64Array;

/** One optimiser (see the module doc). */
export interface Optimizer {
  /** Its `--optimizer` name. */
  name: OptimizerName;
  /** Its name in prose (help texts). */
  title: string;
  /** The hyper-parameters it reads besides lr; a flag of another is refused with it. */
  hyper: readonly HyperName[];
  /**
   * The state it keeps per parameter tensor, each part zero at the start:
   * `name` in checkpoints (`optim.<tensor>.<name>`), `label` on GPU buffers.
   */
  state: readonly { name: string; label: string }[];
  /**
   * Its kernel, shared/kernels/optim/<kernel>.wgsl: binding 0 the
   * `OptimizerStep` uniform (`optimizerUniform`), 1 the parameters, 2 the
   * gradients, then one buffer per `state` part, all of `count` floats.
   */
  kernel: OptimizerKernel;
  /**
   * True when its step is θ −= lr·g alone (no state): a gradient kernel may
   * apply it as it writes g, with no kernel of its own (the MLP's do).
   */
  fusable: boolean;
  /** Floating-point operations per parameter of one step (the profiler's count). */
  flops: number;
  /**
   * The float64 CPU reference: step `t` (1-based) on one tensor, in place;
   * `state` holds this tensor's parts, in `state`'s order.
   */
  step(
    param: Param,
    grad: ArrayLike<number>,
    state: Float64Array[],
    t: number,
    lr: number,
    o: OptimizerOptions,
  ): void;
}

/** Adam's state: its first and second moments. */
const ADAM_STATE = [
  { name: "m", label: "Adam first moment m" },
  { name: "v", label: "Adam second moment v" },
] as const;

/** Every optimiser, in the order help texts list them; the first is the default. */
export const OPTIMIZERS: Readonly<Record<OptimizerName, Optimizer>> = {
  sgd: {
    name: "sgd",
    title: "SGD",
    hyper: [],
    state: [],
    kernel: "sgdStep",
    fusable: true,
    flops: 2,
    step: (p, g, _s, _t, lr) => sgdStep(p, g, lr),
  },
  momentum: {
    name: "momentum",
    title: "momentum",
    hyper: ["momentum"],
    state: [{ name: "velocity", label: "momentum velocity v" }],
    kernel: "momentumStep",
    fusable: false,
    flops: 4,
    step: (p, g, [v], _t, lr, o) => momentumStep(p, g, v, lr, o.momentum),
  },
  adam: {
    name: "adam",
    title: "Adam",
    hyper: ["beta1", "beta2", "eps"],
    state: ADAM_STATE,
    kernel: "adamStep",
    fusable: false,
    flops: 12,
    step: (p, g, [m, v], t, lr, o) => adamStep(p, g, { m, v }, t, lr, o.beta1, o.beta2, o.eps),
  },
  adamw: {
    name: "adamw",
    title: "AdamW",
    hyper: ["beta1", "beta2", "eps", "weightDecay"],
    state: ADAM_STATE,
    kernel: "adamStep", // with the uniform's weightDecay λ (zero for Adam)
    fusable: false,
    flops: 15,
    step: (p, g, [m, v], t, lr, o) =>
      adamwStep(p, g, { m, v }, t, lr, o.beta1, o.beta2, o.eps, o.weightDecay),
  },
};

/** Every optimiser name, in the order help texts list them. */
export const OPTIMIZER_NAMES = Object.keys(OPTIMIZERS) as readonly OptimizerName[];

/** Whether `name` is an optimiser of the table. */
export function isOptimizerName(name: string): name is OptimizerName {
  return Object.hasOwn(OPTIMIZERS, name);
}

/** The defaults of PyTorch and Keras: plain SGD; each hyper-parameter's `default`. */
export const OPTIMIZER_DEFAULTS: OptimizerOptions = optimizerOptions(OPTIMIZER_NAMES[0], {});

/** The settings of optimiser `name`: `given` hyper-parameters, defaults for the rest. */
export function optimizerOptions(
  name: OptimizerName,
  given: Partial<HyperParameters>,
): OptimizerOptions {
  const o = { optimizer: name } as OptimizerOptions;
  for (const h of HYPER_NAMES) o[h] = given[h] ?? HYPER_PARAMETERS[h].default;
  return o;
}

// ---------------------------------------------------------------------------
// The CPU reference of each update

/** θ ← θ − lr·g, in place. */
export function sgdStep(param: Param, grad: ArrayLike<number>, lr: number) {
  for (let i = 0; i < param.length; i++) param[i] -= lr * grad[i];
}

/** v ← μ·v + g; θ ← θ − lr·v, in place (PyTorch's SGD with momentum). */
export function momentumStep(
  param: Param,
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
  param: Param,
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
 * One AdamW step `t` (1-based), in place: the decoupled weight decay
 * θ ← θ − lr·λ·θ, then Adam's step (`torch.optim.AdamW`).
 */
export function adamwStep(
  param: Param,
  grad: ArrayLike<number>,
  state: AdamState,
  step: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
): void {
  for (let i = 0; i < param.length; i++) param[i] -= lr * weightDecay * param[i];
  adamStep(param, grad, state, step, lr, beta1, beta2, eps);
}

/**
 * The state an optimiser keeps for a list of tensors, and its step count:
 * float64 in this CPU reference (`optimizerStep` advances it; nothing is
 * global), float32 as the GPU engines hold it (fast/engine.ts).
 */
export interface OptimizerState<F extends Float32Array | Float64Array = Float64Array> {
  /** Steps taken so far (Adam's t after the next step is `step + 1`). */
  step: number;
  /**
   * `parts[k][i]`: part k of the optimiser's `state` (momentum's velocity;
   * Adam's m, then v) of parameter tensor i. Empty for SGD.
   */
  parts: F[][];
}

/** Zero state for tensors of the given lengths. */
export function newOptimizerState(
  name: OptimizerName,
  lengths: readonly number[],
): OptimizerState {
  return {
    step: 0,
    parts: OPTIMIZERS[name].state.map(() => lengths.map((n) => new Float64Array(n))),
  };
}

/** One step of `opts.optimizer` on every tensor in `params`, in place. */
export function optimizerStep(
  params: Param[],
  grads: ArrayLike<number>[],
  state: OptimizerState,
  lr: number,
  opts: OptimizerOptions,
): void {
  state.step++;
  const optimizer = OPTIMIZERS[opts.optimizer];
  params.forEach((p, i) => {
    optimizer.step(p, grads[i], state.parts.map((part) => part[i]), state.step, lr, opts);
  });
}

// ---------------------------------------------------------------------------
// The kernels' uniform

/** Bytes of the `OptimizerStep` uniform of the optimiser kernels (10 fields, padded to 16). */
export const OPTIMIZER_UNIFORM_BYTES = 48;

/**
 * The `OptimizerStep` uniform of every optimiser kernel: `count` elements,
 * step `t` (1-based), lr, each hyper-parameter at its `offset` (the value of
 * `opts` where the optimiser reads it, else zero), and Adam's bias
 * corrections 1 − β1ᵗ and 1 − β2ᵗ computed here in float64. Written into
 * `into` at `offset` when given (e.g. one entry per step at 256-byte
 * strides, bound with a dynamic offset).
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
  const reads = OPTIMIZERS[opts.optimizer].hyper;
  const value = (h: HyperName) => reads.includes(h) ? opts[h] : 0;
  view.setUint32(0, count, true);
  view.setUint32(4, step, true);
  view.setFloat32(8, lr, true);
  for (const h of HYPER_NAMES) view.setFloat32(HYPER_PARAMETERS[h].offset, value(h), true);
  view.setFloat32(28, 1 - value("beta1") ** step, true);
  view.setFloat32(32, 1 - value("beta2") ** step, true);
  return into;
}
