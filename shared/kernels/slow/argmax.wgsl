// argmax: pred[r] = argmax_j z[r, j]   for logits z: [rows, n] → pred: [rows]
// The predicted digit of each test image; ties go to the lowest j, as in
// the CPU reference's predict(). One thread per row.

struct Shape {
  rows: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> z: array<f32>; // [rows, n]
@group(0) @binding(2) var<storage, read_write> pred: array<u32>; // [rows]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let r = gid.y * (groups.x * 64u) + gid.x;
  if (r >= shape.rows) {
    return;
  }
  let base = r * shape.n;
  var best = 0u;
  for (var j = 1u; j < shape.n; j++) {
    if (z[base + j] > z[base + best]) {
      best = j;
    }
  }
  pred[r] = best;
}
