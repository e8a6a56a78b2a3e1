// cnnConvWeightGradTexture: the split-K weight gradient of a convolution, im2col implicit.
// Backward of  z[(b, oy, ox), n] = w[K, n] + Σ_k cols[(b, oy, ox), k] · w[k, n]  (cnnConvTexture):
//   ∂w[k, n] = Σ_m cols[m, k] · ∂z[m, n],  ∂w[K, n] (the bias row) = Σ_m ∂z[m, n], in slices:
//   part[s, k, n] = Σ_{m in slice s} cols[m, k] · g[m, n]   for k < K,   part[s, K, n] = Σ g[m, n]
//   with cols[(b, oy, ox), (ky, kx, c)] = a[b, oy + ky, ox + kx, c] read from a's texture,
//   a: rgba32float texture [count·H][W·C/4] (texel (x·C/4 + c4, b·H + y): a[b, y, x, 4·c4 ..]),
//   g: rgba32float texture [count·HO][WO·N/4] (∂z: texel (ox·N/4 + n4, b·HO + oy)),
//   part: [S, K + 1, N] (as vec4), K = KS·KS·C, M = count·HO·WO,
//   slice s = rows s·SLICE_ROWS .. min(M, (s + 1)·SLICE_ROWS) − 1.
// The math of im2col + cnnMatmulTransAVec4, and the same sums in the same order (each output
// adds x·g row by row, from the same zero), so bit for bit their results. Each invocation sums
// the rows k = (ky, kx, 4·c4 .. 4·c4 + 3) for one ky, one texel of channels c4 and every kx (4·KS
// rows) × 4·NV columns, its loops unrolled. Walking its slice's rows along a line of a, it keeps
// the KS texels a[b, oy + ky, ox .. ox + KS − 1, 4·c4 ..] in registers and fetches one new texel a
// step, with NV texels of g, for 4·KS·NV vec4 multiply-adds (conv2 of MNIST, NV = 4: 80 vec4 sums,
// more than llvmpipe keeps in registers, yet 1.6–1.9 ms a step of 32 against 2.1–2.6 for blocks of
// 8 values of k × 16 columns that fetched 2 texels of a and 4 of g a row for 32 multiply-adds).
// The bias sums ride along in every invocation; those of ky = 0, c4 = 0 write them.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const KS = SET_BY_HOST;
const N = SET_BY_HOST;
const NV = SET_BY_HOST; // vec4 columns per invocation; N/4 a multiple of NV
const SLICE_ROWS = SET_BY_HOST;

const HO = H - KS + 1u;
const WO = W - KS + 1u;
const C4 = C / 4u;
const K = KS * KS * C;
const N4 = N / 4u;
const KS1 = KS - 1u;
const BLOCKS_N = N4 / NV;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var aTex: texture_2d<f32>; // [count·H][W·C/4]
@group(0) @binding(2) var gTex: texture_2d<f32>; // [count·HO][WO·N/4]
@group(0) @binding(3) var<storage, read_write> part: array<vec4f>; // [S, K + 1, N / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * HO * WO;
  let slices = (M + SLICE_ROWS - 1u) / SLICE_ROWS;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= slices * KS * C4 * BLOCKS_N) {
    return;
  }
  // Neighbouring invocations share the slice (the same row m in every SIMD lane).
  let c0 = (t % BLOCKS_N) * NV; // first vec4 column
  let c4 = (t / BLOCKS_N) % C4;
  let ky = (t / (BLOCKS_N * C4)) % KS;
  let s = t / (BLOCKS_N * C4 * KS);
  var acc: array<array<array<vec4f, NV>, 4>, KS>; // part[s, (ky·KS + kx)·C + 4·c4 + cc, 4·(c0 + j) ..]
  var bias: array<vec4f, NV>; // part[s, K, 4·(c0 + j) ..]
  var win: array<vec4f, KS>; // win[kx] = a[b, oy + ky, ox + kx, 4·c4 ..]
  let mStart = s * SLICE_ROWS;
  let mEnd = min(M, mStart + SLICE_ROWS);
  for (var m = mStart; m < mEnd; m++) {
    let ox = m % WO;
    let line = m / WO; // (b, oy): g's texture row
    let y = (line / HO) * H + line % HO + ky; // a's texture row: (b, oy + ky)
    if (ox == 0u || m == mStart) {
      // A line (or the slice) starts: the texels the shift below moves to kx = 0 .. KS − 2.
      // unroll
      for (var kx = 0u; kx < KS1; kx++) {
        win[kx + 1u] = textureLoad(aTex, vec2u((ox + kx) * C4 + c4, y), 0);
      }
    }
    // unroll
    for (var kx = 0u; kx < KS1; kx++) {
      win[kx] = win[kx + 1u];
    }
    win[KS1] = textureLoad(aTex, vec2u((ox + KS1) * C4 + c4, y), 0);
    var gv: array<vec4f, NV>;
    // unroll
    for (var j = 0u; j < NV; j++) {
      gv[j] = textureLoad(gTex, vec2u(ox * N4 + c0 + j, line), 0);
      bias[j] += gv[j];
    }
    // unroll
    for (var kx = 0u; kx < KS; kx++) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        acc[kx][0][j] += win[kx].x * gv[j];
        acc[kx][1][j] += win[kx].y * gv[j];
        acc[kx][2][j] += win[kx].z * gv[j];
        acc[kx][3][j] += win[kx].w * gv[j];
      }
    }
  }
  let first = s * (K + 1u); // part[s, 0, 0]
  // unroll
  for (var kx = 0u; kx < KS; kx++) {
    // unroll
    for (var cc = 0u; cc < 4u; cc++) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        part[(first + (ky * KS + kx) * C + 4u * c4 + cc) * N4 + c0 + j] = acc[kx][cc][j];
      }
    }
  }
  if (ky == 0u && c4 == 0u) {
    // unroll
    for (var j = 0u; j < NV; j++) {
      part[(first + K) * N4 + c0 + j] = bias[j];
    }
  }
}
