// cnnMatmul: z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]      (w's last row is the bias)
//   a: [M, K], w: [K + 1, N] (W[in][out] row-major, then the bias row), z: [M, N],
//   M = count · ROWS_PER_IMAGE (im2col rows per image; 1 for the linear layer)
// Register-blocked: each thread computes a 4×4 block of z, so per k its 4 loads of a and
// 4 loads of w feed 16 multiply-adds (on llvmpipe a storage load costs far more than an FMA).
// Out-of-range rows/columns are clamped for loading and skipped for storing.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> a: array<f32>; // [M, K]
@group(0) @binding(2) var<storage, read> w: array<f32>; // [K + 1, N]
@group(0) @binding(3) var<storage, read_write> z: array<f32>; // [M, N]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let blocksN = (N + 3u) / 4u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= ((M + 3u) / 4u) * blocksN) {
    return;
  }
  let m0 = (t / blocksN) * 4u;
  let n0 = (t % blocksN) * 4u;
  let a0 = min(m0, M - 1u) * K;
  let a1 = min(m0 + 1u, M - 1u) * K;
  let a2 = min(m0 + 2u, M - 1u) * K;
  let a3 = min(m0 + 3u, M - 1u) * K;
  let c0 = n0;
  let c1 = min(n0 + 1u, N - 1u);
  let c2 = min(n0 + 2u, N - 1u);
  let c3 = min(n0 + 3u, N - 1u);
  let bias = vec4f(w[K * N + c0], w[K * N + c1], w[K * N + c2], w[K * N + c3]);
  var acc0 = bias;
  var acc1 = bias;
  var acc2 = bias;
  var acc3 = bias;
  for (var k = 0u; k < K; k++) {
    let wk = vec4f(w[k * N + c0], w[k * N + c1], w[k * N + c2], w[k * N + c3]);
    acc0 += a[a0 + k] * wk;
    acc1 += a[a1 + k] * wk;
    acc2 += a[a2 + k] * wk;
    acc3 += a[a3 + k] * wk;
  }
  let rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r++) {
    if (m0 + r < M) {
      for (var q = 0u; q < 4u; q++) {
        if (n0 + q < N) {
          z[(m0 + r) * N + n0 + q] = rows[r][q];
        }
      }
    }
  }
}
