// adamStep (Kingma & Ba, with PyTorch's bias correction; AdamW's decoupled weight decay λ,
// Loshchilov & Hutter, as torch.optim.AdamW), step t = 1, 2, …, for i < count:
//   θ[i] ← θ[i] − lr · λ · θ[i]             (λ = 0 for Adam: θ − 0 = θ, bit for bit, θ finite)
//   m[i] ← β1 · m[i] + (1 − β1) · g[i]
//   v[i] ← β2 · v[i] + (1 − β2) · g[i]²
//   θ[i] ← θ[i] − (lr / (1 − β1^t)) · m[i] / (sqrt(v[i]) / sqrt(1 − β2^t) + ε)
//   param, grad, m, v: [count]; m and v start at zero.
// 1 − β^t comes in the uniform (correction1/2), computed on the host in float64: f32 pow(0.999, t)
// is off by ~6e-8, a 6e-5 relative error in 1 − β2^t at t = 1.

// hp: struct OptimizerStep (optimizerStep.wgsl, which kernelSource prepends; filled by
// optimizerUniform, shared/model/optim.ts). This kernel reads count, lr, beta1, beta2, eps,
// correction1, correction2 and weightDecay.

@group(0) @binding(0) var<uniform> hp: OptimizerStep;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> grad: array<f32>; // [count]
@group(0) @binding(3) var<storage, read_write> m: array<f32>; // [count] first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>; // [count] second moment

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
  let theta = param[i];
  let decayed = theta - hp.lr * hp.weightDecay * theta;
  let g = grad[i];
  let mi = hp.beta1 * m[i] + (1.0 - hp.beta1) * g;
  let vi = hp.beta2 * v[i] + (1.0 - hp.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = decayed - (hp.lr / hp.correction1) * mi / (sqrt(vi) / sqrt(hp.correction2) + hp.eps);
}
