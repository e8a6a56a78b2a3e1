// matmulTransB: C[m, k] = A[m, n] · B[k, n]ᵀ
//   C[i, p] = Σ_j A[i, j] · B[p, j]
// The input gradient ∂a = ∂z·Wᵀ (A = ∂z: [B, out], B = W: [in, out], C = ∂a: [B, in]).
// Differentiates the forward line   z = a·W   (matmul.wgsl):
//   z[i, j] = Σ_p a[i, p] · W[p, j]  ⇒  ∂L/∂a[i, p] = Σ_j ∂L/∂z[i, j] · W[p, j].
// Naive on purpose: one thread per output element, inner loop reading
// global memory, no tiling.

struct Shape {
  m: u32,
  n: u32,
  k: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> a: array<f32>; // [m, n]
@group(0) @binding(2) var<storage, read> b: array<f32>; // [k, n]
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [m, k]

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x; // output column, 0..k
  let i = gid.y; // output row, 0..m
  if (i >= shape.m || p >= shape.k) {
    return;
  }
  var sum = 0.0;
  for (var j = 0u; j < shape.n; j++) {
    sum += a[i * shape.n + j] * b[p * shape.n + j];
  }
  c[i * shape.k + p] = sum;
}
