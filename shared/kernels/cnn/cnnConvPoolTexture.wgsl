// cnnConvPoolTexture: a valid KS×KS convolution of a one-channel image, bias added, then the ReLU
// and the 2×2 max-pool, in one kernel (conv1 and pool1 of the CNN):
//   z[b, oy, ox, n] = w[KPAD, n] + Σ_{k4 < KPAD/4} Σ_{j < 4} x(b, oy, ox, 4·k4 + j) · w[4·k4 + j, n]
//   x(b, oy, ox, k) = x[b, oy + k / KS, ox + k % KS] for k < K = KS·KS, else 0 (the padding)
//   out[b, py, px, n] = max_{dy, dx < 2} max(0, z[b, 2py + dy, 2px + dx, n])
//   argmax[b, py, px, n] = flat index in z of the first (in dy, dx order) element reaching it
//   x: [count, H, W] (as vec4, W a multiple of 4), w: rgba32float texture [KPAD + 1][N/4] (rows
//   in (ky, kx) order, zero rows K .. KPAD − 1, the bias last), z: [count, HO, WO, N] (in
//   registers only: the backward needs only out and argmax), out: rgba32float storage texture
//   [count·HO/2][WO/2·N/4] (texel (px·N/4 + n4, b·HO/2 + py)),
//   argmax: [count, HO/2, WO/2, N] (as vec4u); HO = H − KS + 1, WO = W − KS + 1 (floor: an odd
//   last line or column of z is not pooled).
// The sums of im2colVec4 + cnnMatmulVec4 (conv1's im2col variant, over its KPAD im2col
// columns) in the same order, and maxPoolTexture's values and argmaxes, without the im2col
// columns (read from x where they came from) and without z stored or read back. Each
// invocation computes two output lines (one line of the pool) × PXB pixels × 4 channels n4 in
// registers: it loads the (KS + 1) × (PXB + KS − 1) pixels under them once (as vec4s) and the
// KPAD + 1 texels of w's column n4; the loops are unrolled, so every index into the pixels is a
// constant. (On llvmpipe a load costs 15 to 24 vec4 multiply-adds: bench/load_costs.ts.)

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const KS = SET_BY_HOST;
const KPAD = SET_BY_HOST; // KS·KS padded to a multiple of 4 (w's rows before the bias)
const N = SET_BY_HOST;
const PXB = SET_BY_HOST; // output pixels per invocation along a line, a multiple of 4

const HO = H - KS + 1u;
const WO = W - KS + 1u;
const PH = HO / 2u;
const PW = WO / 2u;
const K = KS * KS;
const K4 = KPAD / 4u;
const N4 = N / 4u;
const W4 = W / 4u; // vec4s per image line
const ROWS = KS + 1u; // image lines under two output lines
const SPAN4 = (PXB + KS + 2u) / 4u; // vec4s under PXB output pixels: ceil((PXB + KS − 1) / 4)
const LINE = 2u * PXB; // outputs per invocation: two lines of PXB
const PX2 = PXB / 2u; // pool outputs per invocation
const BLOCKS = (WO + PXB - 1u) / PXB; // blocks of PXB pixels per line (the last may overhang)

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> x: array<vec4f>; // [count, H, W / 4]
@group(0) @binding(2) var wTex: texture_2d<f32>; // [KPAD + 1][N/4]
@group(0) @binding(3) var pooled: texture_storage_2d<rgba32float, write>; // [count·PH][PW·N/4]
@group(0) @binding(4) var<storage, read_write> argmax: array<vec4u>; // [count, PH, PW, N / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= batch.count * PH * BLOCKS * N4) {
    return;
  }
  let n4 = t % N4;
  let ox0 = ((t / N4) % BLOCKS) * PXB; // first output pixel (a multiple of 4)
  let py = (t / (N4 * BLOCKS)) % PH;
  let b = t / (N4 * BLOCKS * PH);
  // The pixels under the block: px[r][q] = x[b, 2py + r, ox0 + q] (past W − 1: unused).
  var px: array<array<f32, 4u * SPAN4>, ROWS>;
  // unroll
  for (var r = 0u; r < ROWS; r++) {
    // unroll
    for (var q4 = 0u; q4 < SPAN4; q4++) {
      let v = x[(b * H + 2u * py + r) * W4 + min(ox0 / 4u + q4, W4 - 1u)];
      px[r][4u * q4] = v.x;
      px[r][4u * q4 + 1u] = v.y;
      px[r][4u * q4 + 2u] = v.z;
      px[r][4u * q4 + 3u] = v.w;
    }
  }
  // acc[l·PXB + i] = z[b, 2py + l, ox0 + i, 4·n4 ..], from the bias.
  var acc: array<vec4f, LINE>;
  let bias = textureLoad(wTex, vec2u(n4, KPAD), 0);
  // unroll
  for (var i = 0u; i < LINE; i++) {
    acc[i] = bias;
  }
  // unroll
  for (var k4 = 0u; k4 < K4; k4++) {
    let w0 = textureLoad(wTex, vec2u(n4, 4u * k4), 0);
    let w1 = textureLoad(wTex, vec2u(n4, 4u * k4 + 1u), 0);
    let w2 = textureLoad(wTex, vec2u(n4, 4u * k4 + 2u), 0);
    let w3 = textureLoad(wTex, vec2u(n4, 4u * k4 + 3u), 0);
    // unroll
    for (var i = 0u; i < LINE; i++) {
      let l = i / PXB;
      let o = i % PXB;
      acc[i] += tap(px, l, o, 4u * k4) * w0 + tap(px, l, o, 4u * k4 + 1u) * w1 +
        tap(px, l, o, 4u * k4 + 2u) * w2 + tap(px, l, o, 4u * k4 + 3u) * w3;
    }
  }
  // The ReLU and the pool of each 2 × 2 window (the first maximum in (dy, dx) order).
  // unroll
  for (var p = 0u; p < PX2; p++) {
    var best = vec4f(-1.0);
    var at = vec4u(0u);
    // unroll
    for (var d = 0u; d < 4u; d++) {
      let i = (d / 2u) * PXB + 2u * p + d % 2u; // (dy, dx) = (d / 2, d % 2)
      let i4 = ((b * HO + 2u * py + d / 2u) * WO + ox0 + 2u * p + d % 2u) * N4 + n4;
      let v = max(acc[i], vec4f(0.0));
      let better = v > best;
      best = select(best, v, better);
      at = select(at, vec4u(4u * i4) + vec4u(0u, 1u, 2u, 3u), better);
    }
    let pxo = ox0 / 2u + p;
    if (pxo < PW) {
      textureStore(pooled, vec2u(pxo * N4 + n4, b * PH + py), best);
      argmax[((b * PH + py) * PW + pxo) * N4 + n4] = at;
    }
  }
}

// x(b, 2py + l, ox0 + o, k): the pixel under tap k of output (l, o), or 0 in the padding.
fn tap(px: array<array<f32, 4u * SPAN4>, ROWS>, l: u32, o: u32, k: u32) -> f32 {
  if (k >= K) {
    return 0.0;
  }
  return px[l + k / KS][o + k % KS];
}
