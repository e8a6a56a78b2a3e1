// countCorrect: confusion[y_r, p_r] += 1,  p_r = argmax_c logits[r, c]
//   logits[r, c] = Σ_k act[r, k] · W[k, c] + b[c]      act: [rows, K], W: [K, C], b: [C]
//   confusion: [C, C] counts, true class × predicted class (its trace: the right answers)
// The output layer at test time, fused with argmax (first maximum wins, as
// in the CPU reference) and the confusion counts, so that the whole test set
// needs one readback of C·C numbers.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const C = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> confusion: array<atomic<u32>>; // [C, C]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= step.count) {
    return;
  }
  var logits: array<f32, C>;
  for (var c = 0u; c < C; c++) {
    logits[c] = bias[c];
  }
  for (var k = 0u; k < K; k++) {
    let a = act[r * K + k];
    for (var c = 0u; c < C; c++) {
      logits[c] = fma(a, w[k * C + c], logits[c]);
    }
  }
  var best = 0u;
  for (var c = 1u; c < C; c++) {
    if (logits[c] > logits[best]) {
      best = c;
    }
  }
  atomicAdd(&confusion[labels[step.start + r] * C + best], 1u);
}
