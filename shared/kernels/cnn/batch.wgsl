// Batch: the uniform entry each CNN kernel reads at binding 0, one per batch:
// the epoch's training batches, then the test set's (fast/cnn/buffers.ts writes
// them once, at 256-byte strides, bound with a dynamic offset, so one bind group
// per kernel serves every batch, the last partial one included). kernelSource
// (shared/kernels/sources.ts) prepends this file to every kernel under
// shared/kernels/cnn/, so each of them declares `var<uniform> batch: Batch`
// without a copy of the struct.

struct Batch {
  // First image of the batch in its set: the training set (in the epoch's
  // order) or the test set. Per-image outputs (losses) are indexed from here.
  start: u32,
  // Images in the batch: the batch size, or fewer for a set's last batch.
  count: u32,
}
