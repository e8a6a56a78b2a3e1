// cnnMatmulTransB: ga[m, k] = Σ_{n < N} g[m, n] · w[k, n]   for k < K   (w's bias row K is not used)
//   g: [M, N] (= ∂z), w: [K + 1, N], ga: [M, K] (= ∂a), M = count · ROWS_PER_IMAGE
// Backward of cnnMatmul's  z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]  with respect to a.
// Each thread: a 4×4 block of ga; per n, 4 loads of g and 4 of w feed 16 multiply-adds.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> g: array<f32>; // [M, N]
@group(0) @binding(2) var<storage, read> w: array<f32>; // [K + 1, N]
@group(0) @binding(3) var<storage, read_write> ga: array<f32>; // [M, K]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let blocksK = (K + 3u) / 4u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= ((M + 3u) / 4u) * blocksK) {
    return;
  }
  let m0 = (t / blocksK) * 4u;
  let k0 = (t % blocksK) * 4u;
  let g0 = min(m0, M - 1u) * N;
  let g1 = min(m0 + 1u, M - 1u) * N;
  let g2 = min(m0 + 2u, M - 1u) * N;
  let g3 = min(m0 + 3u, M - 1u) * N;
  let w0 = k0 * N;
  let w1 = min(k0 + 1u, K - 1u) * N;
  let w2 = min(k0 + 2u, K - 1u) * N;
  let w3 = min(k0 + 3u, K - 1u) * N;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var n = 0u; n < N; n++) {
    let wn = vec4f(w[w0 + n], w[w1 + n], w[w2 + n], w[w3 + n]);
    acc0 += g[g0 + n] * wn;
    acc1 += g[g1 + n] * wn;
    acc2 += g[g2 + n] * wn;
    acc3 += g[g3 + n] * wn;
  }
  let rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r++) {
    if (m0 + r < M) {
      for (var q = 0u; q < 4u; q++) {
        if (k0 + q < K) {
          ga[(m0 + r) * K + k0 + q] = rows[r][q];
        }
      }
    }
  }
}
