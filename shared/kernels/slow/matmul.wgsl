// matmul: C[m, n] = A[m, k] · B[k, n]
//   C[i, j] = Σ_p A[i, p] · B[p, j]
// The forward line of every layer, z = x·W (A = x: [B, in], B = W: [in, out]).
// Naive on purpose: one thread per output element, and its inner loop reads
// A and B straight from global memory, k times each, with no tiling or
// shared memory; neighbouring threads re-read the same rows and columns.

struct Shape {
  m: u32,
  k: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> a: array<f32>; // [m, k]
@group(0) @binding(2) var<storage, read> b: array<f32>; // [k, n]
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [m, n]

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x; // output column
  let i = gid.y; // output row
  if (i >= shape.m || j >= shape.n) {
    return;
  }
  var sum = 0.0;
  for (var p = 0u; p < shape.k; p++) {
    sum += a[i * shape.k + p] * b[p * shape.n + j];
  }
  c[i * shape.n + j] = sum;
}
