// col2imVec4: gx[b, y, x, c] = Σ_{ky, kx < K, 0 ≤ y−ky < HO, 0 ≤ x−kx < WO} gcols[(b, y−ky, x−kx), (ky, kx, c)]
//   gcols: [count·HO·WO, COLS], gx: [count, H, W, C], both as vec4 along rows; C and COLS
//   multiples of 4 (columns from K·K·C on are padding, ignored); HO = H − K + 1, WO = W − K + 1.
// The math of col2im (backward of im2col's  cols[(b, oy, ox), (ky, kx, c)] = x[b, oy + ky, ox + kx, c]),
// each thread summing 4 consecutive channels with vec4 loads.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const K = SET_BY_HOST;
const COLS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> gcols: array<vec4f>; // [count·HO·WO, COLS / 4]
@group(0) @binding(2) var<storage, read_write> gx: array<vec4f>; // [count, H, W, C / 4]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let HO = H - K + 1u;
  let WO = W - K + 1u;
  let C4 = C / 4u;
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * H * W * C4) {
    return;
  }
  let c4 = i % C4;
  let x = (i / C4) % W;
  let y = (i / (C4 * W)) % H;
  let b = i / (C4 * W * H);
  var sum = vec4f(0.0);
  // ky ranges over max(0, y − HO + 1) ..= min(K − 1, y), likewise kx (u32: no negatives).
  let kyLo = select(0u, y + 1u - HO, y + 1u > HO);
  let kxLo = select(0u, x + 1u - WO, x + 1u > WO);
  for (var ky = kyLo; ky <= min(K - 1u, y); ky++) {
    for (var kx = kxLo; kx <= min(K - 1u, x); kx++) {
      let row = (b * HO + y - ky) * WO + x - kx;
      sum += gcols[(row * COLS + (ky * K + kx) * C) / 4u + c4];
    }
  }
  gx[i] = sum;
}
