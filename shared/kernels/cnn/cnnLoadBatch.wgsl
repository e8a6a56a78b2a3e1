// cnnLoadBatch: x[i, p] = images[order[start + i]][p] / 255   for i < count, p < PIXELS
//   images: the whole dataset resident on the GPU as packed bytes, 4 pixels per u32 (little-endian),
//           image n at byte n·PIXELS; order: [n] image ids of the epoch (a shuffle, or 0..n−1);
//   x: [count, PIXELS] floats (= [count, H, W, 1] NHWC).
// The batch is {start, count} at a dynamic offset, so one bind group serves every batch.
// One thread per pixel; i = (group.y · groups.x + group.x) · 64 + local.

override PIXELS: u32;

struct Batch {
  start: u32,
  count: u32,
}

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> images: array<u32>; // packed bytes
@group(0) @binding(2) var<storage, read> order: array<u32>; // [n]
@group(0) @binding(3) var<storage, read_write> x: array<f32>; // [count, PIXELS]

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
  let byte = order[batch.start + image] * PIXELS + i % PIXELS;
  let word = images[byte >> 2u];
  x[i] = f32((word >> ((byte & 3u) * 8u)) & 0xffu) / 255.0;
}
