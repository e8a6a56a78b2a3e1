// weightGradTexture: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] — packed image bytes ÷ 255 from a storage buffer when
//      A_BYTES, else an rgba32float texture [rows][K/4]
//   G: rgba32float texture [rows][N/4] = ∂L/∂z (already ÷ batch size)
//   W: [K, N] (vec4s), b: [N] (vec4s), updated in place
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z,
// with the SGD update folded in (UPDATE_IN_PLACE; otherwise ∂W, ∂b are stored).
// Outer-product accumulation over the batch: per row r an invocation fetches
// RI values of A and 4·JV of G, 4 per texel, and does RI·4·JV multiply-adds
// into its block of W held in registers. Image bytes are read 16 pixels (one
// vec4u) at a time when K and RI allow it (A_VEC), else 4 (one u32). Loops
// marked `// unroll` are expanded by the host (`unrollLoops` in
// shared/kernels/sources.ts): llvmpipe keeps arrays indexed by loop counters in memory,
// and rolled, this kernel ran 20x slower there. Workgroups of 8 × 2 (on
// llvmpipe 8 × 8 ran ~20% slower: fewer, longer workgroups balance worse over
// the cores). Needs K, N, RI multiples of 4. The image buffer is bound as
// vec4u: its size must be a multiple of 16 bytes (the engine's are: 784 bytes
// an image).
// SKIP_ZERO_ROWS (bytes only): the rows come from the lists of
// nonzeroRows.wgsl, which leave out the rows whose pixels in this block of
// RI = BLOCK values of k are all zero (their terms are exact zeros). With
// IMAGE_WIDTH those values are 4 × 4 tiles of the image, not runs of a row:
// a tile of a digit is blank far more often (62% of (image, tile) pairs of
// the sample against 42% for 16 pixels of a row), and each ∂W[k, n] is still
// summed over the rows in order, so the sums stay bit for bit the same.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RI = SET_BY_HOST;
const JV = SET_BY_HOST; // vec4 columns per invocation (RJ = 4·JV)
const A_BYTES = SET_BY_HOST;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = SET_BY_HOST;
const SKIP_ZERO_ROWS = SET_BY_HOST;
const MAX_ROWS = SET_BY_HOST; // rows per list (SKIP_ZERO_ROWS)
// > 0 (bytes only): the K pixels are an image IMAGE_WIDTH wide, and an
// invocation's RI values of k are not consecutive pixels but 4 × 4 tiles of
// it (tileWord). Needs IMAGE_WIDTH and the image height multiples of 4.
const IMAGE_WIDTH = SET_BY_HOST;

const RI4 = RI / 4u; // A values per row in groups of 4
// Bytes read as vec4u (16 pixels): needs 16-byte aligned rows and blocks.
const TILED = A_BYTES && IMAGE_WIDTH > 0u;
const A_VEC = A_BYTES && !TILED && K % 16u == 0u && RI % 16u == 0u;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aVec: array<vec4u>;
@group(0) @binding(2) var aTex: texture_2d<f32>;
@group(0) @binding(4) var gTex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> bias: array<vec4f>;
@group(0) @binding(7) var<storage, read> rowList: array<u32>;

// 4 pixel bytes of a u32 as floats byte ÷ 255, each pixel scaled before its
// multiply as the slow trainer scales it (shared/model/mlp.ts): summing the raw
// bytes and scaling the sums once rounds differently, and on images with no
// blank pixels the losses drifted apart in the fourth decimal by epoch 2.
fn unpackBytes(word: u32) -> vec4f {
  return vec4f((vec4u(word) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu)) / 255.0;
}

// A[row, 4·k4 .. 4·k4+3].
fn loadA4(row: u32, k4: u32) -> vec4f {
  if (A_BYTES) {
    let at = (step.start + row) * (K / 4u) + k4; // u32 word of the packed bytes
    return unpackBytes(aVec[at / 4u][at % 4u]);
  }
  return textureLoad(aTex, vec2u(k4, row), 0);
}

// In tile order the pixels go tile by tile (tiles numbered along the image's
// rows of tiles), and within a tile row by row: the u32 word (4 pixels) that
// holds tile-order pixels 4·q .. 4·q + 3, and the pixel at tile-order p.
fn tileWord(q: u32) -> u32 {
  let tilesPerRow = max(IMAGE_WIDTH / 4u, 1u);
  let tile = q / 4u;
  return ((tile / tilesPerRow) * 4u + q % 4u) * tilesPerRow + tile % tilesPerRow;
}
fn tilePixel(p: u32) -> u32 {
  return tileWord(p / 4u) * 4u + p % 4u;
}

@compute @workgroup_size(8, 2)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * RI;
  let c0 = gid.x * JV;
  if (i0 >= K || c0 >= N / 4u) {
    return;
  }
  var acc: array<array<vec4f, JV>, RI>;
  var gsum: array<vec4f, JV>;
  // This block's list: a count, then the rows (block 0 lists every row, for ∂b).
  let listAt = gid.y * (MAX_ROWS + 1u);
  var rows = step.count;
  if (SKIP_ZERO_ROWS) {
    rows = rowList[listAt];
  }
  for (var n = 0u; n < rows; n++) {
    var r = n;
    if (SKIP_ZERO_ROWS) {
      r = rowList[listAt + 1u + n];
    }
    var g: array<vec4f, JV>;
    // unroll
    for (var j = 0u; j < JV; j++) {
      g[j] = textureLoad(gTex, vec2u(min(c0 + j, N / 4u - 1u), r), 0);
      gsum[j] += g[j];
    }
    // unroll
    for (var t = 0u; t < RI4; t++) {
      var a: vec4f;
      if (A_VEC) {
        // The 16-pixel group holding k = i0 + 4t .. +3 (clamped past the last row of W).
        let v = aVec[(step.start + r) * (K / 16u) + min(i0 / 16u + t / 4u, K / 16u - 1u)];
        a = unpackBytes(v[t % 4u]);
      } else if (TILED) {
        let at = (step.start + r) * (K / 4u) + tileWord(min(i0 / 4u + t, K / 4u - 1u));
        a = unpackBytes(aVec[at / 4u][at % 4u]);
      } else {
        a = loadA4(r, min(i0 / 4u + t, K / 4u - 1u));
      }
      // unroll
      for (var j = 0u; j < JV; j++) {
        acc[4u * t][j] = fma(vec4f(a.x), g[j], acc[4u * t][j]);
        acc[4u * t + 1u][j] = fma(vec4f(a.y), g[j], acc[4u * t + 1u][j]);
        acc[4u * t + 2u][j] = fma(vec4f(a.z), g[j], acc[4u * t + 2u][j]);
        acc[4u * t + 3u][j] = fma(vec4f(a.w), g[j], acc[4u * t + 3u][j]);
      }
    }
  }
  // unroll
  for (var i = 0u; i < RI; i++) {
    // unroll
    for (var j = 0u; j < JV; j++) {
      if (i0 + i < K && c0 + j < N / 4u) {
        let at = select(i0 + i, tilePixel(i0 + i), TILED) * (N / 4u) + c0 + j;
        if (UPDATE_IN_PLACE) {
          w[at] = w[at] - step.lr * acc[i][j];
        } else {
          w[at] = acc[i][j];
        }
      }
    }
  }
  if (i0 == 0u) {
    // unroll
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
