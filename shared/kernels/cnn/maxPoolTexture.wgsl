// maxPoolTexture (fused with the ReLU before it): a = relu(z), then 2×2 max-pool with stride 2,
// 4 channels per invocation, the result written into a texture:
//   out[b, py, px, c] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, c])
//   argmax[b, py, px, c] = flat index in z of the first (in dy, dx order) element reaching it
//   z: [count, H, W, C] (NHWC, as vec4, C % 4 = 0), argmax: [count, H/2, W/2, C] (as vec4u);
//   out: rgba32float storage texture [count·H/2][W/2·C/4], texel (px·C/4 + c4, b·H/2 + py)
//   (floor: an odd last row/column is dropped).
// maxPool's values and argmaxes (the same comparisons, per channel), written where conv2's
// texture kernels read a1 (cnnConvTexture, cnnConvWeightGradTexture): no a1 buffer and no copy
// of it (cnnToTexture).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;

const PH = H / 2u;
const PW = W / 2u;
const C4 = C / 4u;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> z: array<vec4f>; // [count, H, W, C / 4]
@group(0) @binding(2) var pooled: texture_storage_2d<rgba32float, write>; // [count·H/2][W/2·C/4]
@group(0) @binding(3) var<storage, read_write> argmax: array<vec4u>; // [count, H/2, W/2, C / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let o4 = (wg.y * groups.x + wg.x) * 64u + local;
  if (o4 >= batch.count * PH * PW * C4) {
    return;
  }
  let c4 = o4 % C4;
  let px = (o4 / C4) % PW;
  let py = (o4 / (C4 * PW)) % PH;
  let b = o4 / (C4 * PW * PH);
  var best = vec4f(-1.0);
  var at = vec4u(0u);
  // unroll
  for (var d = 0u; d < 4u; d++) {
    let i4 = ((b * H + 2u * py + d / 2u) * W + 2u * px + d % 2u) * C4 + c4;
    let v = max(z[i4], vec4f(0.0));
    let better = v > best; // strictly: the first maximum in (dy, dx) order stays
    best = select(best, v, better);
    at = select(at, vec4u(4u * i4) + vec4u(0u, 1u, 2u, 3u), better);
  }
  textureStore(pooled, vec2u(o4 % (PW * C4), o4 / (PW * C4)), best);
  argmax[o4] = at;
}
