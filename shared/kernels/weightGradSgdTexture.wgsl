// weightGradSgdTexture: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] — packed image bytes ÷ 255 from a storage buffer when
//      A_BYTES, else an rgba32float texture [rows][K/4]
//   G: rgba32float texture [rows][N/4] = ∂L/∂z (already ÷ batch size)
//   W: [K, N] (vec4s), b: [N] (vec4s), updated in place
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z,
// with the SGD update folded in (UPDATE_IN_PLACE; otherwise ∂W, ∂b are stored).
// Outer-product accumulation over the batch: per row r an invocation fetches
// RI values of A and 4·JV of G, 4 per texel, and does RI·4·JV multiply-adds
// into its block of W held in registers. Needs K, N, RI multiples of 4.

struct Step {
  start: u32,
  count: u32,
  lr: f32,
  _pad: u32,
}

const K = 784u;
const N = 512u;
const RI = 16u;
const JV = 4u; // vec4 columns per invocation (RJ = 4·JV)
const A_BYTES = true;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = true;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(2) var aTex: texture_2d<f32>;
@group(0) @binding(4) var gTex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> bias: array<vec4f>;

// A[row, 4·k4 .. 4·k4+3] ÷ A_SCALE: for bytes the pixel values 0..255 as they
// are; the ÷ 255 is applied once to the sums (a divide per pixel and row
// would cost ~10% of the kernel on a CPU adapter).
fn loadA4(row: u32, k4: u32) -> vec4f {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k4];
    return vec4f(vec4u(word, word >> 8u, word >> 16u, word >> 24u) & vec4u(0xffu));
  }
  return textureLoad(aTex, vec2u(k4, row), 0);
}

const A_SCALE = select(1.0, 1.0 / 255.0, A_BYTES);

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * RI;
  let c0 = gid.x * JV;
  if (i0 >= K || c0 >= N / 4u) {
    return;
  }
  var acc: array<array<vec4f, JV>, RI>;
  var gsum: array<vec4f, JV>;
  for (var r = 0u; r < step.count; r++) {
    var gv: array<vec4f, JV>;
    for (var j = 0u; j < JV; j++) {
      gv[j] = textureLoad(gTex, vec2u(min(c0 + j, N / 4u - 1u), r), 0);
      gsum[j] += gv[j];
    }
    for (var t = 0u; t < RI / 4u; t++) {
      let a = loadA4(r, min(i0 / 4u + t, K / 4u - 1u));
      for (var j = 0u; j < JV; j++) {
        acc[4u * t][j] = fma(vec4f(a.x), gv[j], acc[4u * t][j]);
        acc[4u * t + 1u][j] = fma(vec4f(a.y), gv[j], acc[4u * t + 1u][j]);
        acc[4u * t + 2u][j] = fma(vec4f(a.z), gv[j], acc[4u * t + 2u][j]);
        acc[4u * t + 3u][j] = fma(vec4f(a.w), gv[j], acc[4u * t + 3u][j]);
      }
    }
  }
  for (var i = 0u; i < RI; i++) {
    for (var j = 0u; j < JV; j++) {
      if (i0 + i < K && c0 + j < N / 4u) {
        let at = (i0 + i) * (N / 4u) + c0 + j;
        if (UPDATE_IN_PLACE) {
          w[at] = w[at] - (step.lr * A_SCALE) * acc[i][j];
        } else {
          w[at] = A_SCALE * acc[i][j];
        }
      }
    }
  }
  if (i0 == 0u) {
    for (var j = 0u; j < JV; j++) {
      if (c0 + j < N / 4u) {
        if (UPDATE_IN_PLACE) {
          bias[c0 + j] = bias[c0 + j] - step.lr * gsum[j];
        } else {
          bias[c0 + j] = gsum[j];
        }
      }
    }
  }
}
