// maxPoolBackwardVec4 (with the ReLU before the pool): for every element i = (b, y, x, c) of z,
//   gz[i] = gout[o] if argmax[o] = i and z[i] > 0, else 0,   o = (b, y/2, x/2, c)
//   z, gz: [count, H, W, C]; gout, argmax: [count, H/2, W/2, C]; all as vec4 along channels (C % 4 = 0).
// The math of maxPoolBackward (backward of maxPool's
// out[b, py, px, c] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, c])), 4 channels per thread.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> gout: array<vec4f>; // [count, H/2, W/2, C / 4]
@group(0) @binding(2) var<storage, read> argmax: array<vec4u>; // [count, H/2, W/2, C / 4]
@group(0) @binding(3) var<storage, read> z: array<vec4f>; // [count, H, W, C / 4]
@group(0) @binding(4) var<storage, read_write> gz: array<vec4f>; // [count, H, W, C / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let PH = H / 2u;
  let PW = W / 2u;
  let C4 = C / 4u;
  let i4 = (wg.y * groups.x + wg.x) * 64u + local;
  if (i4 >= batch.count * H * W * C4) {
    return;
  }
  let c4 = i4 % C4;
  let px = ((i4 / C4) % W) / 2u;
  let py = ((i4 / (C4 * W)) % H) / 2u;
  let b = i4 / (C4 * W * H);
  var g = vec4f(0.0);
  if (py < PH && px < PW) {
    let o4 = ((b * PH + py) * PW + px) * C4 + c4;
    let i = vec4u(4u * i4) + vec4u(0u, 1u, 2u, 3u); // flat indices of the 4 elements
    g = select(vec4f(0.0), gout[o4], (argmax[o4] == i) & (z[i4] > vec4f(0.0)));
  }
  gz[i4] = g;
}
