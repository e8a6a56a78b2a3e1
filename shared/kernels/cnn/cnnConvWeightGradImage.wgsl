// cnnConvWeightGradImage: the split-K weight gradient of a one-channel convolution, read straight
// from the image (no im2col columns).
// Backward of  z[(b, oy, ox), n] = w[KPAD, n] + Σ_{ky, kx < KS} x[b, oy + ky, ox + kx] · w[ky·KS + kx, n]
// (cnnConvPoolTexture, or im2colVec4 + cnnMatmulVec4):
//   part[s, ky·KS + kx, n] = Σ_{m in slice s} x[b, oy + ky, ox + kx] · g[m, n],   m = (b, oy, ox),
//   part[s, KPAD, n] = Σ_{m in slice s} g[m, n] (the bias row),   part[s, k, n] = 0 for KS·KS ≤ k < KPAD,
//   x: [count, H, W] (f32), g: [count·HO·WO, N] (∂z, as vec4), part: [S, KPAD + 1, N] (as vec4),
//   M = count·HO·WO, slice s = rows s·SLICE_ROWS .. min(M, (s + 1)·SLICE_ROWS) − 1.
// The sums of im2colVec4 + cnnMatmulTransAVec4 (conv1's im2col variant), in the same order: each
// output adds x·g row by row from zero, so bit for bit their results, without writing the
// im2col columns and reading them back. Each invocation takes one kernel row ky × 4·NV channels
// of one slice and walks the slice's rows keeping the row's KS pixels x[b, oy + ky, ox .. ox +
// KS − 1] in registers: a step along a line loads one new pixel and NV vec4s of g for KS·NV vec4
// multiply-adds. (On llvmpipe, 2 cores, conv1 of MNIST at batch 32: 0.86–1.05 ms a step, against
// 0.96–1.70 for a weight gradient on im2col columns and 0.68–1.08 more for writing them.) The bias
// sums ride along in every invocation; those of ky = 0 write them, those of ky = KS − 1 the zero
// rows of the padding.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const KS = SET_BY_HOST;
const KPAD = SET_BY_HOST; // w's rows before the bias: KS·KS, padded
const N = SET_BY_HOST;
const NV = SET_BY_HOST; // vec4 columns per invocation; N/4 a multiple of NV
const SLICE_ROWS = SET_BY_HOST;

const HO = H - KS + 1u;
const WO = W - KS + 1u;
const N4 = N / 4u;
const KS1 = KS - 1u;
const BLOCKS_N = N4 / NV;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> x: array<f32>; // [count, H, W]
@group(0) @binding(2) var<storage, read> g: array<vec4f>; // [count·HO·WO, N / 4]
@group(0) @binding(3) var<storage, read_write> part: array<vec4f>; // [S, KPAD + 1, N / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * HO * WO;
  let slices = (M + SLICE_ROWS - 1u) / SLICE_ROWS;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= slices * KS * BLOCKS_N) {
    return;
  }
  let s = t / (KS * BLOCKS_N);
  let ky = (t / BLOCKS_N) % KS;
  let c0 = (t % BLOCKS_N) * NV; // first vec4 column
  var acc: array<array<vec4f, NV>, KS>; // part[s, ky·KS + kx, 4·(c0 + j) ..]
  var bias: array<vec4f, NV>; // part[s, KPAD, 4·(c0 + j) ..]
  var win: array<f32, KS>; // win[kx] = x[b, oy + ky, ox + kx]
  let mStart = s * SLICE_ROWS;
  let mEnd = min(M, mStart + SLICE_ROWS);
  for (var m = mStart; m < mEnd; m++) {
    let ox = m % WO;
    let line = m / WO; // (b, oy)
    let b = line / HO;
    let at = (b * H + line % HO + ky) * W + ox; // x[b, oy + ky, ox]
    if (ox == 0u || m == mStart) {
      // A line (or the slice) starts: the pixels the shift below moves to kx = 0 .. KS − 2.
      // unroll
      for (var kx = 0u; kx < KS1; kx++) {
        win[kx + 1u] = x[at + kx];
      }
    }
    // unroll
    for (var kx = 0u; kx < KS1; kx++) {
      win[kx] = win[kx + 1u];
    }
    win[KS1] = x[at + KS1];
    var gv: array<vec4f, NV>;
    // unroll
    for (var j = 0u; j < NV; j++) {
      gv[j] = g[m * N4 + c0 + j];
      bias[j] += gv[j];
    }
    // unroll
    for (var kx = 0u; kx < KS; kx++) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        acc[kx][j] += win[kx] * gv[j];
      }
    }
  }
  let first = s * (KPAD + 1u); // part[s, 0, 0]
  // unroll
  for (var kx = 0u; kx < KS; kx++) {
    // unroll
    for (var j = 0u; j < NV; j++) {
      part[(first + ky * KS + kx) * N4 + c0 + j] = acc[kx][j];
    }
  }
  if (ky == 0u) {
    // unroll
    for (var j = 0u; j < NV; j++) {
      part[(first + KPAD) * N4 + c0 + j] = bias[j];
    }
  }
  if (ky == KS1) {
    for (var k = KS * KS; k < KPAD; k++) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        part[(first + k) * N4 + c0 + j] = vec4f(0.0);
      }
    }
  }
}
