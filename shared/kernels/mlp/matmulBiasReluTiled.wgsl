// matmulBiasReluTiled: out[r, n] = max(0, Σ_k A[r, k] · W[k, n] + b[n])
//   A: [rows, K] (f32, or packed image bytes ÷ 255 when A_BYTES), W: [K, N],
//   b: [N], out: [rows, N]
// The forward line of a hidden layer, a = relu(x·W + b), tiled through
// workgroup memory (what real GPUs like): a 16 × 16 workgroup stages a
// 16 × 16 tile of A and of W per step of k, then each invocation reads its row
// and column of the tiles 16 times from fast shared memory.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const A_BYTES = SET_BY_HOST;
const T = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> aWords: array<u32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> outAct: array<f32>;

var<workgroup> aTile: array<array<f32, T>, T>;
var<workgroup> wTile: array<array<f32, T>, T>;

fn loadA(row: u32, k: u32) -> f32 {
  if (A_BYTES) {
    let word = aWords[(step.start + row) * (K / 4u) + k / 4u];
    return f32((word >> (8u * (k % 4u))) & 0xffu) / 255.0;
  }
  return bitcast<f32>(aWords[row * K + k]);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * T + lid.y;
  let col = wg.x * T + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < K; k0 += T) {
    let ka = k0 + lid.x;
    aTile[lid.y][lid.x] = select(0.0, loadA(min(row, step.count - 1u), min(ka, K - 1u)), row < step.count && ka < K);
    let kw = k0 + lid.y;
    wTile[lid.y][lid.x] = select(0.0, w[min(kw, K - 1u) * N + min(col, N - 1u)], kw < K && col < N);
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk++) {
      acc = fma(aTile[lid.y][kk], wTile[kk][lid.x], acc);
    }
    workgroupBarrier();
  }
  if (row < step.count && col < N) {
    outAct[row * N + col] = max(acc + bias[col], 0.0);
  }
}
