// maxPool (fused with the ReLU before it): a = relu(z), then 2×2 max-pool with stride 2:
//   out[b, py, px, c] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, c])
//   argmax[b, py, px, c] = flat index in z of the first (in dy, dx order) element reaching it
//   z: [count, H, W, C] (NHWC), out, argmax: [count, H/2, W/2, C] (floor: an odd last row/column is dropped)
// Fusing is exact: max and ReLU commute, and the argmax is taken over relu(z) as the reference does.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> z: array<f32>; // [count, H, W, C]
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>; // [count, H/2, W/2, C]
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>; // [count, H/2, W/2, C]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let PH = H / 2u;
  let PW = W / 2u;
  let o = (wg.y * groups.x + wg.x) * 64u + local;
  if (o >= batch.count * PH * PW * C) {
    return;
  }
  let c = o % C;
  let px = (o / C) % PW;
  let py = (o / (C * PW)) % PH;
  let b = o / (C * PW * PH);
  var best = -1.0;
  var at = 0u;
  for (var dy = 0u; dy < 2u; dy++) {
    for (var dx = 0u; dx < 2u; dx++) {
      let i = ((b * H + 2u * py + dy) * W + 2u * px + dx) * C + c;
      let v = max(z[i], 0.0);
      if (v > best) {
        best = v;
        at = i;
      }
    }
  }
  pooled[o] = best;
  argmax[o] = at;
}
