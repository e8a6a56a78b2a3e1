// cnnConvWeightGradTexture: the split-K weight gradient of a convolution, im2col implicit.
// Backward of  z[(b, oy, ox), n] = w[K, n] + Σ_k cols[(b, oy, ox), k] · w[k, n]  (cnnConvTexture):
//   ∂w[k, n] = Σ_m cols[m, k] · ∂z[m, n],  ∂w[K, n] (the bias row) = Σ_m ∂z[m, n], in slices:
//   part[s, k, n] = Σ_{m in slice s} cols[m, k] · g[m, n]   for k < K,   part[s, K, n] = Σ g[m, n]
//   with cols[(b, oy, ox), (ky, kx, c)] = a[b, oy + ky, ox + kx, c] read from a's texture,
//   a: rgba32float texture [count·H][W·C/4] (texel (x·C/4 + c4, b·H + y): a[b, y, x, 4·c4 ..]),
//   g: rgba32float texture [count·HO][WO·N/4] (∂z: texel (ox·N/4 + n4, b·HO + oy)), part: [S, K + 1, N] (as vec4), K = KS·KS·C,
//   M = count·HO·WO, slice s = rows s·SLICE_ROWS .. min(M, (s + 1)·SLICE_ROWS) − 1.
// The math of im2col + cnnMatmulTransAVec4, and the same sums in the same order (each output
// adds x·g row by row, from the same zero), so bit for bit their results. Each invocation
// sums an 8 × 4·NV block (8 values of k, C a multiple of 8 so that they are 2 texels of one
// pixel; the last block the bias row), its loops unrolled.

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
const BLOCKS_K = K / 8u + 1u; // the last block is the bias row
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
  if (t >= slices * BLOCKS_K * BLOCKS_N) {
    return;
  }
  let s = t / (BLOCKS_K * BLOCKS_N);
  let k0 = ((t / BLOCKS_N) % BLOCKS_K) * 8u;
  let c0 = (t % BLOCKS_N) * NV; // first vec4 column
  let bias = k0 == K;
  // k0 = (ky·KS + kx)·C + c: the pixel offset (ky, kx) and the first texel of the 8 channels.
  let p = min(k0, K - 1u) / C;
  let ky = p / KS;
  let kx = p % KS;
  let tx = kx * C4 + (k0 % C) / 4u;
  var acc: array<array<vec4f, NV>, 8>; // part[s, k0 + jj, 4·(c0 + j) ..]
  let mEnd = min(M, (s + 1u) * SLICE_ROWS);
  for (var m = s * SLICE_ROWS; m < mEnd; m++) {
    var al = vec4f(1.0, 0.0, 0.0, 0.0);
    var ah = vec4f(0.0);
    let ox = m % WO;
    let line = m / WO; // (b, oy): g's texture row
    if (!bias) {
      let y = (line / HO) * H + line % HO + ky;
      al = textureLoad(aTex, vec2u(ox * C4 + tx, y), 0);
      ah = textureLoad(aTex, vec2u(ox * C4 + tx + 1u, y), 0);
    }
    var gv: array<vec4f, NV>;
    // unroll
    for (var j = 0u; j < NV; j++) {
      gv[j] = textureLoad(gTex, vec2u(ox * N4 + c0 + j, line), 0);
    }
    let x = array<f32, 8>(al.x, al.y, al.z, al.w, ah.x, ah.y, ah.z, ah.w);
    // unroll
    for (var jj = 0u; jj < 8u; jj++) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        acc[jj][j] += x[jj] * gv[j];
      }
    }
  }
  let rows = select(8u, 1u, bias);
  // unroll
  for (var jj = 0u; jj < 8u; jj++) {
    if (jj < rows) {
      // unroll
      for (var j = 0u; j < NV; j++) {
        part[(s * (K + 1u) + k0 + jj) * N4 + c0 + j] = acc[jj][j];
      }
    }
  }
}
