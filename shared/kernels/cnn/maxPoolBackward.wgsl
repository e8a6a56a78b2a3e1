// maxPoolBackward (with the ReLU before the pool): for every element i = (b, y, x, c) of z,
//   gz[i] = gout[o] if argmax[o] = i and z[i] > 0, else 0,   o = (b, y/2, x/2, c)
//   z, gz: [count, H, W, C] (NHWC); gout, argmax: [count, H/2, W/2, C]
// Backward of maxPool's  out[b, py, px, c] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, c]):
// the gradient flows only to the maximum, and only where the ReLU passed it (z > 0).
// Written as a gather over z (each element has at most one window), so every gz is written once.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> gout: array<f32>; // [count, H/2, W/2, C]
@group(0) @binding(2) var<storage, read> argmax: array<u32>; // [count, H/2, W/2, C]
@group(0) @binding(3) var<storage, read> z: array<f32>; // [count, H, W, C]
@group(0) @binding(4) var<storage, read_write> gz: array<f32>; // [count, H, W, C]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let PH = H / 2u;
  let PW = W / 2u;
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * H * W * C) {
    return;
  }
  let c = i % C;
  let px = ((i / C) % W) / 2u;
  let py = ((i / (C * W)) % H) / 2u;
  let b = i / (C * W * H);
  var g = 0.0;
  if (py < PH && px < PW) {
    let o = ((b * PH + py) * PW + px) * C + c;
    if (argmax[o] == i && z[i] > 0.0) {
      g = gout[o];
    }
  }
  gz[i] = g;
}
