// weightGradSplit: split-K first pass of  ∂W = Aᵀ·G,  ∂b = Σ_r G  over chunks of CHUNK rows
//   partial[s, k·N + n] = Σ_{r in chunk s} A[r, k] · G[r, n]      (k < K)
//   partial[s, K·N + n] = Σ_{r in chunk s} G[r, n]                (the bias)
//   A: [rows, K] this layer's input, G: [rows, N] = ∂L/∂z (already ÷ batch size),
//   partial: [⌈rows / CHUNK⌉, K·N + N]; weightGradSplitSum.wgsl adds the chunks.
// Differentiates the output layer's  z3 = a2·W3 + b3  (outputLayerRows.wgsl): ∂W = Aᵀ·∂z, ∂b = Σ_r ∂z.
// For small outputs (the 128 × 10 output layer): a tiled kernel gives it only
// ⌈K/16⌉·⌈N/16⌉ = 8 workgroups, each looping over the whole batch. Here every
// invocation owns one output value of one chunk of rows (workgroup y = chunk),
// and the second pass sums the chunks in order, so the result is
// deterministic (no atomics).

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const N = SET_BY_HOST;
const CHUNK = SET_BY_HOST;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o = gid.x; // output index: k·N + n, or K·N + n for the bias
  let chunk = gid.y;
  let r0 = chunk * CHUNK;
  if (o >= K * N + N || r0 >= step.count) {
    return;
  }
  let r1 = min(r0 + CHUNK, step.count);
  let n = o % N;
  var acc = 0.0;
  if (o < K * N) {
    let k = o / N;
    for (var r = r0; r < r1; r++) {
      acc = fma(a[r * K + k], g[r * N + n], acc);
    }
  } else {
    for (var r = r0; r < r1; r++) {
      acc += g[r * N + n];
    }
  }
  partial[chunk * (K * N + N) + o] = acc;
}
