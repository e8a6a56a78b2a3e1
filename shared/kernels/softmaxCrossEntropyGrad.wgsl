// softmaxCrossEntropyGrad: the output layer, the loss and its gradient, one row per invocation
//   logits[r, c] = Σ_k act[r, k] · W[k, c] + b[c]      act: [rows, K], W: [K, C], b: [C]
//   p = softmax(logits[r]);  loss[start + r] = −log p[y_r]  (= logsumexp − logit_y)
//   dZ[r, c] = (p[c] − (c == y_r)) / rows               dZ: [rows, C]
// dZ is ∂L/∂logits of L = mean over the batch of −log p_y (the backward of
// softmax + cross-entropy). Each image's loss goes to its slot of the epoch's
// loss buffer (index = image index), summed once at the epoch's end.

struct Step {
  start: u32,
  count: u32,
  lr: f32,
  _pad: u32,
}

const K = 128u;
const C = 10u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= step.count) {
    return;
  }
  var logits: array<f32, C>;
  for (var c = 0u; c < C; c++) {
    logits[c] = bias[c];
  }
  for (var k = 0u; k < K; k++) {
    let a = act[r * K + k];
    for (var c = 0u; c < C; c++) {
      logits[c] = fma(a, w[k * C + c], logits[c]);
    }
  }
  var m = logits[0];
  for (var c = 1u; c < C; c++) {
    m = max(m, logits[c]);
  }
  var sum = 0.0;
  for (var c = 0u; c < C; c++) {
    logits[c] = exp(logits[c] - m);
    sum += logits[c];
  }
  let y = labels[step.start + r];
  losses[step.start + r] = log(sum) - log(logits[y]);
  let scale = 1.0 / (sum * f32(step.count));
  let invCount = 1.0 / f32(step.count);
  for (var c = 0u; c < C; c++) {
    dz[r * C + c] = logits[c] * scale - select(0.0, invCount, c == y);
  }
}
