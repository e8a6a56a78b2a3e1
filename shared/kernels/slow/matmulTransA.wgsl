// matmulTransA: C[k, n] = A[m, k]ᵀ · B[m, n]
//   C[p, j] = Σ_i A[i, p] · B[i, j]
// The weight gradient ∂W = aᵀ·∂z (A = a: [B, in], B = ∂z: [B, out], C = ∂W: [in, out]).
// Differentiates the forward line   z = x·W   (matmul.wgsl):
//   z[i, j] = Σ_p x[i, p] · W[p, j]  ⇒  ∂L/∂W[p, j] = Σ_i x[i, p] · ∂L/∂z[i, j].
// Naive on purpose: one thread per output element, inner loop over the batch
// reading global memory; A is read down a column (stride k), which is
// uncoalesced.

struct Shape {
  m: u32,
  k: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> a: array<f32>; // [m, k]
@group(0) @binding(2) var<storage, read> b: array<f32>; // [m, n]
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [k, n]

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x; // output column, 0..n
  let p = gid.y; // output row, 0..k
  if (p >= shape.k || j >= shape.n) {
    return;
  }
  var sum = 0.0;
  for (var i = 0u; i < shape.m; i++) {
    sum += a[i * shape.k + p] * b[i * shape.n + j];
  }
  c[p * shape.n + j] = sum;
}
