// im2colTexture: cols[(b, oy, ox), (ky, kx, c)] = x[b, oy + ky, ox + kx, c], into a texture:
//   x: [count, H, W, C] (NHWC), cols: rgba32float storage texture [count][HO·WO·COLS/4], texel
//   ((oy·WO + ox)·COLS/4 + q, b) = cols[(b, oy, ox), 4q .. 4q + 3]; COLS a multiple of 4,
//   HO = H − K + 1, WO = W − K + 1; columns K·K·C .. COLS − 1 are zero padding.
// The math of im2colVec4 (the same values, 4 columns per thread), written where conv1's weight
// gradient reads them (cnnConvWeightGradTexture as a 1×1 convolution of COLS channels over a
// 1 × HO·WO image: fast/cnn/textures_conv1.ts); one image per texture row, so the batch may be
// as large as the texture is high. Each invocation writes one row (b, oy, ox): its
// COLS/4 texels in a loop the host unrolls, so each column's (ky, kx, c) is a constant (one
// invocation per texel, with that arithmetic per value, took 1.8 ms a step of 32 MNIST images
// on llvmpipe).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const K = SET_BY_HOST;
const COLS = SET_BY_HOST;

const HO = H - K + 1u;
const WO = W - K + 1u;
const C4 = COLS / 4u; // texels per row

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> x: array<f32>; // [count, H, W, C]
@group(0) @binding(2) var cols: texture_storage_2d<rgba32float, write>; // [count][HO·WO·COLS/4]

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
  let row = (wg.y * groups.x + wg.x) * 64u + local; // (b, oy, ox)
  if (row >= batch.count * HO * WO) {
    return;
  }
  let ox = row % WO;
  let oy = (row / WO) % HO;
  let b = row / (WO * HO);
  // unroll
  for (var q = 0u; q < C4; q++) {
    let v = vec4f(
      pixel(b, oy, ox, 4u * q),
      pixel(b, oy, ox, 4u * q + 1u),
      pixel(b, oy, ox, 4u * q + 2u),
      pixel(b, oy, ox, 4u * q + 3u),
    );
    textureStore(cols, vec2u((oy * WO + ox) * C4 + q, b), v);
  }
}
