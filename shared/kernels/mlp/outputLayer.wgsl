// outputLayer: the output layer, the loss, its gradient and the gradient below it,
// one row per invocation
//   logits[r, c] = Σ_k act[r, k] · W[k, c] + b[c]      act: [rows, K], W: [K, C], b: [C]
//   p = softmax(logits[r]);  loss[start + r] = −log p[y_r]  (= logsumexp − logit_y)
//   dZ[r, c] = (p[c] − (c == y_r)) / rows               dZ: [rows, C]
//   dAct[r, k] = (Σ_c dZ[r, c] · W[k, c]) · (act[r, k] > 0 ? 1 : 0)     dAct: [rows, K]
// dZ is ∂L/∂logits of L = mean over the batch of −log p_y (the backward of
// softmax + cross-entropy). dAct differentiates  act = relu(z); logits =
// act·W + b, from W before its update: what inputGradReluMask.wgsl computes for
// this layer, in the same order of sums, fused here since the row's dZ is at
// hand. Each image's loss goes to its slot of the epoch's loss buffer (index =
// image index), summed once at the epoch's end. The shape for CPU adapters (see
// outputLayerRows.wgsl for GPUs): W comes from a uniform buffer (a
// copy of the weights, made after each update), since every invocation reads
// all of it in the same order, and on llvmpipe that is a cheap uniform load
// where a storage-buffer load is a dear per-lane one (a stand-alone test of the
// logits loop: 0.30 against 0.78–1.0 ms for 500 rows). Loops over the C
// classes are marked `// unroll` for the host to write out (`unrollLoops` in
// shared/kernels/sources.ts), and the label's entry is picked by a select, not an index:
// llvmpipe keeps an array indexed by a variable in memory.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const C = SET_BY_HOST;
const W_VEC4S = (K * C + 3u) / 4u;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<uniform> w: array<vec4f, W_VEC4S>; // W [K, C] row-major, 4 a vec4
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;
@group(0) @binding(7) var<storage, read_write> dAct: array<f32>;

fn wAt(k: u32, c: u32) -> f32 {
  let i = k * C + c;
  return w[i / 4u][i % 4u];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= step.count) {
    return;
  }
  var logits: array<f32, C>;
  // unroll
  for (var c = 0u; c < C; c++) {
    logits[c] = bias[c];
  }
  for (var k = 0u; k < K; k++) {
    let a = act[r * K + k];
    // unroll
    for (var c = 0u; c < C; c++) {
      logits[c] = fma(a, wAt(k, c), logits[c]);
    }
  }
  var m = logits[0];
  // unroll
  for (var c = 0u; c < C; c++) {
    m = max(m, logits[c]);
  }
  var sum = 0.0;
  // unroll
  for (var c = 0u; c < C; c++) {
    logits[c] = exp(logits[c] - m);
    sum += logits[c];
  }
  let y = labels[step.start + r];
  var py = 0.0; // exp(logit_y − m), picked without indexing by y (see above)
  // unroll
  for (var c = 0u; c < C; c++) {
    py = select(py, logits[c], c == y);
  }
  losses[step.start + r] = log(sum) - log(py);
  let scale = 1.0 / (sum * f32(step.count));
  let invCount = 1.0 / f32(step.count);
  var g: array<f32, C>;
  // unroll
  for (var c = 0u; c < C; c++) {
    g[c] = logits[c] * scale - select(0.0, invCount, c == y);
    dz[r * C + c] = g[c];
  }
  for (var k = 0u; k < K; k++) {
    var s = 0.0;
    // unroll
    for (var c = 0u; c < C; c++) {
      s = fma(g[c], wAt(k, c), s);
    }
    dAct[r * K + k] = select(0.0, s, act[r * K + k] > 0.0);
  }
}
