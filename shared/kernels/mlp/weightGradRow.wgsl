// weightGradRow: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] this layer's input (f32), G: [rows, N] = ∂L/∂z (already
//   divided by the batch size), W: [K, N], b: [N], updated in place
// Differentiates  z = A·W + b  (the output layer, outputLayer.wgsl):
// ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z, with the SGD update folded in (UPDATE_IN_PLACE;
// otherwise ∂W, ∂b are stored). The same sums in the same order as
// weightGrad.wgsl, shaped for a layer with few outputs (N = 10) on CPU
// adapters: one invocation per row k of W, holding all N of its outputs.
// llvmpipe runs neighbouring invocations as the lanes of one SIMD vector; here
// they are neighbouring k, so every lane works (register blocks of 4 × 4 put
// blocks of n side by side, and with N = 10 five lanes of eight idled), and all
// lanes read the same G[r, ·].

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> bias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= K) {
    return;
  }
  var acc: array<f32, N>;
  var gsum: array<f32, N>;
  for (var r = 0u; r < step.count; r++) {
    let av = a[r * K + k];
    // unroll
    for (var j = 0u; j < N; j++) {
      let gv = g[r * N + j];
      gsum[j] += gv;
      acc[j] = fma(av, gv, acc[j]);
    }
  }
  // unroll
  for (var j = 0u; j < N; j++) {
    let at = k * N + j;
    if (UPDATE_IN_PLACE) {
      w[at] = w[at] - step.lr * acc[j];
    } else {
      w[at] = acc[j];
    }
  }
  if (k == 0u) {
    // unroll
    for (var j = 0u; j < N; j++) {
      if (UPDATE_IN_PLACE) {
        bias[j] = bias[j] - step.lr * gsum[j];
      } else {
        bias[j] = gsum[j];
      }
    }
  }
}
