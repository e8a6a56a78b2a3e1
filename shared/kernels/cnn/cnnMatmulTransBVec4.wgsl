// cnnMatmulTransBVec4: ga[m, k] = Σ_{n < N} g[m, n] · w[k, n]   for k < K   (w's bias row K is not used)
//   g: [M, N] (= ∂z), w: [K + 1, N], ga: [M, K] (= ∂a), read and written as vec4 along rows;
//   K and N multiples of 8; M = count · ROWS_PER_IMAGE.
// Backward of cnnMatmul's  z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]  with respect to a.
// Each thread: an 8×8 block of ga. Per 4 steps of n it loads 8 vec4 of w (rows k0..k0+7),
// transposes them into vec4s along k, and then per row of g one vec4 load feeds 32 multiply-adds.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> g: array<vec4f>; // [M, N / 4]
@group(0) @binding(2) var<storage, read> w: array<vec4f>; // [K + 1, N / 4]
@group(0) @binding(3) var<storage, read_write> ga: array<vec4f>; // [M, K / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let N4 = N / 4u;
  let K4 = K / 4u;
  let blocksK = K / 8u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= ((M + 7u) / 8u) * blocksK) {
    return;
  }
  let m0 = (t / blocksK) * 8u;
  let k0 = (t % blocksK) * 8u;
  var rowG: array<u32, 8>;
  // unroll
  for (var r = 0u; r < 8u; r++) {
    rowG[r] = min(m0 + r, M - 1u) * N4;
  }
  var lo: array<vec4f, 8>; // ga[m0 + r, k0 .. k0 + 3]
  var hi: array<vec4f, 8>; // ga[m0 + r, k0 + 4 .. k0 + 7]
  for (var n4 = 0u; n4 < N4; n4++) {
    // w[k0 + j, 4·n4 .. 4·n4 + 3] for j < 8, then transposed: tl[i] = w[k0 .. k0 + 3, 4·n4 + i].
    var wk: array<vec4f, 8>;
    // unroll
    for (var j = 0u; j < 8u; j++) {
      wk[j] = w[(k0 + j) * N4 + n4];
    }
    let tl = transpose(mat4x4f(wk[0], wk[1], wk[2], wk[3]));
    let th = transpose(mat4x4f(wk[4], wk[5], wk[6], wk[7]));
    // unroll
    for (var r = 0u; r < 8u; r++) {
      let x = g[rowG[r] + n4]; // g[m0 + r, 4·n4 .. 4·n4 + 3]
      lo[r] += tl * x;
      hi[r] += th * x;
    }
  }
  // unroll
  for (var r = 0u; r < 8u; r++) {
    if (m0 + r < M) {
      ga[(m0 + r) * K4 + k0 / 4u] = lo[r];
      ga[(m0 + r) * K4 + k0 / 4u + 1u] = hi[r];
    }
  }
}
