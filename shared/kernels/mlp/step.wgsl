// Step: the uniform entry each MLP kernel reads at binding 0, one per
// dispatch's batch (fast/mlp/buffers.ts writes them once, at 256-byte
// strides, bound with a dynamic offset): a training batch, a test chunk,
// the epoch's loss sum or a tuning run. kernelSource (shared/kernels/sources.ts)
// prepends this file to every kernel under shared/kernels/mlp/, so each of
// them declares `var<uniform> step: Step` without a copy of the struct.

struct Step {
  // First image of the batch (or test chunk) in the dataset.
  start: u32,
  // Rows (images) in the batch.
  count: u32,
  // Learning rate of the SGD update folded into the weight-gradient kernels
  // (0 for test chunks, the loss sum and tuning runs: the weights stay).
  lr: f32,
  // Where the batch's layer-1 row order starts in the row-order buffer
  // (nonzeroGroups.wgsl), or NO_ORDER (0xffffffff): the rows in their order.
  rowOrder: u32,
}
