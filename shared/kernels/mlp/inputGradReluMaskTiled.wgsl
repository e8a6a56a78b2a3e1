// inputGradReluMaskTiled: dZ[r, n] = (Σ_k G[r, k] · W[n, k]) · (act[r, n] > 0 ? 1 : 0)
//   G: [rows, K] = ∂L/∂z of the next layer, W: [N, K] the next layer's weights,
//   act: [rows, N] this layer's ReLU output, dZ: [rows, N]
// Differentiates  a = relu(z); z_next = a·W + b  (matmulBiasRelu.wgsl):
//   ∂a = ∂z_next · Wᵀ, ∂z = ∂a where a > 0. W is read before its update.
// Tiled through workgroup memory: 16 × 16 tiles of G and of W per step of k.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const T = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> act: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;

var<workgroup> gTile: array<array<f32, T>, T>; // [row][k]
var<workgroup> wTile: array<array<f32, T>, T>; // [n][k]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * T + lid.y;
  let col = wg.x * T + lid.x;
  let wRow = wg.x * T + lid.y; // the W row (n) this invocation stages
  var acc = 0.0;
  for (var k0 = 0u; k0 < K; k0 += T) {
    let k = k0 + lid.x;
    gTile[lid.y][lid.x] = select(0.0, g[min(row, step.count - 1u) * K + min(k, K - 1u)], row < step.count && k < K);
    wTile[lid.y][lid.x] = select(0.0, w[min(wRow, N - 1u) * K + min(k, K - 1u)], wRow < N && k < K);
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk++) {
      acc = fma(gTile[lid.y][kk], wTile[lid.x][kk], acc);
    }
    workgroupBarrier();
  }
  if (row < step.count && col < N) {
    dz[row * N + col] = select(0.0, acc, act[row * N + col] > 0.0);
  }
}
