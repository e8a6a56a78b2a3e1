// matmulBiasReluTexture: out[r, n] = max(0, Σ_k A[r, k] · W[k, n] + b[n])
//   A: [rows, K] — when A_BYTES the packed image bytes ÷ 255 from a storage
//      buffer (16 pixels per vec4u), else an rgba32float texture [rows][K/4]
//   W: rgba32float texture [K][N/4] (a copy of the weight buffer), b: [N],
//   out: [rows, N] (as vec4s)
// The forward line of a hidden layer, a = relu(x·W + b). Each invocation
// computes an RM × 4·NV block in registers, 16 values of k per trip of its
// main loop: the sums stay in registers (`s`) for all 16 and are written back
// once. W is read with textureLoad: on CPU adapters (llvmpipe) a texel fetch
// costs several times less than a bounds-checked storage-buffer load, and one
// fetch brings 4 floats. Loops marked `// unroll` are expanded by the host
// (`unrollLoops` in shared/kernels/sources.ts): llvmpipe keeps arrays indexed by loop
// counters in memory (rolled, this kernel ran ~20% slower there, the weight
// gradient 20x).
// Workgroups of 8 × 2 (on llvmpipe ~5% faster than 8 × 8 for 500 × 784 · 784 ×
// 512: more, smaller workgroups balance better over the cores).
// Needs K a multiple of 16 and N a multiple of 4.
// The image buffer is bound as vec4u: its size must be a multiple of 16 bytes
// (the engine's are: 784 bytes an image).
// SKIP_ZERO_GROUPS (bytes only): the block's RM rows and its trips come from
// the lists of nonzeroGroups.wgsl: rows grouped by the shape of their digit
// (not necessarily consecutive), and the groups of 16 pixels that are not
// zero in every one of them (the terms left out are exact zeros).

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RM = SET_BY_HOST;
const NV = SET_BY_HOST; // vec4 columns per invocation (RN = 4·NV)
const A_BYTES = SET_BY_HOST;
const SKIP_ZERO_GROUPS = SET_BY_HOST;

const K16 = K / 16u; // trips of the main loop

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aVec: array<vec4u>;
@group(0) @binding(2) var aTex: texture_2d<f32>;
@group(0) @binding(4) var wTex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> bias: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> outAct: array<vec4f>;
@group(0) @binding(7) var<storage, read> groupList: array<u32>;

// 4 pixel bytes of a u32 as floats byte ÷ 255, each pixel scaled before its
// multiply as the slow trainer scales it (shared/model/mlp.ts): summing the raw
// bytes and scaling the sums once rounds differently, and on images with no
// blank pixels the losses drifted apart in the fourth decimal by epoch 2.
fn unpackBytes(word: u32) -> vec4f {
  return vec4f((vec4u(word) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu)) / 255.0;
}

@compute @workgroup_size(8, 2)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * RM;
  let c0 = gid.x * NV;
  if (row0 >= step.count || c0 >= N / 4u) {
    return;
  }
  var acc: array<array<vec4f, NV>, RM>;
  // This block's list: a count, the groups of 16 pixels to go through, its rows.
  let listAt = gid.y * (1u + K16 + RM);
  var trips = K16;
  var rowOf: array<u32, RM>; // the batch row of each of the block's rows
  // unroll
  for (var i = 0u; i < RM; i++) {
    rowOf[i] = min(row0 + i, step.count - 1u);
  }
  if (SKIP_ZERO_GROUPS) {
    trips = groupList[listAt];
    // unroll
    for (var i = 0u; i < RM; i++) {
      rowOf[i] = groupList[listAt + 1u + K16 + i];
    }
  }
  for (var trip = 0u; trip < trips; trip++) {
    var k16 = trip;
    if (SKIP_ZERO_GROUPS) {
      k16 = groupList[listAt + 1u + trip];
    }
    // Bytes: the 16 pixels of each row for this trip, unpacked 4 at a time below
    // (unpacking them all here would hold 4 times as many registers).
    var words: array<vec4u, RM>;
    if (A_BYTES) {
      // unroll
      for (var i = 0u; i < RM; i++) {
        words[i] = aVec[(step.start + rowOf[i]) * K16 + k16];
      }
    }
    var s = acc;
    // unroll
    for (var t = 0u; t < 4u; t++) {
      let k4 = 4u * k16 + t; // A[·, 4·k4 .. 4·k4+3]
      var a: array<vec4f, RM>;
      // unroll
      for (var i = 0u; i < RM; i++) {
        if (A_BYTES) {
          a[i] = unpackBytes(words[i][t]);
        } else {
          a[i] = textureLoad(aTex, vec2u(k4, rowOf[i]), 0);
        }
      }
      // unroll
      for (var j = 0u; j < NV; j++) {
        let c = min(c0 + j, N / 4u - 1u);
        let w0 = textureLoad(wTex, vec2u(c, 4u * k4), 0);
        let w1 = textureLoad(wTex, vec2u(c, 4u * k4 + 1u), 0);
        let w2 = textureLoad(wTex, vec2u(c, 4u * k4 + 2u), 0);
        let w3 = textureLoad(wTex, vec2u(c, 4u * k4 + 3u), 0);
        // unroll
        for (var i = 0u; i < RM; i++) {
          s[i][j] = fma(vec4f(a[i].x), w0, s[i][j]);
          s[i][j] = fma(vec4f(a[i].y), w1, s[i][j]);
          s[i][j] = fma(vec4f(a[i].z), w2, s[i][j]);
          s[i][j] = fma(vec4f(a[i].w), w3, s[i][j]);
        }
      }
    }
    acc = s; // the sums stayed in registers for 16 values of k
  }
  // unroll
  for (var i = 0u; i < RM; i++) {
    // unroll
    for (var j = 0u; j < NV; j++) {
      let c = c0 + j;
      if (row0 + i < step.count && c < N / 4u) {
        outAct[rowOf[i] * (N / 4u) + c] = max(acc[i][j] + bias[c], vec4f(0.0));
      }
    }
  }
}
