// cnnMatmulTransA: part[s, k, n] = Σ_{m in slice s} ã[m, k] · g[m, n],   ã = [a | 1]: [M, K + 1]
//   a: [M, K], g: [M, N] (= ∂z), part: [S, K + 1, N], slice s = rows s·SLICE_ROWS .. (s+1)·SLICE_ROWS − 1 (< M),
//   M = count · ROWS_PER_IMAGE, S = ceil(M / SLICE_ROWS)
// Summed over s by cnnSumSlices this is ∂w = ãᵀ · ∂z, w: [K + 1, N]: rows k < K the weight
// gradient, row K (ã's column of ones) the bias gradient Σ_m ∂z[m, n].
// Backward of cnnMatmul's  z[m, n] = Σ_{k < K} a[m, k] · w[k, n] + w[K, n]  with respect to w.
// Split over m ("split-K") because ∂w is tiny (e.g. 26×16) while M is huge (batch · 576):
// without it a few threads would do all the work. Each thread: a 4×4 block of one slice.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;
const SLICE_ROWS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> a: array<f32>; // [M, K]
@group(0) @binding(2) var<storage, read> g: array<f32>; // [M, N]
@group(0) @binding(3) var<storage, read_write> part: array<f32>; // [S, K + 1, N]

// ã[m, k]: a's element, 1 in the extra column K, 0 beyond (padding of the last block).
fn aAt(m: u32, k: u32) -> f32 {
  if (k < K) {
    return a[m * K + k];
  }
  return select(0.0, 1.0, k == K);
}

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let M = batch.count * ROWS_PER_IMAGE;
  let slices = (M + SLICE_ROWS - 1u) / SLICE_ROWS;
  let blocksK = (K + 4u) / 4u; // ceil((K + 1) / 4)
  let blocksN = (N + 3u) / 4u;
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= slices * blocksK * blocksN) {
    return;
  }
  let s = t / (blocksK * blocksN);
  let k0 = ((t / blocksN) % blocksK) * 4u;
  let n0 = (t % blocksN) * 4u;
  let c0 = n0;
  let c1 = min(n0 + 1u, N - 1u);
  let c2 = min(n0 + 2u, N - 1u);
  let c3 = min(n0 + 3u, N - 1u);
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  let mEnd = min(M, (s + 1u) * SLICE_ROWS);
  for (var m = s * SLICE_ROWS; m < mEnd; m++) {
    let gm = vec4f(g[m * N + c0], g[m * N + c1], g[m * N + c2], g[m * N + c3]);
    acc0 += aAt(m, k0) * gm;
    acc1 += aAt(m, k0 + 1u) * gm;
    acc2 += aAt(m, k0 + 2u) * gm;
    acc3 += aAt(m, k0 + 3u) * gm;
  }
  let rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r++) {
    if (k0 + r <= K) {
      for (var q = 0u; q < 4u; q++) {
        if (n0 + q < N) {
          part[(s * (K + 1u) + k0 + r) * N + n0 + q] = rows[r][q];
        }
      }
    }
  }
}
