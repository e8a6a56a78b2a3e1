// weightGradBlocked: W[k, n] -= lr · Σ_r A[r, k] · G[r, n];   b[n] -= lr · Σ_r G[r, n]
//   A: [rows, K] (f32, or packed image bytes ÷ 255 when A_BYTES),
//   G: [rows, N] = ∂L/∂z (already ÷ batch size), W: [K, N], b: [N], in place;
//   K and N multiples of 4 (G, W and b as vec4)
// Differentiates  z = A·W + b  (matmulBiasRelu.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z,
// with the SGD update folded in (UPDATE_IN_PLACE; otherwise ∂W, ∂b are stored).
// For discrete GPUs: a workgroup of WX × WY invocations owns a 4·WY × 4·WX
// tile of W (k × n), each invocation a 4 × 4 block in registers; per stage of
// RT batch rows it stages those rows of A (four k per vec4, as stored) and of
// G (four n per vec4) in workgroup memory, then adds their outer products.
// Each weight is one accumulator over r = 0, 1, 2, … in order (fma), and each
// bias one sum in that order, as in the other variants: the same bits.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;
// false: w and bias are gradient buffers; ∂W and ∂b are written as they are,
// for an optimiser step (momentumStep.wgsl, adamStep.wgsl) after the backward pass.
const UPDATE_IN_PLACE = SET_BY_HOST;
// Invocations per workgroup along n (columns of W) and along k (rows of W).
const WX = SET_BY_HOST;
const WY = SET_BY_HOST;
// Batch rows staged per step.
const RT = SET_BY_HOST;
const BM = 4u * WY;
const BN = 4u * WX;
const THREADS = WX * WY;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> w: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> bias: array<vec4f>;

// aS[rr][q][c] = A[r0 + rr, k0 + 4q + c]: [RT][BM / 4] vec4
var<workgroup> aS: array<array<vec4f, WY>, RT>;
// gS[rr][q][c] = G[r0 + rr, n0 + 4q + c]: [RT][BN / 4] vec4
var<workgroup> gS: array<array<vec4f, WX>, RT>;

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
  let k0 = wg.y * BM;
  let n0 = wg.x * BN;
  // acc{i}: Σ_r A[r, k0 + 4·lid.y + i] · G[r, n0 + 4·lid.x ..+3]; gsum: Σ_r G[r, n0 + 4·lid.x ..+3]
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var gsum = vec4f(0.0);
  for (var r0 = 0u; r0 < step.count; r0 += RT) {
    // Stage A[r0 .. r0+RT, k0 .. k0+BM]: RT × BM/4 vec4.
    for (var t = li; t < RT * WY; t += THREADS) {
      let rr = t / WY;
      let q = t % WY;
      let r = r0 + rr;
      let k = k0 + 4u * q;
      var v = vec4f(0.0);
      if (r < step.count && k < K) {
        v = loadA4(r, k);
      }
      aS[rr][q] = v;
    }
    // Stage G[r0 .. r0+RT, n0 .. n0+BN]: RT × BN/4 vec4.
    for (var t = li; t < RT * WX; t += THREADS) {
      let rr = t / WX;
      let q = t % WX;
      let r = r0 + rr;
      let n = n0 + 4u * q;
      var v = vec4f(0.0);
      if (r < step.count && n < N) {
        v = g[r * (N / 4u) + n / 4u];
      }
      gS[rr][q] = v;
    }
    workgroupBarrier();
    let rEnd = min(RT, step.count - r0);
    for (var rr = 0u; rr < rEnd; rr++) {
      let a = aS[rr][lid.y];
      let gv = gS[rr][lid.x];
      acc0 = fma(vec4f(a.x), gv, acc0);
      acc1 = fma(vec4f(a.y), gv, acc1);
      acc2 = fma(vec4f(a.z), gv, acc2);
      acc3 = fma(vec4f(a.w), gv, acc3);
      gsum += gv;
    }
    workgroupBarrier();
  }
  let n = n0 + 4u * lid.x;
  if (n >= N) {
    return;
  }
  let k = k0 + 4u * lid.y;
  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    if (k + i < K) {
      let at = (k + i) * (N / 4u) + n / 4u;
      if (UPDATE_IN_PLACE) {
        w[at] = w[at] - step.lr * accs[i];
      } else {
        w[at] = accs[i];
      }
    }
  }
  if (k == 0u) {
    if (UPDATE_IN_PLACE) {
      bias[n / 4u] = bias[n / 4u] - step.lr * gsum;
    } else {
      bias[n / 4u] = gsum;
    }
  }
}
