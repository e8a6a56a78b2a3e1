// weightGrad: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] this layer's input (f32, or packed image bytes ÷ 255 when
//   A_BYTES), G: [rows, N] = ∂L/∂z (already divided by the batch size),
//   W: [K, N], b: [N], updated in place
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z,
// with the SGD update folded in (UPDATE_IN_PLACE; otherwise ∂W, ∂b are stored) so the gradient is never stored.
// Register-blocked: each invocation owns an RI × RJ block of W, accumulated
// over the batch as outer products; the invocations of the first row block
// also own the bias.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RI = SET_BY_HOST;
const RJ = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> bias: array<f32>;

fn loadA(row: u32, k: u32) -> f32 {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k / 4u];
    return f32((word >> (8u * (k % 4u))) & 0xffu) / 255.0;
  }
  return bitcast<f32>(aWords[row * K + k]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * RI;
  let j0 = gid.x * RJ;
  if (i0 >= K || j0 >= N) {
    return;
  }
  var acc: array<array<f32, RJ>, RI>;
  var gsum: array<f32, RJ>;
  for (var r = 0u; r < step.count; r++) {
    var av: array<f32, RI>;
    for (var i = 0u; i < RI; i++) {
      av[i] = loadA(r, min(i0 + i, K - 1u));
    }
    for (var j = 0u; j < RJ; j++) {
      let gv = g[r * N + min(j0 + j, N - 1u)];
      gsum[j] += gv;
      for (var i = 0u; i < RI; i++) {
        acc[i][j] = fma(av[i], gv, acc[i][j]);
      }
    }
  }
  for (var i = 0u; i < RI; i++) {
    for (var j = 0u; j < RJ; j++) {
      if (i0 + i < K && j0 + j < N) {
        let at = (i0 + i) * N + j0 + j;
        if (UPDATE_IN_PLACE) {
          w[at] = w[at] - step.lr * acc[i][j];
        } else {
          w[at] = acc[i][j];
        }
      }
    }
  }
  if (i0 == 0u) {
    for (var j = 0u; j < RJ; j++) {
      if (j0 + j < N) {
        if (UPDATE_IN_PLACE) {
          bias[j0 + j] = bias[j0 + j] - step.lr * gsum[j];
        } else {
          bias[j0 + j] = gsum[j];
        }
      }
    }
  }
}
