// reluBackward: ∂z[i] = ∂a[i] if z[i] > 0, else 0   for ∂a, z, ∂z: [count]
// Differentiates the forward line   a = max(0, z)   (relu.wgsl):
//   ∂a/∂z = 1 where z > 0, else 0 (the ReLU mask; 0 at z = 0 exactly).
// One thread per element; i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  count: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> grad_a: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> z: array<f32>; // [count]
@group(0) @binding(3) var<storage, read_write> grad_z: array<f32>; // [count]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.count) {
    return;
  }
  grad_z[i] = select(0.0, grad_a[i], z[i] > 0.0);
}
