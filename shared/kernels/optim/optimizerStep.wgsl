// OptimizerStep: the uniform every optimiser kernel (sgdStep, momentumStep,
// adamStep) reads at binding 0, one per step, laid out by optimizerUniform
// (shared/model/optim.ts, OPTIMIZER_UNIFORM_BYTES; each hyper-parameter at
// its HYPER_PARAMETERS offset, zero where the run's optimiser does not read
// it), so a trainer can switch kernels without new buffers. kernelSource (shared/kernels/sources.ts)
// prepends this file to every kernel under shared/kernels/optim/, so each of
// them declares `var<uniform> hp: OptimizerStep` without a copy of the struct.

struct OptimizerStep {
  // Elements to update: param, grad and the optimiser's state are [count].
  count: u32,
  // The step t, 1-based (Adam's bias corrections below are of this t).
  step: u32,
  // Learning rate.
  lr: f32,
  // Momentum μ (momentumStep).
  momentum: f32,
  // Adam's β1, β2 and ε (adamStep).
  beta1: f32,
  beta2: f32,
  eps: f32,
  // Adam's bias corrections 1 − β1^t and 1 − β2^t, computed on the host in
  // float64 (adamStep.wgsl says why).
  correction1: f32,
  correction2: f32,
  // AdamW's decoupled weight decay λ (adamStep; zero for Adam).
  weightDecay: f32,
}
