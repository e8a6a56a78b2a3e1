// sumLosses: total[0] = Σ_{i < n} losses[i]        losses: [n], n = batch.count
// The epoch's summed training loss, in one workgroup: each invocation sums a
// strided slice, then a tree reduction in workgroup memory (a fixed order). Runs
// once per epoch, for both models, so its single readback is the epoch's only one.

// struct Batch {start, count, lr, rowOrder}: common/batch.wgsl, which kernelSource prepends.

const WG = 256u;

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> losses: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = lid.x; i < batch.count; i += WG) {
    s += losses[i];
  }
  partial[lid.x] = s;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid.x < half) {
      partial[lid.x] += partial[lid.x + half];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    total[0] = partial[0];
  }
}
