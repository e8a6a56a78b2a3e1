// cnnConvInputGradPoolTexture: the input gradient of a valid KS×KS convolution, col2im implicit,
// then continued through the ReLU and 2 × 2 max-pool that made the convolution's input.
// Backward of  z[(b, oy, ox), n] = w[K, n] + Σ_{ky, kx, c} a[b, oy + ky, ox + kx, c] · w[(ky, kx, c), n]
// (cnnConvTexture): each a[b, y, x, c] collects ∂z · w over the outputs whose window holds it:
//   ∂a[b, y, x, 4·c4 .. 4·c4 + 3] = Σ_{ky, kx: 0 ≤ y − ky < HO, 0 ≤ x − kx < WO}  v(b, y − ky, x − kx, k)
//   v(b, oy, ox, k) = Σ_{n4 < N/4} transpose(mat4x4(w[k .. k + 3, 4·n4 .. 4·n4 + 3])) · g[b, oy, ox, 4·n4 ..]
//   with k = (ky·KS + kx)·C + 4·c4: v is ∂cols = ∂z · Wᵀ at row (b, oy, ox), columns k .. k + 3.
// Then the backward of  a[b, y, x, c] = max_{dy, dx < 2} relu(p[b, 2y + dy, 2x + dx, c])  (the pool
// before, argmax = where): for each element i = (b, 2y + dy, 2x + dx, c) of p,
//   ∂p[i] = ∂a[b, y, x, c] if argmax[b, y, x, c] = i and a[b, y, x, c] > 0, else 0
//   (a > 0 exactly when p[argmax] > 0: a is the ReLU of the window's largest; the elements of p no
//   window covers, an odd last line or column, are never written and keep the buffer's zeros).
//   g: rgba32float texture [count·HO][WO·N/4] (∂z, texel (ox·N/4 + n4, b·HO + oy)),
//   w: rgba32float texture [K + 1][N/4] (the forward's W, rows in (ky, kx, c) order),
//   a: rgba32float texture [count·H][W·C/4] (the convolution's input, the pool's output),
//   argmax: [count, H, W, C] (as vec4u; flat indices into p), ∂p: [count, PH, PW, C] (as vec4),
//   HO = H − KS + 1, WO = W − KS + 1, C a multiple of 4, H = PH/2 and W = PW/2 rounded down.
// The math of cnnMatmulTransBVec4, col2imVec4 and maxPoolBackwardVec4, and the same sums in the
// same order (each v from zero over n4 in order, then the v's added in (ky, kx) order from zero),
// so bit for bit their results, without the ∂cols matrix [count·HO·WO, K] and ∂a between them.
// Each invocation sums one line of ∂a (b, y: its W pixels) for 4 channels c4. Per ky it keeps the
// v's of all KS values of kx for the WO output pixels of line y − ky, so each texel of g is fetched
// once per ky and serves KS·4 columns (fetched again per kx, the kernel took about 1.4× as long on
// llvmpipe, with the same bits); then it adds each v to pixel ox + kx. Consecutive invocations are
// consecutive images (the same y and c4: the same range of ky in every SIMD lane). The loops over
// kx and the pixels are unrolled, so every index into the sums is a constant. Its line of ∂a then
// goes through the pool's backward into ∂p in registers (on llvmpipe, conv2 and pool1 of MNIST at
// batch 32: 2.3–2.6 ms a step, against 2.05–2.10 for the input gradient alone storing ∂a, plus
// 0.71–0.72 for a pass of the pool's backward loading ∂a and p's 4 values a window).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const KS = SET_BY_HOST;
const N = SET_BY_HOST;
const PH = SET_BY_HOST; // p's lines (the pool's input)
const PW = SET_BY_HOST; // p's pixels a line

const HO = H - KS + 1u;
const WO = W - KS + 1u;
const C4 = C / 4u;
const N4 = N / 4u;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var gTex: texture_2d<f32>; // [count·HO][WO·N/4]
@group(0) @binding(2) var wTex: texture_2d<f32>; // [K + 1][N/4]
@group(0) @binding(3) var aTex: texture_2d<f32>; // [count·H][W·C/4]
@group(0) @binding(4) var<storage, read> argmax: array<vec4u>; // [count, H, W, C / 4]
@group(0) @binding(5) var<storage, read_write> gp: array<vec4f>; // [count, PH, PW, C / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let t = (wg.y * groups.x + wg.x) * 64u + local;
  if (t >= batch.count * H * C4) {
    return;
  }
  let b = t % batch.count;
  let c4 = (t / batch.count) % C4; // this invocation's 4 channels: 4·c4 .. 4·c4 + 3
  let y = t / (batch.count * C4);
  let line = b * H + y; // (b, y)
  var sum: array<vec4f, W>; // ∂a[b, y, x, 4·c4 ..] for x < W
  // ky ranges over max(0, y − HO + 1) ..= min(KS − 1, y) (u32: no negatives), as in col2im.
  let kyLo = select(0u, y + 1u - HO, y + 1u > HO);
  for (var ky = kyLo; ky <= min(KS - 1u, y); ky++) {
    let gy = b * HO + y - ky; // g's texture row: (b, oy = y − ky)
    // v[kx][ox] = v(b, y − ky, ox, (ky·KS + kx)·C + 4·c4), each summed over n4 in order; zeroed
    // explicitly: a `var` without an initializer inside a loop was not zeroed again on each
    // trip here (naga, llvmpipe).
    var v = array<array<vec4f, WO>, KS>();
    for (var n4 = 0u; n4 < N4; n4++) {
      var g: array<vec4f, WO>; // ∂z[b, y − ky, ox, 4·n4 ..] for every ox, fetched once
      // unroll
      for (var ox = 0u; ox < WO; ox++) {
        g[ox] = textureLoad(gTex, vec2u(ox * N4 + n4, gy), 0);
      }
      // unroll
      for (var kx = 0u; kx < KS; kx++) {
        let k = (ky * KS + kx) * C + 4u * c4;
        let tl = transpose(mat4x4f(
          textureLoad(wTex, vec2u(n4, k), 0),
          textureLoad(wTex, vec2u(n4, k + 1u), 0),
          textureLoad(wTex, vec2u(n4, k + 2u), 0),
          textureLoad(wTex, vec2u(n4, k + 3u), 0),
        ));
        // unroll
        for (var ox = 0u; ox < WO; ox++) {
          v[kx][ox] += tl * g[ox];
        }
      }
    }
    // The term of output pixel ox goes to pixel x = ox + kx (every ox is in range), kx in order.
    // unroll
    for (var kx = 0u; kx < KS; kx++) {
      // unroll
      for (var ox = 0u; ox < WO; ox++) {
        sum[ox + kx] += v[kx][ox];
      }
    }
  }
  // ∂a[b, y, x, 4·c4 ..] = sum[x] goes to its window's argmax in ∂p where a > 0.
  // unroll
  for (var x = 0u; x < W; x++) {
    let o4 = (line * W + x) * C4 + c4; // (b, y, x, c4)
    let at = argmax[o4];
    let live = textureLoad(aTex, vec2u(x * C4 + c4, line), 0) > vec4f(0.0);
    // unroll
    for (var d = 0u; d < 4u; d++) {
      let i4 = ((b * PH + 2u * y + d / 2u) * PW + 2u * x + d % 2u) * C4 + c4; // (dy, dx) = (d / 2, d % 2)
      let i = vec4u(4u * i4) + vec4u(0u, 1u, 2u, 3u); // flat indices of the 4 elements
      gp[i4] = select(vec4f(0.0), sum[x], (at == i) & live);
    }
  }
}
