// matmulBiasReluBlocked: out[r, n] = max(0, Σ_k A[r, k] · W[k, n] + b[n])
//   A: [rows, K] (f32, or packed image bytes ÷ 255 when A_BYTES), W: [K, N],
//   b: [N], out: [rows, N]; K and N multiples of 4 (W, b and out as vec4)
// The forward line of a hidden layer, a = relu(x·W + b), for discrete GPUs:
// a workgroup of WX × WY invocations computes a BM × BN = RM·WY × 4·WX tile of
// out, each invocation an RM × 4 block (RM = 4 or 8: rows RM·lid.y..,
// columns 4·lid.x..) in registers. Per stage of KT values of k the workgroup stages A (transposed:
// four rows of one k per vec4) and W (four columns per vec4) in workgroup
// memory; each invocation then reads RM/4 vec4 of A and one of W per k and
// does 4·RM fmas.
// Each output is one accumulator summed over k = 0, 1, 2, … in order, with
// fma, as the other variants do: the same bits.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;
// Invocations per workgroup along the columns (n) and along the rows.
const WX = SET_BY_HOST;
const WY = SET_BY_HOST;
// Rows of out per invocation: 4 or 8.
const RM = SET_BY_HOST;
// Values of k staged per step.
const KT = SET_BY_HOST;
const BM = RM * WY;
const BN = 4u * WX;
const THREADS = WX * WY;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> w: array<vec4f>;
@group(0) @binding(5) var<storage, read> bias: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> outAct: array<vec4f>;

// aT[kk][q][c] = A[r0 + 4q + c, k0 + kk]: [KT][BM / 4] vec4
var<workgroup> aT: array<array<vec4f, BM / 4u>, KT>;
// wS[kk][q][c] = W[k0 + kk, c0 + 4q + c]: [KT][BN / 4] vec4
var<workgroup> wS: array<array<vec4f, WX>, KT>;

// A[row, k..k+3] (k a multiple of 4) as floats: 4 pixel bytes ÷ 255 (one
// word), or 4 f32 stored as bits.
fn loadA4(row: u32, k: u32) -> vec4f {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k / 4u];
    return vec4f(
      f32(word & 0xffu) / 255.0,
      f32((word >> 8u) & 0xffu) / 255.0,
      f32((word >> 16u) & 0xffu) / 255.0,
      f32(word >> 24u) / 255.0,
    );
  }
  let at = row * K + k;
  return vec4f(
    bitcast<f32>(aWords[at]),
    bitcast<f32>(aWords[at + 1u]),
    bitcast<f32>(aWords[at + 2u]),
    bitcast<f32>(aWords[at + 3u]),
  );
}

@compute @workgroup_size(WX, WY)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let r0 = wg.y * BM;
  let c0 = wg.x * BN;
  // acc{i}: out[r0 + RM·lid.y + i, c0 + 4·lid.x ..+3] (acc4..7: RM = 8 only)
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0);
  var acc5 = vec4f(0.0);
  var acc6 = vec4f(0.0);
  var acc7 = vec4f(0.0);
  for (var k0 = 0u; k0 < K; k0 += KT) {
    // Stage A[r0 .. r0+BM, k0 .. k0+KT]: BM × KT/4 groups of 4 values of k.
    for (var t = li; t < BM * (KT / 4u); t += THREADS) {
      let row = t / (KT / 4u);
      let kq = 4u * (t % (KT / 4u));
      let r = r0 + row;
      let k = k0 + kq;
      var v = vec4f(0.0);
      if (r < step.count && k < K) {
        v = loadA4(r, k);
      }
      aT[kq][row / 4u][row % 4u] = v.x;
      aT[kq + 1u][row / 4u][row % 4u] = v.y;
      aT[kq + 2u][row / 4u][row % 4u] = v.z;
      aT[kq + 3u][row / 4u][row % 4u] = v.w;
    }
    // Stage W[k0 .. k0+KT, c0 .. c0+BN]: KT × BN/4 vec4.
    for (var t = li; t < KT * WX; t += THREADS) {
      let kk = t / WX;
      let q = t % WX;
      let k = k0 + kk;
      let col = c0 + 4u * q;
      var v = vec4f(0.0);
      if (k < K && col < N) {
        v = w[k * (N / 4u) + col / 4u];
      }
      wS[kk][q] = v;
    }
    workgroupBarrier();
    let kEnd = min(KT, K - k0);
    for (var kk = 0u; kk < kEnd; kk++) {
      let a = aT[kk][(RM / 4u) * lid.y];
      let b = wS[kk][lid.x];
      acc0 = fma(vec4f(a.x), b, acc0);
      acc1 = fma(vec4f(a.y), b, acc1);
      acc2 = fma(vec4f(a.z), b, acc2);
      acc3 = fma(vec4f(a.w), b, acc3);
      if (RM == 8u) {
        let a2 = aT[kk][2u * lid.y + 1u];
        acc4 = fma(vec4f(a2.x), b, acc4);
        acc5 = fma(vec4f(a2.y), b, acc5);
        acc6 = fma(vec4f(a2.z), b, acc6);
        acc7 = fma(vec4f(a2.w), b, acc7);
      }
    }
    workgroupBarrier();
  }
  let col = c0 + 4u * lid.x;
  if (col >= N) {
    return;
  }
  let b = bias[col / 4u];
  let row = r0 + RM * lid.y;
  let zero = vec4f(0.0);
  if (row < step.count) {
    outAct[row * (N / 4u) + col / 4u] = max(acc0 + b, zero);
  }
  if (row + 1u < step.count) {
    outAct[(row + 1u) * (N / 4u) + col / 4u] = max(acc1 + b, zero);
  }
  if (row + 2u < step.count) {
    outAct[(row + 2u) * (N / 4u) + col / 4u] = max(acc2 + b, zero);
  }
  if (row + 3u < step.count) {
    outAct[(row + 3u) * (N / 4u) + col / 4u] = max(acc3 + b, zero);
  }
  if (RM == 8u) {
    if (row + 4u < step.count) {
      outAct[(row + 4u) * (N / 4u) + col / 4u] = max(acc4 + b, zero);
    }
    if (row + 5u < step.count) {
      outAct[(row + 5u) * (N / 4u) + col / 4u] = max(acc5 + b, zero);
    }
    if (row + 6u < step.count) {
      outAct[(row + 6u) * (N / 4u) + col / 4u] = max(acc6 + b, zero);
    }
    if (row + 7u < step.count) {
      outAct[(row + 7u) * (N / 4u) + col / 4u] = max(acc7 + b, zero);
    }
  }
}
