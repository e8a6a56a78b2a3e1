// argmaxConfusion: for each row i < count of a test batch (or chunk), with y = labels[start + i]
//   and p = argmax_j logits[i, j] (the first maximum: a later class wins only when strictly
//   greater, as the CPU references, cnnPredict and the slow trainer's argmax.wgsl take it):
//   confusion[y, p] += 1
//   logits: [count, CLASSES]; labels: [n] (u32); confusion: [CLASSES, CLASSES] (u32 atomics,
//   cleared before the test set; its trace is the number of correct predictions).
// One thread per row.
//
// Both models' test passes end with it: the CNN's on its logits (fast/cnn/step.ts), the MLP's
// on the logits of mlp/outputLogits.wgsl (fast/mlp/step.ts). The MLP's output layer at test
// time used to be fused with this count (countCorrect.wgsl); it is a separate kernel now so
// that the argmax rule and the confusion counts are written once for both models: the
// logits it writes are the same f32 numbers the fused kernel kept in registers, so the
// counts are the same.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const CLASSES = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // [count, CLASSES]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [n]
@group(0) @binding(3) var<storage, read_write> confusion: array<atomic<u32>>; // [CLASSES, CLASSES]

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
  for (var j = 1u; j < CLASSES; j++) {
    if (logits[i * CLASSES + j] > logits[i * CLASSES + best]) {
      best = j;
    }
  }
  atomicAdd(&confusion[labels[batch.start + i] * CLASSES + best], 1u);
}
