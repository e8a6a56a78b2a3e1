// outputLogits: the output layer at test time, without softmax or loss
//   logits[r, c] = b[c] + Σ_k act[r, k] · W[k, c]      act: [rows, K], W: [K, C], b: [C]
//   logits: [rows, C]
// The sum is taken in k order with fma, from the bias, as outputLayer.wgsl's forward does.
// One thread per row; common/argmaxConfusion.wgsl then counts (label, argmax) pairs. (It was
// fused with that count in countCorrect.wgsl; see argmaxConfusion.wgsl for why it is not.)

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const C = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>; // [rows, C]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= step.count) {
    return;
  }
  var z: array<f32, C>;
  for (var c = 0u; c < C; c++) {
    z[c] = bias[c];
  }
  for (var k = 0u; k < K; k++) {
    let a = act[r * K + k];
    for (var c = 0u; c < C; c++) {
      z[c] = fma(a, w[k * C + c], z[c]);
    }
  }
  for (var c = 0u; c < C; c++) {
    logits[r * C + c] = z[c];
  }
}
