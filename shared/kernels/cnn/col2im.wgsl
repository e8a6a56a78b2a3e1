// col2im: gx[b, y, x, c] = Σ_{ky, kx < K, 0 ≤ y−ky < HO, 0 ≤ x−kx < WO} gcols[(b, y−ky, x−kx), (ky, kx, c)]
//   gcols: [count·HO·WO, COLS] (columns from K·K·C on are padding, ignored), gx: [count, H, W, C] (NHWC), HO = H − K + 1, WO = W − K + 1
// Backward of im2col's  cols[(b, oy, ox), (ky, kx, c)] = x[b, oy + ky, ox + kx, c]:
// every column entry copied from x[b, y, x, c] sends its gradient back there. Written as a
// gather (one thread per element of gx, summing its at most K·K sources), so no atomics.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const H = SET_BY_HOST;
const W = SET_BY_HOST;
const C = SET_BY_HOST;
const K = SET_BY_HOST;
const COLS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> gcols: array<f32>; // [count·HO·WO, COLS]
@group(0) @binding(2) var<storage, read_write> gx: array<f32>; // [count, H, W, C]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let HO = H - K + 1u;
  let WO = W - K + 1u;
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * H * W * C) {
    return;
  }
  let c = i % C;
  let x = (i / C) % W;
  let y = (i / (C * W)) % H;
  let b = i / (C * W * H);
  var sum = 0.0;
  // ky ranges over max(0, y − HO + 1) ..= min(K − 1, y), likewise kx (u32: no negatives).
  let kyLo = select(0u, y + 1u - HO, y + 1u > HO);
  let kxLo = select(0u, x + 1u - WO, x + 1u > WO);
  for (var ky = kyLo; ky <= min(K - 1u, y); ky++) {
    for (var kx = kxLo; kx <= min(K - 1u, x); kx++) {
      let row = (b * HO + y - ky) * WO + x - kx;
      sum += gcols[row * COLS + (ky * K + kx) * C + c];
    }
  }
  gx[i] = sum;
}
