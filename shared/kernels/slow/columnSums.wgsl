// columnSums: ∂b[j] = Σ_r ∂z[r, j]   for ∂z: [rows, n] → ∂b: [n]
// The bias gradient. Differentiates the forward line
//   z[r, j] = (x·W)[r, j] + b[j]   ⇒   ∂L/∂b[j] = Σ_r ∂L/∂z[r, j].
// Naive on purpose: one thread per column loops over every row in global
// memory (only n threads: 10 to 512 of them).

struct Shape {
  rows: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> g: array<f32>; // [rows, n]
@group(0) @binding(2) var<storage, read_write> sums: array<f32>; // [n]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let j = gid.y * (groups.x * 64u) + gid.x;
  if (j >= shape.n) {
    return;
  }
  var sum = 0.0;
  for (var r = 0u; r < shape.rows; r++) {
    sum += g[r * shape.n + j];
  }
  sums[j] = sum;
}
