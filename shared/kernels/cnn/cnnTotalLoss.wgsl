// cnnTotalLoss: total[0] = Σ_{i < COUNT} losses[i]     (the epoch's summed −log p_y; one readback)
//   losses: [COUNT], total: [1]
// One workgroup: each of 256 threads sums a strided share, then a tree reduction in workgroup
// memory. The order of additions is fixed, so the result is the same every run.

// Set by the host with specialize() (shared/kernels/sources.ts): SET_BY_HOST names
// nothing, so a constant the host forgets fails to compile (and the host checks first).
const COUNT = SET_BY_HOST;

@group(0) @binding(0) var<storage, read> losses: array<f32>; // [COUNT]
@group(0) @binding(1) var<storage, read_write> total: array<f32>; // [1]

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) local: u32) {
  var sum = 0.0;
  for (var i = local; i < COUNT; i += 256u) {
    sum += losses[i];
  }
  partial[local] = sum;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (local < stride) {
      partial[local] += partial[local + stride];
    }
    workgroupBarrier();
  }
  if (local == 0u) {
    total[0] = partial[0];
  }
}
