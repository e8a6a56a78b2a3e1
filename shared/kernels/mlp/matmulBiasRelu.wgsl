// matmulBiasRelu: out[r, n] = max(0, Σ_k A[r, k] · W[k, n] + b[n])
//   A: [rows, K]  (rows = step.count) — f32 activations, or when A_BYTES the
//      packed image bytes (4 pixels per u32) of images step.start.., ÷ 255
//   W: [K, N] row-major, b: [N], out: [rows, N]
// The forward line of a hidden layer, a = relu(x·W + b), in one kernel.
// Register-blocked: each invocation computes an RM × RN block of out and keeps
// it in registers, so each loaded A value is used RN times and each W value
// RM times. Operands come from storage buffers. K, N, RM, RN and A_BYTES are
// specialised by the host (fast/mlp/variants/matmul.ts) before compiling.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const RM = SET_BY_HOST;
const RN = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> outAct: array<f32>;

// A[row, k] as a float: a pixel byte ÷ 255, or an f32 stored as bits.
fn loadA(row: u32, k: u32) -> f32 {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k / 4u];
    return f32((word >> (8u * (k % 4u))) & 0xffu) / 255.0;
  }
  return bitcast<f32>(aWords[row * K + k]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * RM;
  let col0 = gid.x * RN;
  if (row0 >= step.count || col0 >= N) {
    return;
  }
  var acc: array<array<f32, RN>, RM>;
  for (var k = 0u; k < K; k++) {
    var av: array<f32, RM>;
    for (var i = 0u; i < RM; i++) {
      av[i] = loadA(min(row0 + i, step.count - 1u), k);
    }
    for (var j = 0u; j < RN; j++) {
      let wv = w[k * N + min(col0 + j, N - 1u)];
      for (var i = 0u; i < RM; i++) {
        acc[i][j] = fma(av[i], wv, acc[i][j]);
      }
    }
  }
  for (var i = 0u; i < RM; i++) {
    let row = row0 + i;
    for (var j = 0u; j < RN; j++) {
      let col = col0 + j;
      if (row < step.count && col < N) {
        outAct[row * N + col] = max(acc[i][j] + bias[col], 0.0);
      }
    }
  }
}
