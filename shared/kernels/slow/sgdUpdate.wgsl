// sgdUpdate: θ[i] ← θ[i] − lr · ∂θ[i]   for θ, ∂θ: [count] (one weight matrix or bias vector)
// Plain SGD, in place on the parameter buffer, one dispatch per tensor.
// One thread per element; i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  count: u32,
  lr: f32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> grad: array<f32>; // [count]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.count) {
    return;
  }
  param[i] -= shape.lr * grad[i];
}
