// cnnToTexture: tex[y, x] = src[y · WIDTH + x]   for y < rows, x < WIDTH (texels, 4 floats each)
//   src: [rows, WIDTH] vec4 (a storage buffer, or a layer's block of the parameters),
//   tex: rgba32float storage texture, WIDTH texels wide, at least `rows` high;
//   rows = count · ROWS_PER_IMAGE (PER_IMAGE) or ROWS (a weight matrix: the same for every batch).
// A copy, so that the texture kernels (cnnConvTexture, cnnConvWeightGradTexture) read their
// operand with textureLoad: on llvmpipe a texel fetch costs several times less than a
// storage-buffer load (fast/DESIGN.md, "Why the texture kernels are unrolled"). A dispatch rather
// than copyBufferToTexture, which needs rows of a multiple of 256 bytes (a1's are 192).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const WIDTH = SET_BY_HOST;
const ROWS = SET_BY_HOST;
const ROWS_PER_IMAGE = SET_BY_HOST;
const PER_IMAGE = SET_BY_HOST; // 1: rows = count · ROWS_PER_IMAGE; 0: rows = ROWS

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> src: array<vec4f>; // [rows, WIDTH]
@group(0) @binding(2) var tex: texture_storage_2d<rgba32float, write>; // [rows][WIDTH]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let rows = select(ROWS, batch.count * ROWS_PER_IMAGE, PER_IMAGE != 0u);
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= rows * WIDTH) {
    return;
  }
  textureStore(tex, vec2u(i % WIDTH, i / WIDTH), src[i]);
}
