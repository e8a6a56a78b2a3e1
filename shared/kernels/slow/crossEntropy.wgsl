// crossEntropy: loss[r] = −log p[r, y_r]   for p: [rows, n], labels y: [rows] → loss: [rows]
// The per-image loss. The losses are read back every step (on purpose) and the
// CPU adds them into the epoch's total, printed over the epoch's images. The
// batch mean L = (1/B) Σ_r loss[r] is never computed: only its gradient is
// needed, and softmaxCrossEntropyBackward.wgsl holds its 1/B.
// One thread per row (image).

struct Shape {
  rows: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> p: array<f32>; // [rows, n]
@group(0) @binding(2) var<storage, read> labels: array<u32>; // [rows]
@group(0) @binding(3) var<storage, read_write> loss: array<f32>; // [rows]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let r = gid.y * (groups.x * 64u) + gid.x;
  if (r >= shape.rows) {
    return;
  }
  loss[r] = -log(p[r * shape.n + labels[r]]);
}
