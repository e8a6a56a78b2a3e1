// nonzeroGroups: for each block b of ROWS rows of the batch (rows b·ROWS ..
//   min(b·ROWS + ROWS, count) − 1), the groups of 16 pixels (k in 16g .. 16g + 15)
//   where one of those rows has a pixel that is not zero:
//   list[b] = count n, then those g in increasing order.
//   x: packed image bytes (16 pixels per vec4u), list: [blocks][1 + K/16]
// The first layer's texture kernel (matmulBiasReluTexture.wgsl,
// SKIP_ZERO_GROUPS) computes a block of ROWS rows 16 values of k per trip:
// a trip where every pixel of every row is zero adds nothing, and with the
// lists it is not made (on MNIST, 13% of them for blocks of 32 rows: the
// border of the images). Skipped terms are exact zeros and the groups keep
// their order, so the sums are bit for bit those of the full loop. One
// invocation per block of rows. Needs K a multiple of 16.

struct Step {
  start: u32,
  count: u32,
  lr: f32,
  _pad: u32,
}

const K = 784u;
const ROWS = 32u;

const K16 = K / 16u; // vec4u (16 pixels) per image

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> list: array<u32>;

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b * ROWS >= step.count) {
    return;
  }
  let at = b * (K16 + 1u);
  let first = step.start + b * ROWS; // the block's first image
  let rows = min(ROWS, step.count - b * ROWS);
  var n = 0u;
  for (var g = 0u; g < K16; g++) {
    var nonzero = false;
    for (var i = 0u; i < rows; i++) {
      nonzero = nonzero || any(x[(first + i) * K16 + g] != vec4u(0u));
    }
    // Written whatever the test; only kept (n advances) for a group with a pixel.
    list[at + 1u + n] = g;
    n += select(0u, 1u, nonzero);
  }
  list[at] = n;
}
