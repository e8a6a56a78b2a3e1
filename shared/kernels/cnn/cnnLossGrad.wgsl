// cnnLossGrad: softmax cross-entropy of each image i < count, forward and backward at once:
//   y = labels[start + i],  p = softmax(logits[i, :])
//   losses[start + i] = −log p[y] = log Σ_j exp(logits[i, j] − max) − (logits[i, y] − max)
//   glogits[i, j] = (p[j] − [j = y]) / count          (∂ of the batch mean of −log p[y])
//   logits, glogits: [count, N]; labels: [n] (u32, in the epoch's order); losses: [n], one slot
//   per position of the epoch's order, summed on the GPU by sumLosses at the epoch's end
//   (no per-step readback).
// One thread per image.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const N = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // [count, N]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [n]
@group(0) @binding(3) var<storage, read_write> losses: array<f32>; // [n]
@group(0) @binding(4) var<storage, read_write> glogits: array<f32>; // [count, N]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count) {
    return;
  }
  let y = labels[batch.start + i];
  var top = logits[i * N];
  for (var j = 1u; j < N; j++) {
    top = max(top, logits[i * N + j]);
  }
  var sum = 0.0;
  for (var j = 0u; j < N; j++) {
    sum += exp(logits[i * N + j] - top);
  }
  losses[batch.start + i] = log(sum) - (logits[i * N + y] - top);
  let scale = 1.0 / f32(batch.count);
  for (var j = 0u; j < N; j++) {
    let p = exp(logits[i * N + j] - top) / sum;
    glogits[i * N + j] = (p - select(0.0, 1.0, j == y)) * scale;
  }
}
