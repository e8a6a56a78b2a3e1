// cnnToTexture: tex[y, x] = src[y · WIDTH + x]   for y < ROWS, x < WIDTH (texels, 4 floats each)
//   src: [ROWS, WIDTH] vec4 (a layer's [K + 1, N] block of the parameters: WIDTH = N/4),
//   tex: rgba32float storage texture [ROWS][WIDTH].
// A copy of the weights each step (the optimiser has just changed them), so that the texture
// kernels (cnnConvTexture, cnnConvInputGradPoolTexture, cnnConvPoolTexture) read W with textureLoad,
// 4 output channels a fetch. A dispatch rather than copyBufferToTexture, which needs rows of a
// multiple of 256 bytes (W2's are 128).

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const WIDTH = SET_BY_HOST;
const ROWS = SET_BY_HOST;

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> src: array<vec4f>; // [ROWS, WIDTH]
@group(0) @binding(2) var tex: texture_storage_2d<rgba32float, write>; // [ROWS][WIDTH]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= ROWS * WIDTH) {
    return;
  }
  textureStore(tex, vec2u(i % WIDTH, i / WIDTH), src[i]);
}
