// cnnMatmulTransAVec4: part[s, k, n] = Σ_{m in slice s} ã[m, k] · g[m, n],   ã = [a | 1]: [M, K + 1]
//   a: [M, K], g: [M, N] (= ∂z), part: [S, K + 1, N], read and written as vec4 along rows;
//   K and N multiples of 8; slice s = rows s·SLICE_ROWS .. (s+1)·SLICE_ROWS − 1 (< M),
//   M = count · ROWS_PER_IMAGE, S = ceil(M / SLICE_ROWS).
// The math of cnnMatmulTransA (summed over s by cnnSumSlices: ∂w = ãᵀ·∂z, bias gradient in
// row K), faster on CPU adapters: each thread computes an 8×8 block of one slice; per row m it
// loads 2 vec4 of a and 2 of g for 64 multiply-adds. The extra block k0 = K is the bias row:
// its "a" is the constant (1, 0, 0, …).
// Backward of cnnMatmul's  z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]  with respect to w.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;
const SLICE_ROWS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> a: array<vec4f>; // [M, K / 4]
@group(0) @binding(2) var<storage, read> g: array<vec4f>; // [M, N / 4]
@group(0) @binding(3) var<storage, read_write> part: array<vec4f>; // [S, K + 1, N / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let N4 = N / 4u;
  let K4 = K / 4u;
  let slices = (M + SLICE_ROWS - 1u) / SLICE_ROWS;
  let blocksK = K / 8u + 1u; // the last block is the bias row
  let blocksN = N / 8u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= slices * blocksK * blocksN) {
    return;
  }
  let s = t / (blocksK * blocksN);
  let k0 = ((t / blocksN) % blocksK) * 8u;
  let c0 = (t % blocksN) * 2u; // first of the block's two vec4 columns
  let bias = k0 == K;
  var lo: array<vec4f, 8>; // part[s, k0 + j, c0·4 .. c0·4 + 3]
  var hi: array<vec4f, 8>; // part[s, k0 + j, c0·4 + 4 .. c0·4 + 7]
  let mEnd = min(M, (s + 1u) * SLICE_ROWS);
  for (var m = s * SLICE_ROWS; m < mEnd; m++) {
    var al = vec4f(1.0, 0.0, 0.0, 0.0);
    var ah = vec4f(0.0);
    if (!bias) {
      al = a[m * K4 + k0 / 4u];
      ah = a[m * K4 + k0 / 4u + 1u];
    }
    let gl = g[m * N4 + c0];
    let gh = g[m * N4 + c0 + 1u];
    let x = array<f32, 8>(al.x, al.y, al.z, al.w, ah.x, ah.y, ah.z, ah.w);
    // unroll
    for (var j = 0u; j < 8u; j++) {
      lo[j] += x[j] * gl;
      hi[j] += x[j] * gh;
    }
  }
  let rows = select(8u, 1u, bias);
  // unroll
  for (var j = 0u; j < 8u; j++) {
    if (j < rows) {
      let at = (s * (K + 1u) + k0 + j) * N4 + c0;
      part[at] = lo[j];
      part[at + 1u] = hi[j];
    }
  }
}
