// nonzeroRows: for each block b of BLOCK pixels (k in b·BLOCK .. b·BLOCK + BLOCK − 1),
//   the rows of the batch that have a pixel there that is not zero:
//   list[b] = count n, then the rows r < step.count (in increasing order) with
//             x[start + r, k] ≠ 0 for some k of the block; block 0 lists every row.
//   x: packed image bytes (4 pixels per u32, bound as vec4u), list: [blocks][1 + MAX_ROWS]
// Most of an MNIST image is background: in 62% of (image, 4 × 4 tile) pairs
// every pixel is zero (bench/RESULTS.md), and those rows add nothing to that block
// of the layer-1 weight gradient, ∂W1[k, n] = Σ_r x[r, k] · ∂z1[r, n]. The
// texture weight-gradient kernel (weightGradTexture.wgsl, SKIP_ZERO_ROWS)
// loops over these lists instead of all rows. Skipped terms are exact zeros
// and the rows keep their order, so the sums are bit for bit those of the
// full loop. Block 0 keeps every row because its invocations also sum ∂b1
// over the batch. One invocation per block, scanning the batch in order.
// With IMAGE_WIDTH the blocks are 4 × 4 tiles of the image in tile order
// (tileWord), as the weight-gradient kernel takes them.
// Needs K and BLOCK multiples of 4.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const BLOCK = SET_BY_HOST;
const MAX_ROWS = SET_BY_HOST;
// > 0: blocks of 4 × 4 tiles of an image IMAGE_WIDTH wide (weightGradTexture.wgsl).
const IMAGE_WIDTH = SET_BY_HOST;

const K4 = K / 4u; // u32 words (4 pixels) per image
const K16 = K / 16u; // whole vec4u (16 pixels) per image
// Whole vec4u where blocks and images allow it (one load for 16 pixels), else words.
const TILED = IMAGE_WIDTH > 0u;
const VEC = !TILED && K % 16u == 0u && BLOCK % 16u == 0u;
const BLOCKS = (K + BLOCK - 1u) / BLOCK;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> x: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> list: array<u32>;

// The u32 word holding tile-order pixels 4·q .. 4·q + 3 (as in weightGradTexture.wgsl).
fn tileWord(q: u32) -> u32 {
  let tilesPerRow = max(IMAGE_WIDTH / 4u, 1u);
  let tile = q / 4u;
  return ((tile / tilesPerRow) * 4u + q % 4u) * tilesPerRow + tile % tilesPerRow;
}

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= BLOCKS) {
    return;
  }
  let at = b * (MAX_ROWS + 1u);
  var n = 0u;
  for (var r = 0u; r < step.count; r++) {
    var nonzero = b == 0u;
    // The last block may hold fewer than BLOCK pixels: its extra loads re-read its last ones.
    if (VEC) {
      for (var t = 0u; t < BLOCK / 16u; t++) {
        let v = x[(step.start + r) * K16 + min(b * (BLOCK / 16u) + t, K16 - 1u)];
        nonzero = nonzero || any(v != vec4u(0u));
      }
    } else {
      for (var t = 0u; t < BLOCK / 4u; t++) {
        let q = min(b * (BLOCK / 4u) + t, K4 - 1u);
        let w = (step.start + r) * K4 + select(q, tileWord(q), TILED);
        nonzero = nonzero || x[w / 4u][w % 4u] != 0u;
      }
    }
    // Written whatever the test; only kept (n advances) for a row with a pixel.
    list[at + 1u + n] = r;
    n += select(0u, 1u, nonzero);
  }
  list[at] = n;
}
