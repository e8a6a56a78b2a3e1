// softmaxCrossEntropyBackward: ∂z[r, j] = (p[r, j] − onehot(y_r)[j]) / B
//   for p: [B, n], labels y: [B] → ∂z: [B, n], the gradient at the logits.
// Differentiates the forward lines
//   p = softmax(z);   L = (1/B) Σ_r −log p[r, y_r]
// through both at once: ∂L/∂z[r, j] = (p[r, j] − [j = y_r]) / B (derived from the
// softmax Jacobian in README.md, "The math, derived").
// One thread per element; i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  rows: u32, // B, the batch size this gradient is averaged over
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> p: array<f32>; // [B, n]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [B]
@group(0) @binding(3) var<storage, read_write> grad: array<f32>; // [B, n]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.rows * shape.n) {
    return;
  }
  let r = i / shape.n;
  let j = i % shape.n;
  let onehot = select(0.0, 1.0, labels[r] == j);
  grad[i] = (p[i] - onehot) / f32(shape.rows);
}
