// cnnLoadBatch: x[i, p] = images[start + i][p] / 255   for i < count, p < PIXELS
//   images: the dataset resident on the GPU as packed bytes, 4 pixels per u32 (little-endian),
//           image n at word n·WORDS (WORDS = ceil(PIXELS / 4): each image starts on a word, so
//           gatherRows can put the images in an epoch's order); x: [count, PIXELS] floats
//           (= [count, H, W, 1] NHWC).
// The batch is {start, count} at a dynamic offset, so one bind group serves every batch.
// One thread per pixel; i = (group.y · groups.x + group.x) · 64 + local.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const PIXELS = SET_BY_HOST;
const WORDS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> images: array<u32>; // [n, WORDS] packed bytes
@group(0) @binding(2) var<storage, read_write> x: array<f32>; // [count, PIXELS]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= batch.count * PIXELS) {
    return;
  }
  let image = i / PIXELS;
  let byte = (batch.start + image) * WORDS * 4u + i % PIXELS;
  let word = images[byte >> 2u];
  x[i] = f32((word >> ((byte & 3u) * 8u)) & 0xffu) / 255.0;
}
