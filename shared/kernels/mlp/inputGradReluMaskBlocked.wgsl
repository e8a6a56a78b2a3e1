// inputGradReluMaskBlocked: dZ[r, n] = (Σ_k G[r, k] · W[n, k]) · (act[r, n] > 0 ? 1 : 0)
//   G: [rows, K] = ∂L/∂z of the next layer, W: [N, K] the next layer's weights,
//   act: [rows, N] this layer's ReLU output, dZ: [rows, N]; K and N multiples
//   of 4 (every operand read and written as vec4)
// Differentiates  a = relu(z); z_next = a·W + b  (matmulBiasRelu.wgsl):
//   ∂a = ∂z_next · Wᵀ, ∂z = ∂a where a > 0. W is read before its update.
// For discrete GPUs (see matmulBiasReluBlocked.wgsl): a workgroup of WX × WY
// invocations computes a 4·WY × 4·WX tile of dZ, each invocation a 4 × 4
// block in registers; per stage of KT values of k, G and W are staged in
// workgroup memory, both transposed (four rows, or four n, of one k per
// vec4). Each output is one accumulator over k = 0, 1, 2, … in order (fma).

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const WX = SET_BY_HOST;
const WY = SET_BY_HOST;
const KT = SET_BY_HOST;
const BM = 4u * WY;
const BN = 4u * WX;
const THREADS = WX * WY;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> g: array<vec4f>;
@group(0) @binding(3) var<storage, read> w: array<vec4f>;
@group(0) @binding(5) var<storage, read> act: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dz: array<vec4f>;

// gT[kk][q][c] = G[r0 + 4q + c, k0 + kk]: [KT][BM / 4] vec4
var<workgroup> gT: array<array<vec4f, WY>, KT>;
// wT[kk][q][c] = W[c0 + 4q + c, k0 + kk]: [KT][BN / 4] vec4
var<workgroup> wT: array<array<vec4f, WX>, KT>;

@compute @workgroup_size(WX, WY)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let r0 = wg.y * BM;
  let c0 = wg.x * BN;
  // acc{i}: dZ[r0 + 4·lid.y + i, c0 + 4·lid.x ..+3] before the mask
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < K; k0 += KT) {
    // Stage G[r0 .. r0+BM, k0 .. k0+KT]: one vec4 of k per row and item.
    for (var t = li; t < BM * (KT / 4u); t += THREADS) {
      let row = t / (KT / 4u);
      let kq = 4u * (t % (KT / 4u));
      let r = r0 + row;
      let k = k0 + kq;
      var v = vec4f(0.0);
      if (r < step.count && k < K) {
        v = g[r * (K / 4u) + k / 4u];
      }
      gT[kq][row / 4u][row % 4u] = v.x;
      gT[kq + 1u][row / 4u][row % 4u] = v.y;
      gT[kq + 2u][row / 4u][row % 4u] = v.z;
      gT[kq + 3u][row / 4u][row % 4u] = v.w;
    }
    // Stage W[c0 .. c0+BN, k0 .. k0+KT] the same way.
    for (var t = li; t < BN * (KT / 4u); t += THREADS) {
      let n = t / (KT / 4u);
      let kq = 4u * (t % (KT / 4u));
      let k = k0 + kq;
      var v = vec4f(0.0);
      if (c0 + n < N && k < K) {
        v = w[(c0 + n) * (K / 4u) + k / 4u];
      }
      wT[kq][n / 4u][n % 4u] = v.x;
      wT[kq + 1u][n / 4u][n % 4u] = v.y;
      wT[kq + 2u][n / 4u][n % 4u] = v.z;
      wT[kq + 3u][n / 4u][n % 4u] = v.w;
    }
    workgroupBarrier();
    let kEnd = min(KT, K - k0);
    for (var kk = 0u; kk < kEnd; kk++) {
      let a = gT[kk][lid.y];
      let b = wT[kk][lid.x];
      acc0 = fma(vec4f(a.x), b, acc0);
      acc1 = fma(vec4f(a.y), b, acc1);
      acc2 = fma(vec4f(a.z), b, acc2);
      acc3 = fma(vec4f(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  let col = c0 + 4u * lid.x;
  if (col >= N) {
    return;
  }
  let row = r0 + 4u * lid.y;
  let zero = vec4f(0.0);
  if (row < step.count) {
    let at = row * (N / 4u) + col / 4u;
    dz[at] = select(zero, acc0, act[at] > zero);
  }
  if (row + 1u < step.count) {
    let at = (row + 1u) * (N / 4u) + col / 4u;
    dz[at] = select(zero, acc1, act[at] > zero);
  }
  if (row + 2u < step.count) {
    let at = (row + 2u) * (N / 4u) + col / 4u;
    dz[at] = select(zero, acc2, act[at] > zero);
  }
  if (row + 3u < step.count) {
    let at = (row + 3u) * (N / 4u) + col / 4u;
    dz[at] = select(zero, acc3, act[at] > zero);
  }
}
