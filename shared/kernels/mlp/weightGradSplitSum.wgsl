// weightGradSplitSum: split-K second pass, then the SGD update
//   ∂W[k, n] = Σ_s partial[s, k·N + n];   ∂b[n] = Σ_s partial[s, K·N + n]   (s = 0, 1, … in order)
//   W[k, n] -= lr · ∂W[k, n];   b[n] -= lr · ∂b[n]       W: [K, N], b: [N], in place
// with s over the ⌈rows / CHUNK⌉ chunks weightGradSplit.wgsl wrote.
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z.
// UPDATE_IN_PLACE false: w and bias are gradient buffers and ∂W, ∂b are
// stored, for an optimiser step (momentumStep.wgsl, adamStep.wgsl).

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const CHUNK = SET_BY_HOST;
const UPDATE_IN_PLACE = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read_write> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> bias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o = gid.x;
  if (o >= K * N + N) {
    return;
  }
  let chunks = (step.count + CHUNK - 1u) / CHUNK;
  var sum = 0.0;
  for (var s = 0u; s < chunks; s++) {
    sum += partial[s * (K * N + N) + o];
  }
  if (o < K * N) {
    if (UPDATE_IN_PLACE) {
      w[o] = w[o] - step.lr * sum;
    } else {
      w[o] = sum;
    }
  } else {
    let n = o - K * N;
    if (UPDATE_IN_PLACE) {
      bias[n] = bias[n] - step.lr * sum;
    } else {
      bias[n] = sum;
    }
  }
}
