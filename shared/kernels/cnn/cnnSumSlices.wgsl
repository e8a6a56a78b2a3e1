// cnnSumSlices: dw[i] = Σ_{s < S} part[s, i]   for i < LEN,   S = ceil(count · ROWS_PER_IMAGE / SLICE_ROWS)
//   part: [S, LEN] (cnnMatmulTransA's partial sums), dw: [LEN] = [K + 1, N] (weights, then bias)
// The second half of the split-K weight gradient; slices are added in order, so it is deterministic.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const LEN = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;
const SLICE_ROWS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> part: array<f32>; // [S, LEN]
@group(0) @binding(2) var<storage, read_write> dw: array<f32>; // [LEN]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= LEN) {
    return;
  }
  let slices = (batch.count * ROWS_PER_IMAGE + SLICE_ROWS - 1u) / SLICE_ROWS;
  var sum = 0.0;
  for (var s = 0u; s < slices; s++) {
    sum += part[s * LEN + i];
  }
  dw[i] = sum;
}
