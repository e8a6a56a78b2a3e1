// momentumStep (PyTorch's SGD with momentum μ, no dampening): for i < count
//   v[i] ← μ · v[i] + g[i]
//   θ[i] ← θ[i] − lr · v[i]
//   param, grad, velocity: [count]; velocity starts at zero (so step 1 is v = g, as PyTorch's clone).

// hp: struct OptimizerStep (optimizerStep.wgsl, which kernelSource prepends; filled by
// optimizerUniform, shared/model/optim.ts). This kernel reads count, lr and momentum.

@group(0) @binding(0) var<uniform> hp: OptimizerStep;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> grad: array<f32>; // [count]
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>; // [count]

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
  let v = hp.momentum * velocity[i] + grad[i];
  velocity[i] = v;
  param[i] -= hp.lr * v;
}
