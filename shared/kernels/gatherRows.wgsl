// gatherRows: out[p, w] = src[order[p], w]   for p < ROWS, w < WORDS
//   order: [ROWS] a permutation of 0..ROWS-1, src and out: [ROWS, WORDS] (u32 words)
// Puts the training images (196 words of packed bytes each) or labels (1 word)
// in an epoch's shuffled order once, so that every step's kernels read a
// contiguous batch at `start` as without shuffling.
// One invocation per word; i = (group.y · groups.x + group.x) · 64 + local.

const ROWS = 1u;
const WORDS = 196u;

@group(0) @binding(0) var<storage, read> order: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= ROWS * WORDS) {
    return;
  }
  let p = i / WORDS;
  let w = i % WORDS;
  out[i] = src[order[p] * WORDS + w];
}
