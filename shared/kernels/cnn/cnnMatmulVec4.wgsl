// cnnMatmulVec4: z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]      (w's last row is the bias)
//   a: [M, K], w: [K + 1, N], z: [M, N], all read and written as vec4 along their rows;
//   K and N multiples of 8 (the engine pads im2col columns to make K so); M = count · ROWS_PER_IMAGE.
// The math of cnnMatmul, faster on CPU adapters: each thread computes an 8×8 block of z, and
// per 4 steps of k loads 8 vec4 of a and 8 vec4 of w for 256 multiply-adds. On llvmpipe a
// vec4 load costs about what a scalar one does, so this does ~3× the work per load of the
// scalar 4×4 kernel (measured 3–4 → 10–13 GFLOP/s on conv2's shape, 2 cores, noisy).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> a: array<vec4f>; // [M, K / 4]
@group(0) @binding(2) var<storage, read> w: array<vec4f>; // [K + 1, N / 4]
@group(0) @binding(3) var<storage, read_write> z: array<vec4f>; // [M, N / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let N4 = N / 4u;
  let K4 = K / 4u;
  let blocksN = N / 8u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= ((M + 7u) / 8u) * blocksN) {
    return;
  }
  let m0 = (t / blocksN) * 8u;
  let c0 = (t % blocksN) * 2u; // first of the block's two vec4 columns
  var rowA: array<u32, 8>; // rows past M are clamped for loading, skipped for storing
  // unroll
  for (var r = 0u; r < 8u; r++) {
    rowA[r] = min(m0 + r, M - 1u) * K4;
  }
  // Columns c0·4 .. c0·4+3 in lo, the next four in hi, one of each per row.
  var lo: array<vec4f, 8>;
  var hi: array<vec4f, 8>;
  let biasLo = w[K * N4 + c0];
  let biasHi = w[K * N4 + c0 + 1u];
  // unroll
  for (var r = 0u; r < 8u; r++) {
    lo[r] = biasLo;
    hi[r] = biasHi;
  }
  for (var k4 = 0u; k4 < K4; k4++) {
    let row = 4u * k4 * N4 + c0; // w[4·k4, c0·4]
    let w0l = w[row];
    let w0h = w[row + 1u];
    let w1l = w[row + N4];
    let w1h = w[row + N4 + 1u];
    let w2l = w[row + 2u * N4];
    let w2h = w[row + 2u * N4 + 1u];
    let w3l = w[row + 3u * N4];
    let w3h = w[row + 3u * N4 + 1u];
    // unroll
    for (var r = 0u; r < 8u; r++) {
      let x = a[rowA[r] + k4]; // a[m0 + r, 4·k4 .. 4·k4 + 3]
      lo[r] += x.x * w0l + x.y * w1l + x.z * w2l + x.w * w3l;
      hi[r] += x.x * w0h + x.y * w1h + x.z * w2h + x.w * w3h;
    }
  }
  // unroll
  for (var r = 0u; r < 8u; r++) {
    if (m0 + r < M) {
      z[(m0 + r) * N4 + c0] = lo[r];
      z[(m0 + r) * N4 + c0 + 1u] = hi[r];
    }
  }
}
