// Batch: the per-batch uniform entry every MLP and CNN kernel reads at binding
// 0, one per dispatch's batch: a training batch, a test batch (or chunk), the
// epoch's loss sum, or (MLP) a tuning run. The engines write their tables once
// (fast/mlp/buffers.ts, fast/cnn/buffers.ts), at 256-byte strides, bound with a
// dynamic offset, so one bind group per kernel serves every batch, the last
// partial one included. kernelSource (shared/kernels/sources.ts) prepends this
// file to every kernel under shared/kernels/mlp/, cnn/ and common/, so each of
// them declares its `var<uniform> …: Batch` without a copy of the struct.

struct Batch {
  // First image of the batch in its set: the training set (in the epoch's
  // order) or the test set. Per-image outputs (losses) are indexed from here.
  start: u32,
  // Images (rows) in the batch: the batch size, or fewer for a set's last batch.
  count: u32,
  // MLP: the learning rate of the SGD update folded into the weight-gradient
  // kernels (0 for test chunks, the loss sum and tuning runs: the weights
  // stay). The CNN's kernels do not read it (0).
  lr: f32,
  // MLP: where the batch's layer-1 row order starts in the row-order buffer
  // (nonzeroGroups.wgsl), or NO_ORDER (0xffffffff): the rows in their order.
  // The CNN's kernels do not read it (0).
  rowOrder: u32,
}
