// matmulBiasReluTexture: out[r, n] = max(0, Σ_k A[r, k] · W[k, n] + b[n])
//   A: [rows, K] — when A_BYTES the packed image bytes (4 pixels per u32) ÷ 255
//      from a storage buffer, else an rgba32float texture [rows][K/4]
//   W: rgba32float texture [K][N/4] (a copy of the weight buffer), b: [N],
//   out: [rows, N] (as vec4s)
// The forward line of a hidden layer, a = relu(x·W + b). Each invocation
// computes an RM × 4·NV block in registers. Operands are read with
// textureLoad: on CPU adapters (llvmpipe) a texel fetch costs several times
// less than a bounds-checked storage-buffer load, and one fetch brings 4 floats.
// Needs K and N multiples of 4.

struct Step {
  start: u32,
  count: u32,
  lr: f32,
  _pad: u32,
}

const K = 784u;
const N = 512u;
const RM = 16u;
const NV = 4u; // vec4 columns per invocation (RN = 4·NV)
const A_BYTES = true;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(2) var aTex: texture_2d<f32>;
@group(0) @binding(4) var wTex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> bias: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> outAct: array<vec4f>;

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
  let row0 = gid.y * RM;
  let c0 = gid.x * NV;
  if (row0 >= step.count || c0 >= N / 4u) {
    return;
  }
  var acc: array<array<vec4f, NV>, RM>;
  for (var k4 = 0u; k4 < K / 4u; k4++) {
    var av: array<vec4f, RM>;
    for (var i = 0u; i < RM; i++) {
      av[i] = loadA4(min(row0 + i, step.count - 1u), k4);
    }
    for (var j = 0u; j < NV; j++) {
      let c = min(c0 + j, N / 4u - 1u);
      let w0 = textureLoad(wTex, vec2u(c, 4u * k4), 0);
      let w1 = textureLoad(wTex, vec2u(c, 4u * k4 + 1u), 0);
      let w2 = textureLoad(wTex, vec2u(c, 4u * k4 + 2u), 0);
      let w3 = textureLoad(wTex, vec2u(c, 4u * k4 + 3u), 0);
      for (var i = 0u; i < RM; i++) {
        var s = acc[i][j];
        s = fma(vec4f(av[i].x), w0, s);
        s = fma(vec4f(av[i].y), w1, s);
        s = fma(vec4f(av[i].z), w2, s);
        s = fma(vec4f(av[i].w), w3, s);
        acc[i][j] = s;
      }
    }
  }
  for (var i = 0u; i < RM; i++) {
    let row = row0 + i;
    for (var j = 0u; j < NV; j++) {
      let c = c0 + j;
      if (row < step.count && c < N / 4u) {
        outAct[row * (N / 4u) + c] = max(fma(acc[i][j], vec4f(A_SCALE), bias[c]), vec4f(0.0));
      }
    }
  }
}
