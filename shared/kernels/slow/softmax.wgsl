// softmax: p[r, j] = exp(z[r, j] − max_j' z[r, j']) / Σ_j'' exp(z[r, j''] − max_j' z[r, j'])
//   for logits z: [rows, n] → probabilities p: [rows, n]
// Subtracting the row max first keeps exp from overflowing; it cancels out.
// Naive on purpose: one thread per row walks the row three times
// (max, sum, write) from global memory.

struct Shape {
  rows: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> z: array<f32>; // [rows, n]
@group(0) @binding(2) var<storage, read_write> p: array<f32>; // [rows, n]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let r = gid.y * (groups.x * 64u) + gid.x;
  if (r >= shape.rows) {
    return;
  }
  let base = r * shape.n;
  var row_max = z[base];
  for (var j = 1u; j < shape.n; j++) {
    row_max = max(row_max, z[base + j]);
  }
  var sum = 0.0;
  for (var j = 0u; j < shape.n; j++) {
    sum += exp(z[base + j] - row_max);
  }
  for (var j = 0u; j < shape.n; j++) {
    p[base + j] = exp(z[base + j] - row_max) / sum;
  }
}
