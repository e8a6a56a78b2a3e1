// cnnScoreTest: correct[0] += Σ_{i < count} [argmax_j logits[i, j] = labels[order[start + i]]]
//   logits: [count, N]; labels, order: [n]; correct: [1] (u32, cleared before the test set)
// The argmax takes the first maximum, as the CPU reference does. One thread per image.

override N: u32;

struct Batch {
  start: u32,
  count: u32,
}

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // [count, N]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [n]
@group(0) @binding(3) var<storage, read> order: array<u32>; // [n]
@group(0) @binding(4) var<storage, read_write> correct: array<atomic<u32>>; // [1]

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
  if (best == labels[order[batch.start + i]]) {
    atomicAdd(&correct[0], 1u);
  }
}
