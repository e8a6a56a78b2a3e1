// relu: a[i] = max(0, z[i])   for z, a: [count] (a hidden layer's [B, out])
// Forward line: a = ReLU(z). Out of place, because the backward pass needs z.
// One thread per element; i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  count: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> z: array<f32>; // [count]
@group(0) @binding(2) var<storage, read_write> a: array<f32>; // [count]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.count) {
    return;
  }
  a[i] = max(0.0, z[i]);
}
