// cnnScoreTest: for each image i < count of a test batch, with y = labels[start + i] and
//   p = argmax_j logits[i, j] (the first maximum, as the CPU reference and cnnPredict take it):
//   confusion[y, p] += 1
//   logits: [count, N]; labels: [n] (u32); confusion: [N, N] (u32 atomics, cleared before the
//   test set; its trace is the number of correct predictions).
// One thread per image.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const N = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // [count, N]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [n]
@group(0) @binding(3) var<storage, read_write> confusion: array<atomic<u32>>; // [N, N]

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
  var best = 0u;
  for (var j = 1u; j < N; j++) {
    if (logits[i * N + j] > logits[i * N + best]) {
      best = j;
    }
  }
  atomicAdd(&confusion[labels[batch.start + i] * N + best], 1u);
}
