// im2colVec4: cols[(b, oy, ox), (ky, kx, c)] = x[b, oy + ky, ox + kx, c]
//   x: [count, H, W, C] (NHWC), cols: [count·HO·WO, COLS] written as vec4, COLS a multiple of 4,
//   HO = H − K + 1, WO = W − K + 1; columns K·K·C .. COLS − 1 are zero padding.
// The math of im2col; each thread writes 4 consecutive columns with one vec4 store (a quarter
// of the threads and stores, which is what im2col mostly costs on llvmpipe).

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
@group(0) @binding(2) var<storage, read_write> cols: array<vec4f>; // [count·HO·WO, COLS / 4]

// x at column `col` of im2col row (b, oy, ox); 0 in the padding.
fn pixel(b: u32, oy: u32, ox: u32, col: u32) -> f32 {
  if (col >= K * K * C) {
    return 0.0;
  }
  let c = col % C;
  let kx = (col / C) % K;
  let ky = col / (C * K);
  return x[((b * H + oy + ky) * W + ox + kx) * C + c];
}

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let HO = H - K + 1u;
  let WO = W - K + 1u;
  let C4 = COLS / 4u;
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * HO * WO * C4) {
    return;
  }
  let col = (i % C4) * 4u;
  let row = i / C4;
  let ox = row % WO;
  let oy = (row / WO) % HO;
  let b = row / (WO * HO);
  cols[i] = vec4f(
    pixel(b, oy, ox, col),
    pixel(b, oy, ox, col + 1u),
    pixel(b, oy, ox, col + 2u),
    pixel(b, oy, ox, col + 3u),
  );
}
