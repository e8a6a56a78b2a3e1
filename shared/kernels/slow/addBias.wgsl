// addBias: z[r, j] += bias[j]   for z: [rows, n], bias: [n]   (in place)
// The "+ b" of the forward line z = x·W + b, as its own dispatch.
// One thread per element of z. Threads are laid out as a 2D grid of
// 64-wide workgroups (a 1D grid may hold at most 65535 workgroups);
// i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  rows: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read_write> z: array<f32>; // [rows, n]
@group(0) @binding(2) var<storage, read> bias: array<f32>; // [n]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.rows * shape.n) {
    return;
  }
  z[i] += bias[i % shape.n];
}
