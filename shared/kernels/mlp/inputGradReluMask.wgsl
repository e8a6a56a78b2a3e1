// inputGradReluMask: dZ[r, n] = (Σ_k G[r, k] · W[n, k]) · (act[r, n] > 0 ? 1 : 0)
//   G: [rows, K] = ∂L/∂z of the next layer, W: [N, K] the next layer's
//   weights (row-major [in = N, out = K]), act: [rows, N] this layer's ReLU
//   output, dZ: [rows, N] = ∂L/∂z of this layer
// Differentiates  a = relu(z); z_next = a·W + b  (matmulBiasRelu.wgsl):
//   ∂a = ∂z_next · Wᵀ, and ∂z = ∂a where z > 0 (⇔ a > 0), so only the
//   activations are kept. W must be read before this step's update of it.
// Register-blocked: each invocation computes an RM × RN block from storage
// buffers. K, N, RM, RN are specialised by the host.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RM = SET_BY_HOST;
const RN = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> act: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * RM;
  let col0 = gid.x * RN;
  if (row0 >= step.count || col0 >= N) {
    return;
  }
  var acc: array<array<f32, RN>, RM>;
  for (var k = 0u; k < K; k++) {
    var gv: array<f32, RM>;
    for (var i = 0u; i < RM; i++) {
      gv[i] = g[min(row0 + i, step.count - 1u) * K + k];
    }
    for (var j = 0u; j < RN; j++) {
      let wv = w[min(col0 + j, N - 1u) * K + k];
      for (var i = 0u; i < RM; i++) {
        acc[i][j] = fma(gv[i], wv, acc[i][j]);
      }
    }
  }
  for (var i = 0u; i < RM; i++) {
    let row = row0 + i;
    for (var j = 0u; j < RN; j++) {
      let col = col0 + j;
      if (row < step.count && col < N) {
        dz[row * N + col] = select(0.0, acc[i][j], act[row * N + col] > 0.0);
      }
    }
  }
}
