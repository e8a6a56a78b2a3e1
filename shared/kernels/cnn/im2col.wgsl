// im2col: cols[(b, oy, ox), (ky, kx, c)] = x[b, oy + ky, ox + kx, c]
//   x: [count, H, W, C] (NHWC), cols: [count·HO·WO, COLS], HO = H − K + 1, WO = W − K + 1;
//   columns K·K·C .. COLS − 1 are zero padding (so cnnMatmulVec4 gets a multiple of 8).
// A valid K×K convolution then is one matmul: z = cols · w, w: [K·K·C, Cout] (cnnMatmul).
// One thread per element of cols (consecutive threads write consecutive floats).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const K = SET_BY_HOST;
const COLS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> x: array<f32>; // [count, H, W, C]
@group(0) @binding(2) var<storage, read_write> cols: array<f32>; // [count·HO·WO, COLS]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let HO = H - K + 1u;
  let WO = W - K + 1u;
  let KKC = K * K * C;
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * HO * WO * COLS) {
    return;
  }
  let col = i % COLS;
  let row = i / COLS;
  if (col >= KKC) {
    cols[i] = 0.0;
    return;
  }
  let ox = row % WO;
  let oy = (row / WO) % HO;
  let b = row / (WO * HO);
  let c = col % C;
  let kx = (col / C) % K;
  let ky = col / (C * K);
  cols[i] = x[((b * H + oy + ky) * W + ox + kx) * C + c];
}
