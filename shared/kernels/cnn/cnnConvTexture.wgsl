// cnnConvTexture: a valid KS×KS convolution as an implicit GEMM (no im2col columns), bias added:
//   z[(b, oy, ox), n] = w[K, n] + Σ_{ky, kx < KS} Σ_{c4 < C/4}
//                       a[b, oy + ky, ox + kx, 4·c4 .. 4·c4 + 3] · w[(ky·KS + kx)·C + 4·c4 .. +3, n]
//   a: rgba32float texture [count·H][W·C/4] (the layer's input, NHWC, 4 channels a texel:
//      texel (x·C/4 + c4, b·H + y) holds a[b, y, x, 4·c4 .. 4·c4 + 3]),
//   w: rgba32float texture [K + 1][N/4] (rows in (ky, kx, c) order, the bias last; K = KS·KS·C),
//   z: [count·HO·WO, N] (NHWC, as vec4), HO = H − KS + 1, WO = W − KS + 1.
// The math of im2col + cnnMatmulVec4, and the same sums in the same order: each output starts
// at the bias and adds, per 4 values of k, x.x·w0 + x.y·w1 + x.z·w2 + x.w·w3 (so the results are
// bit for bit those of the two stages it replaces; C a multiple of 4 keeps each 4 values of k
// in one texel). Each invocation computes PX pixels of an output line (b, oy) × 4·NV
// channels, in registers; the loops over them are unrolled (`// unroll`, as the MLP's
// texture kernels: llvmpipe keeps arrays indexed by loop counters in memory). Per 4 values of k
// it fetches PX texels of a and 4·NV of w for 4·PX·NV vec4 multiply-adds. Measured on llvmpipe
// (conv2 of MNIST, 2 cores): PX = 8, NV = 4 is the fastest of those tried; NV = 8 (64 vec4 sums)
// or two lines per invocation ran 2–3× slower, NV = 2 1.5× slower, and w as a uniform
// binding (the same index in every lane when NV = N/4) ran slower than w from a texture.
// Workgroups of 16 invocations (smaller groups balance better over llvmpipe's threads): unlike
// the other kernels, which number their invocations (wg.y·groups.x + wg.x)·64 + local, this one
// counts in 16s; the kit sizes grids in 64s, so the host asks for 64 threads per 16
// invocations (fast/cnn/textures.ts).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const KS = SET_BY_HOST;
const N = SET_BY_HOST;
const NV = SET_BY_HOST; // vec4 columns of z per invocation; N/4 a multiple of NV
const WO = SET_BY_HOST; // W − KS + 1: pixels per output line
const PX = SET_BY_HOST; // output pixels per invocation, along a line; WO a multiple of PX

const HO = H - KS + 1u;
const C4 = C / 4u;
const K = KS * KS * C;
const NB = N / (4u * NV); // column blocks
const PB = WO / PX; // pixel blocks per line
const N4 = N / 4u;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var aTex: texture_2d<f32>; // [count·H][W·C/4]
@group(0) @binding(2) var wTex: texture_2d<f32>; // [K + 1][N/4]
@group(0) @binding(3) var<storage, read_write> z: array<vec4f>; // [count·HO·WO, N/4]

@compute @workgroup_size(16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let t = (wg.y * groups.x + wg.x) * 16u + local;
  if (t >= batch.count * HO * PB * NB) {
    return;
  }
  let c0 = (t % NB) * NV; // first vec4 column
  let ox0 = ((t / NB) % PB) * PX; // first pixel
  let line = t / (NB * PB); // (b, oy)
  let b = line / HO;
  let oy = line % HO;
  var acc: array<array<vec4f, NV>, PX>; // pixels ox0 .. ox0 + PX − 1
  // unroll
  for (var j = 0u; j < NV; j++) {
    let bias = textureLoad(wTex, vec2u(c0 + j, K), 0);
    // unroll
    for (var i = 0u; i < PX; i++) {
      acc[i][j] = bias;
    }
  }
  for (var ky = 0u; ky < KS; ky++) {
    let y = b * H + oy + ky;
    for (var kx = 0u; kx < KS; kx++) {
      for (var c4 = 0u; c4 < C4; c4++) {
        let k = (ky * KS + kx) * C + 4u * c4; // w's first row for these 4 values of k
        var s = acc;
        var x: array<vec4f, PX>;
        // unroll
        for (var i = 0u; i < PX; i++) {
          x[i] = textureLoad(aTex, vec2u((ox0 + i + kx) * C4 + c4, y), 0);
        }
        // unroll
        for (var j = 0u; j < NV; j++) {
          let w0 = textureLoad(wTex, vec2u(c0 + j, k), 0);
          let w1 = textureLoad(wTex, vec2u(c0 + j, k + 1u), 0);
          let w2 = textureLoad(wTex, vec2u(c0 + j, k + 2u), 0);
          let w3 = textureLoad(wTex, vec2u(c0 + j, k + 3u), 0);
          // unroll
          for (var i = 0u; i < PX; i++) {
            s[i][j] += x[i].x * w0 + x[i].y * w1 + x[i].z * w2 + x[i].w * w3;
          }
        }
        acc = s;
      }
    }
  }
  // unroll
  for (var i = 0u; i < PX; i++) {
    // unroll
    for (var j = 0u; j < NV; j++) {
      z[(line * WO + ox0 + i) * N4 + c0 + j] = acc[i][j];
    }
  }
}
