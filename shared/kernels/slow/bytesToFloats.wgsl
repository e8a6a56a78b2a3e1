// bytesToFloats: x[i] = byte[i] / 255   for the batch's pixels: [B · 784] bytes → x: [B, 784] f32
// The bytes arrive packed four to a u32 (WGSL has no u8), little-endian:
// byte i is bits 8·(i mod 4) .. 8·(i mod 4) + 7 of word i / 4.
// One thread per pixel; i = gid.y · (64 · groups in x) + gid.x.

struct Shape {
  count: u32, // pixels, B · 784
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> words: array<u32>; // [ceil(count / 4)]
@group(0) @binding(2) var<storage, read_write> x: array<f32>; // [count]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.y * (groups.x * 64u) + gid.x;
  if (i >= shape.count) {
    return;
  }
  let byte = (words[i / 4u] >> (8u * (i % 4u))) & 0xffu;
  x[i] = f32(byte) / 255.0;
}
