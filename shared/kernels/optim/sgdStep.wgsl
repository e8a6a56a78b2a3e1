// sgdStep: θ[i] ← θ[i] − lr · g[i]   for i < count
//   param, grad: [count] (any parameter buffer: one tensor, or all of a model's tensors packed)
// Generic optimiser step; every optimiser kernel takes the same uniform (OptimizerStep, laid out
// by optimizerUniform in shared/model/optim.ts), so a trainer can switch kernels without new buffers.
// One thread per element; i = (group.y · groups.x + group.x) · 64 + local.

// hp: struct OptimizerStep (optimizerStep.wgsl, which kernelSource prepends; filled by
// optimizerUniform, shared/model/optim.ts). This kernel reads count and lr.

@group(0) @binding(0) var<uniform> hp: OptimizerStep;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> grad: array<f32>; // [count]

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let i = (wg.y * groups.x + wg.x) * 64u + local;
  if (i >= hp.count) {
    return;
  }
  param[i] -= hp.lr * grad[i];
}
