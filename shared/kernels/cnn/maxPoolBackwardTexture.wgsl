// maxPoolBackwardTexture (with the ReLU before the pool): for every element i = (b, y, x, c) of z,
//   gz[i] = gout[o] if argmax[o] = i and z[i] > 0, else 0,   o = (b, y/2, x/2, c)
//   (0 too where y/2 or x/2 is past the pool: an odd last line or column)
//   z: [count, H, W, C]; gout, argmax: [count, H/2, W/2, C] (as vec4 along channels, C % 4 = 0);
//   gz: rgba32float storage texture [count·H][W·C/4] (one line of z a row, conv2's ∂z2 texture:
//   the vec4 at flat index i4 of [count, H, W, C/4] goes to texel (i4 % WIDTH, i4 / WIDTH)).
// maxPoolBackwardVec4 (the backward of maxPool's
// out[b, py, px, c] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, c])) writing its result
// where the texture kernels read it (cnnConvWeightGradTexture, cnnConvInputGradPoolTexture): the same
// values, without ∂z in a buffer and a copy of it (cnnToTexture). Each invocation takes one pooled
// output (4 channels) and writes its 2 × 2 window, so gout and argmax are loaded once for 4
// elements (one invocation per element took pool1's backward 0.97 ms a step of 32 MNIST images
// on llvmpipe). The elements no window covers (an odd last line or column) are never written:
// they keep the texture's zeros.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;

const PH = H / 2u;
const PW = W / 2u;
const C4 = C / 4u;
const WIDTH = W * C4; // texels per row of gz: one line of z

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> gout: array<vec4f>; // [count, H/2, W/2, C / 4]
@group(0) @binding(2) var<storage, read> argmax: array<vec4u>; // [count, H/2, W/2, C / 4]
@group(0) @binding(3) var<storage, read> z: array<vec4f>; // [count, H, W, C / 4]
@group(0) @binding(4) var gz: texture_storage_2d<rgba32float, write>; // [count·H][W·C/4]

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
  let g = gout[o4];
  let at = argmax[o4];
  // unroll
  for (var d = 0u; d < 4u; d++) {
    let i4 = ((b * H + 2u * py + d / 2u) * W + 2u * px + d % 2u) * C4 + c4; // (dy, dx) = (d / 2, d % 2)
    let i = vec4u(4u * i4) + vec4u(0u, 1u, 2u, 3u); // flat indices of the 4 elements
    let v = select(vec4f(0.0), g, (at == i) & (z[i4] > vec4f(0.0)));
    textureStore(gz, vec2u(i4 % WIDTH, i4 / WIDTH), v);
  }
}
