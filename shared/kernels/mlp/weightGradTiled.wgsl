// weightGradTiled: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] (f32, or packed image bytes ÷ 255 when A_BYTES),
//   G: [rows, N] = ∂L/∂z (already ÷ batch size), W: [K, N], b: [N], in place
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z,
// with the SGD update folded in (UPDATE_IN_PLACE; otherwise ∂W, ∂b are stored).
// Tiled through workgroup memory: per step of 16 batch rows a 16 × 16 workgroup
// stages 16 × 16 tiles of A and of G; each invocation owns one weight.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = SET_BY_HOST;
const T = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> bias: array<f32>;

var<workgroup> aTile: array<array<f32, T>, T>; // [r][k]
var<workgroup> gTile: array<array<f32, T>, T>; // [r][n]

fn loadA(row: u32, k: u32) -> f32 {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k / 4u];
    return f32((word >> (8u * (k % 4u))) & 0xffu) / 255.0;
  }
  return bitcast<f32>(aWords[row * K + k]);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wg.y * T + lid.y; // the weight's row (input feature)
  let j = wg.x * T + lid.x; // the weight's column (output feature)
  let ka = wg.y * T + lid.x; // the A column this invocation stages
  var acc = 0.0;
  var gsum = 0.0;
  for (var r0 = 0u; r0 < step.count; r0 += T) {
    let r = r0 + lid.y;
    let inRows = r < step.count;
    aTile[lid.y][lid.x] = select(0.0, loadA(min(r, step.count - 1u), min(ka, K - 1u)), inRows && ka < K);
    gTile[lid.y][lid.x] = select(0.0, g[min(r, step.count - 1u) * N + min(j, N - 1u)], inRows && j < N);
    workgroupBarrier();
    for (var rr = 0u; rr < T; rr++) {
      let gv = gTile[rr][lid.x];
      acc = fma(aTile[rr][lid.y], gv, acc);
      gsum += gv;
    }
    workgroupBarrier();
  }
  if (i < K && j < N) {
    if (UPDATE_IN_PLACE) {
      w[i * N + j] = w[i * N + j] - step.lr * acc;
    } else {
      w[i * N + j] = acc;
    }
  }
  if (i == 0u && j < N) {
    if (UPDATE_IN_PLACE) {
      bias[j] = bias[j] - step.lr * gsum;
    } else {
      bias[j] = gsum;
    }
  }
}
