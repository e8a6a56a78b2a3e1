// outputLayerRows: the output layer, the loss, its gradient and the gradient below it,
// LANES invocations per row
//   logits[r, c] = Σ_k act[r, k] · W[k, c] + b[c]      act: [rows, K], W: [K, C], b: [C]
//   p = softmax(logits[r]);  loss[start + r] = −log p[y_r]  (= logsumexp − logit_y)
//   dZ[r, c] = (p[c] − (c == y_r)) / rows               dZ: [rows, C]
//   dAct[r, k] = (Σ_c dZ[r, c] · W[k, c]) · (act[r, k] > 0 ? 1 : 0)     dAct: [rows, K]
// dAct differentiates  act = relu(z); logits = act·W + b: it is what
// inputGradReluMaskTiled.wgsl computes for this layer (same order of sums), read
// from W before W's update, fused here since the row's dZ is already at hand.
// Same math as outputLayer.wgsl, shaped for GPUs: that kernel gives
// each row to one invocation (a 500-row batch is 8 workgroups, each invocation
// 1280 dependent multiply-adds). Here a workgroup takes ROWS rows with LANES
// invocations each: lane l sums k = l, l + LANES, … for all C classes, the
// lanes' partial logits are added by a tree in workgroup memory (a fixed
// order, so runs are bitwise reproducible), then lane c computes p[c].

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const C = SET_BY_HOST;
const LANES = 16u; // a power of two
const ROWS = SET_BY_HOST; // rows per workgroup: ROWS · LANES = 64 invocations

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;
@group(0) @binding(7) var<storage, read_write> dAct: array<f32>;

// partial[row][lane][c]: a lane's share of the row's logits; after the tree,
// partial[row][0][c] holds the whole logit (without the bias).
var<workgroup> partial: array<array<array<f32, C>, LANES>, ROWS>;
// dzRow[row][c]: the row's dZ, for the input gradient.
var<workgroup> dzRow: array<array<f32, C>, ROWS>;

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = lid.x;
  let row = lid.y;
  let r = wg.x * ROWS + row;
  // Rows past the batch compute on row 0 (always present) and write nothing:
  // every invocation must reach the barriers.
  let rr = select(0u, r, r < step.count);
  var acc: array<f32, C>;
  for (var k = lane; k < K; k += LANES) {
    let a = act[rr * K + k];
    for (var c = 0u; c < C; c++) {
      acc[c] = fma(a, w[k * C + c], acc[c]);
    }
  }
  for (var c = 0u; c < C; c++) {
    partial[row][lane][c] = acc[c];
  }
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lane < half) {
      for (var c = 0u; c < C; c++) {
        partial[row][lane][c] += partial[row][lane + half][c];
      }
    }
  }
  workgroupBarrier();
  let inBatch = r < step.count;
  if (inBatch) {
    // Every lane that owns a class recomputes the row's max and Σ exp (C terms).
    var m = partial[row][0][0] + bias[0];
    for (var c = 1u; c < C; c++) {
      m = max(m, partial[row][0][c] + bias[c]);
    }
    var sum = 0.0;
    for (var c = 0u; c < C; c++) {
      sum += exp(partial[row][0][c] + bias[c] - m);
    }
    let y = labels[step.start + r];
    if (lane == 0u) {
      losses[step.start + r] = log(sum) - log(exp(partial[row][0][y] + bias[y] - m));
    }
    let scale = 1.0 / (sum * f32(step.count));
    let invCount = 1.0 / f32(step.count);
    for (var c = lane; c < C; c += LANES) {
      let e = exp(partial[row][0][c] + bias[c] - m);
      let g = e * scale - select(0.0, invCount, c == y);
      dz[r * C + c] = g;
      dzRow[row][c] = g;
    }
  }
  workgroupBarrier();
  if (inBatch) {
    for (var k = lane; k < K; k += LANES) {
      var s = 0.0;
      for (var c = 0u; c < C; c++) {
        s = fma(dzRow[row][c], w[k * C + c], s);
      }
      dAct[r * K + k] = select(0.0, s, act[r * K + k] > 0.0);
    }
  }
}
