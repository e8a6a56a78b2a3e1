// nonzeroGroups: for each block b of ROWS rows of the batch, the rows in
//   `order` (positions b·ROWS .. min(b·ROWS + ROWS, count) − 1 of the batch's
//   permutation order[step.rowOrder ..], or the rows themselves when
//   step.rowOrder is NO_ORDER), the groups of 16 pixels (k in 16g .. 16g + 15)
//   where one of those rows has a pixel that is not zero, then the rows:
//   list[b] = count n, then those g in increasing order (K/16 slots), then the
//             block's ROWS rows (batch rows; past the batch's end its last row
//             again).
//   x: packed image bytes (16 pixels per vec4u), list: [blocks][1 + K/16 + ROWS]
// The first layer's texture kernel (matmulBiasReluTexture.wgsl,
// SKIP_ZERO_GROUPS) computes a block of ROWS rows 16 values of k per trip:
// a trip where every pixel of every row is zero adds nothing, and with the
// lists it is not made. Rows are independent in a forward pass, so a block
// need not be ROWS consecutive rows: the engine orders each batch's rows by
// where their digit starts and ends (its first and last group with ink), so
// that the rows of a block share their blank groups (28% of the trips left
// out on the sample, against 13% for consecutive rows: the images' borders).
// Skipped terms are exact zeros and the groups keep their order, so each
// row's sums are bit for bit those of the full loop. One invocation per block
// of rows. Needs K a multiple of 16.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and specialize checks first).
const K = SET_BY_HOST;
const ROWS = SET_BY_HOST;

const K16 = K / 16u; // vec4u (16 pixels) per image
const NO_ORDER = 0xffffffffu;

@group(0) @binding(0) var<uniform> step: Batch;
@group(0) @binding(1) var<storage, read> x: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> list: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b * ROWS >= step.count) {
    return;
  }
  let at = b * (1u + K16 + ROWS);
  let rows = min(ROWS, step.count - b * ROWS);
  // The block's rows, written after the groups (the forward kernel reads them there).
  for (var i = 0u; i < ROWS; i++) {
    let p = b * ROWS + min(i, rows - 1u); // position in the batch
    list[at + 1u + K16 + i] = select(order[step.rowOrder + p], p, step.rowOrder == NO_ORDER);
  }
  var n = 0u;
  for (var g = 0u; g < K16; g++) {
    var nonzero = false;
    for (var i = 0u; i < rows; i++) {
      let row = list[at + 1u + K16 + i];
      nonzero = nonzero || any(x[(step.start + row) * K16 + g] != vec4u(0u));
    }
    // Written whatever the test; only kept (n advances) for a group with a pixel.
    list[at + 1u + n] = g;
    n += select(0u, 1u, nonzero);
  }
  list[at] = n;
}
