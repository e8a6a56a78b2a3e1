// inputGradReluMaskTexture: dZ[r, n] = (Σ_k G[r, k] · W[n, k]) · (act[r, n] > 0 ? 1 : 0)
//   G: rgba32float texture [rows][K/4] = ∂L/∂z of the next layer
//   W: rgba32float texture [N][K/4], the next layer's weights [in = N, out = K]
//   act: [rows, N] (vec4s) this layer's ReLU output, dZ: [rows, N] (vec4s)
// Differentiates  a = relu(z); z_next = a·W + b  (matmulBiasRelu.wgsl):
//   ∂a = ∂z_next · Wᵀ, ∂z = ∂a where a > 0. W is read before its update.
// Both operands are read along rows of length K, 4 at a time, with
// textureLoad; each invocation computes an RM × RN block (RN a multiple of 4).
// Workgroups of 8 × 2, as the other texture kernels (more, smaller workgroups
// balance better over the cores of a CPU adapter).
// Needs K and N multiples of 4.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RM = SET_BY_HOST;
const RN = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(2) var gTex: texture_2d<f32>;
@group(0) @binding(4) var wTex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> act: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dz: array<vec4f>;

@compute @workgroup_size(8, 2)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * RM;
  let col0 = gid.x * RN;
  if (row0 >= step.count || col0 >= N) {
    return;
  }
  var acc: array<array<f32, RN>, RM>;
  for (var k4 = 0u; k4 < K / 4u; k4++) {
    var gv: array<vec4f, RM>;
    for (var i = 0u; i < RM; i++) {
      gv[i] = textureLoad(gTex, vec2u(k4, min(row0 + i, step.count - 1u)), 0);
    }
    for (var j = 0u; j < RN; j++) {
      let wv = textureLoad(wTex, vec2u(k4, min(col0 + j, N - 1u)), 0);
      for (var i = 0u; i < RM; i++) {
        acc[i][j] += dot(gv[i], wv);
      }
    }
  }
  for (var i = 0u; i < RM; i++) {
    let row = row0 + i;
    for (var j4 = 0u; j4 < RN / 4u; j4++) {
      let c = col0 / 4u + j4;
      if (row < step.count && c < N / 4u) {
        let a = act[row * (N / 4u) + c];
        let s = vec4f(acc[i][4u * j4], acc[i][4u * j4 + 1u], acc[i][4u * j4 + 2u], acc[i][4u * j4 + 3u]);
        dz[row * (N / 4u) + c] = select(vec4f(0.0), s, a > vec4f(0.0));
      }
    }
  }
}
