/**
 * The optimisers: the CPU reference in `shared/model/optim.ts` against values
 * worked out by hand, and the GPU kernels `sgdStep`, `momentumStep`,
 * `adamStep` against the CPU reference over several steps (Adam's bias
 * correction included), on the real adapter with an awkward element count.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { type BindingKind, kernelPipeline } from "../fast/kit.ts";
import { openGpu, readBuffer, workgroupGrid } from "../shared/gpu/device.ts";
import {
  adamStep,
  adamwStep,
  momentumStep,
  newOptimizerState,
  OPTIMIZER_DEFAULTS,
  OPTIMIZER_NAMES,
  type OptimizerName,
  type OptimizerOptions,
  OPTIMIZERS,
  optimizerStep,
  optimizerUniform,
  sgdStep,
} from "../shared/model/optim.ts";
import { mulberry32 } from "../shared/model/rng.ts";

function close(actual: number, expected: number, tol: number, what: string) {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: got ${actual}, expected ${expected} (tolerance ${tol})`,
  );
}

Deno.test("sgdStep: θ − lr·g", () => {
  const p = new Float64Array([1, -2]);
  sgdStep(p, [0.5, -1], 0.1);
  close(p[0], 0.95, 1e-15, "p[0]");
  close(p[1], -1.9, 1e-15, "p[1]");
});

Deno.test("momentumStep: v = μv + g, θ −= lr·v, two steps by hand", () => {
  const p = new Float64Array([1]);
  const v = new Float64Array(1);
  momentumStep(p, [1], v, 0.1, 0.9);
  close(v[0], 1, 1e-15, "v after step 1 (= g, as PyTorch's clone)");
  close(p[0], 0.9, 1e-15, "θ after step 1");
  momentumStep(p, [1], v, 0.1, 0.9);
  close(v[0], 1.9, 1e-15, "v after step 2");
  close(p[0], 0.71, 1e-15, "θ after step 2");
});

Deno.test("adamStep: two steps by hand, with bias correction", () => {
  const p = new Float64Array([1]);
  const state = { m: new Float64Array(1), v: new Float64Array(1) };
  // Step 1, g = 1: m = 0.1, v = 0.001, m̂ = 1, v̂ = 1 → θ = 1 − 0.1·1/(1 + 1e-8).
  adamStep(p, [1], state, 1, 0.1, 0.9, 0.999, 1e-8);
  close(state.m[0], 0.1, 1e-15, "m after step 1");
  close(state.v[0], 0.001, 1e-15, "v after step 1");
  close(p[0], 1 - 0.1 / (1 + 1e-8), 1e-15, "θ after step 1");
  // Step 2, g = 2: m = 0.09 + 0.2 = 0.29, v = 0.000999 + 0.004 = 0.004999,
  // 1 − β1² = 0.19, 1 − β2² = 0.001999.
  adamStep(p, [2], state, 2, 0.1, 0.9, 0.999, 1e-8);
  close(state.m[0], 0.29, 1e-15, "m after step 2");
  close(state.v[0], 0.004999, 1e-15, "v after step 2");
  const expected = 1 - 0.1 / (1 + 1e-8) -
    0.1 * (0.29 / 0.19) / (Math.sqrt(0.004999) / Math.sqrt(0.001999) + 1e-8);
  close(p[0], expected, 1e-14, "θ after step 2");
  close(p[0], 0.8034818, 1e-7, "θ after step 2 (decimal)");
});

Deno.test("adamStep: the first step moves each weight by about lr, whatever the gradient's scale", () => {
  const p = new Float64Array([0, 0, 0]);
  adamStep(
    p,
    [1e-3, -50, 7],
    { m: new Float64Array(3), v: new Float64Array(3) },
    1,
    0.01,
    0.9,
    0.999,
    1e-8,
  );
  // lr · g / (|g| + ε): ε matters only for tiny gradients.
  close(p[0], -0.01 * 1e-3 / (1e-3 + 1e-8), 1e-15, "small gradient");
  close(p[1], 0.01 * 50 / (50 + 1e-8), 1e-15, "large negative gradient");
  close(p[2], -0.01 * 7 / (7 + 1e-8), 1e-15, "gradient 7");
});

Deno.test("adamwStep: two steps by hand: θ −= lr·λ·θ, then Adam's step", () => {
  const lr = 0.1, wd = 0.5;
  const p = new Float64Array([1]);
  const state = { m: new Float64Array(1), v: new Float64Array(1) };
  // Step 1, g = 1: θ = 1 − 0.1·0.5·1 = 0.95; m = 0.1, v = 0.001, m̂ = v̂ = 1 → θ = 0.95 − 0.1/(1 + 1e-8).
  adamwStep(p, [1], state, 1, lr, 0.9, 0.999, 1e-8, wd);
  close(state.m[0], 0.1, 1e-15, "m after step 1");
  close(state.v[0], 0.001, 1e-15, "v after step 1");
  const after1 = 0.95 - 0.1 / (1 + 1e-8);
  close(p[0], after1, 1e-15, "θ after step 1");
  // Step 2, g = 2: θ·(1 − 0.05), then Adam with m = 0.29, v = 0.004999, 1 − β1² = 0.19,
  // 1 − β2² = 0.001999 (the moments do not see the decay: it is decoupled).
  adamwStep(p, [2], state, 2, lr, 0.9, 0.999, 1e-8, wd);
  close(state.m[0], 0.29, 1e-15, "m after step 2");
  close(state.v[0], 0.004999, 1e-15, "v after step 2");
  const expected = after1 * 0.95 -
    0.1 * (0.29 / 0.19) / (Math.sqrt(0.004999) / Math.sqrt(0.001999) + 1e-8);
  close(p[0], expected, 1e-14, "θ after step 2");
  close(p[0], 0.7109818, 1e-7, "θ after step 2 (decimal)");
});

Deno.test("adamwStep: with zero gradients only the decay moves θ, by (1 − lr·λ) a step (not L2 through Adam)", () => {
  // L2 regularisation inside Adam (g + λθ) would move each weight by about lr a step,
  // whatever its size; the decoupled decay shrinks it in proportion.
  const p = new Float64Array([2, -0.5, 0]);
  const state = { m: new Float64Array(3), v: new Float64Array(3) };
  for (let t = 1; t <= 3; t++) adamwStep(p, [0, 0, 0], state, t, 0.01, 0.9, 0.999, 1e-8, 0.2);
  close(p[0], 2 * 0.998 ** 3, 1e-15, "θ = 2");
  close(p[1], -0.5 * 0.998 ** 3, 1e-15, "θ = −0.5");
  assert.equal(p[2], 0, "θ = 0 stays");
});

Deno.test("adamw with λ = 0 is adam, bit for bit", () => {
  const grads = [[0.3, -2, 1e-4], [-0.1, 0.7, 5]];
  const run = (name: OptimizerName) => {
    const p = new Float64Array([0.5, -1, 2]);
    const state = newOptimizerState(name, [3]);
    const opts = { ...OPTIMIZER_DEFAULTS, optimizer: name, weightDecay: 0 };
    for (const g of grads) optimizerStep([p], [g], state, 0.01, opts);
    return [p, ...state.parts.flat()];
  };
  assert.deepEqual(run("adamw"), run("adam"));
});

Deno.test("optimizerStep: counts steps and keeps per-tensor state", () => {
  const opts: OptimizerOptions = { ...OPTIMIZER_DEFAULTS, optimizer: "adam" };
  const a = new Float64Array([1, 2]), b = new Float64Array([3]);
  const state = newOptimizerState("adam", [2, 1]);
  optimizerStep([a, b], [[1, 1], [1]], state, 0.1, opts);
  optimizerStep([a, b], [[1, 1], [1]], state, 0.1, opts);
  assert.equal(state.step, 2);
  // A constant gradient gives m̂ = v̂ = 1 at every step: each step moves θ by lr/(1 + ε).
  close(a[0], 1 - 0.2 / (1 + 1e-8), 1e-12, "a[0]");
  close(b[0], 3 - 0.2 / (1 + 1e-8), 1e-12, "b[0]");
});

Deno.test("optimizerUniform: field layout of OptimizerStep, zero where the optimiser does not read", () => {
  const adam = optimizerUniform(131, 3, 0.5, { ...OPTIMIZER_DEFAULTS, optimizer: "adam" });
  const u = new Uint32Array(adam), f = new Float32Array(adam);
  assert.equal(adam.byteLength, 48);
  assert.deepEqual([u[0], u[1]], [131, 3]);
  // lr, μ (not Adam's), β1, β2, ε, 1 − β1³, 1 − β2³
  assert.deepEqual([...f.slice(2, 9)], [
    0.5,
    0,
    Math.fround(0.9),
    Math.fround(0.999),
    Math.fround(1e-8),
    Math.fround(1 - 0.9 ** 3),
    Math.fround(1 - 0.999 ** 3),
  ]);
  const momentum = new Float32Array(
    optimizerUniform(7, 2, 0.25, { ...OPTIMIZER_DEFAULTS, optimizer: "momentum", momentum: 0.5 }),
  );
  assert.deepEqual([...momentum.slice(2, 9)], [0.25, 0.5, 0, 0, 0, 1, 1]);
  // weightDecay follows the bias corrections: AdamW's λ, zero for Adam (the same kernel).
  assert.equal(f[9], 0, "Adam's λ");
  const adamw = optimizerUniform(131, 3, 0.5, {
    ...OPTIMIZER_DEFAULTS,
    optimizer: "adamw",
    weightDecay: 0.25,
  });
  assert.deepEqual([...new Float32Array(adamw).slice(2, 10)], [...f.slice(2, 9), 0.25]);
});

/**
 * Runs `steps` steps of an optimiser kernel on the real adapter and the CPU
 * reference from the same float32 parameters and gradients; returns both.
 */
async function runOptimizerKernel(
  name: OptimizerName,
  count: number,
  steps: number,
  gradScale = 0.3,
  cpuOpts: Partial<OptimizerOptions> = {},
) {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  const { device } = gpu;
  try {
    // λ = 0.5: AdamW's decay (lr·λ = 2.5% a step) is as visible as its Adam step.
    const opts: OptimizerOptions = {
      ...OPTIMIZER_DEFAULTS,
      optimizer: name,
      momentum: 0.8,
      weightDecay: 0.5,
    };
    const lr = 0.05;
    const rand = mulberry32(99);
    const init = Float32Array.from({ length: count }, () => rand() * 2 - 1);
    const grads = Array.from(
      { length: steps },
      () => Float32Array.from({ length: count }, () => (rand() * 2 - 1) * gradScale),
    );
    const { kernel, state: parts } = OPTIMIZERS[name];
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const param = device.createBuffer({ label: "test params", size: count * 4, usage: storage });
    device.queue.writeBuffer(param, 0, init);
    const grad = device.createBuffer({ label: "test grads", size: count * 4, usage: storage });
    const state = parts.map(
      (_, i) =>
        device.createBuffer({
          label: `test optimiser state ${i}`,
          size: count * 4,
          usage: storage,
        }),
    );
    const uniform = device.createBuffer({
      label: "test optimiser uniform",
      size: 48,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const kinds: BindingKind[] = [
      "uniform",
      "write",
      "read",
      ...state.map((): BindingKind => "write"),
    ];
    const pipeline = await kernelPipeline(device, kernel, kinds);
    const bindGroup = device.createBindGroup({
      label: `test ${kernel} bind group`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [uniform, param, grad, ...state].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });
    for (let t = 1; t <= steps; t++) {
      device.queue.writeBuffer(grad, 0, grads[t - 1]);
      device.queue.writeBuffer(uniform, 0, optimizerUniform(count, t, lr, opts));
      const enc = device.createCommandEncoder({ label: `test ${kernel} step ${t}` });
      const pass = enc.beginComputePass({ label: `test ${kernel} pass` });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...workgroupGrid(count, 64));
      pass.end();
      device.queue.submit([enc.finish()]);
    }
    const gpuParams = new Float32Array(await readBuffer(device, param));
    const gpuState = await Promise.all(
      state.map(async (b) => new Float32Array(await readBuffer(device, b))),
    );

    const cpuParams = new Float64Array(init);
    const cpuState = newOptimizerState(name, [count]);
    for (let t = 1; t <= steps; t++) {
      optimizerStep([cpuParams], [grads[t - 1]], cpuState, lr, { ...opts, ...cpuOpts });
    }
    assert.deepEqual(errors, []);
    return { init, gpuParams, gpuState, cpuParams, cpuState };
  } finally {
    device.destroy();
  }
}

for (const name of OPTIMIZER_NAMES) {
  Deno.test(`${name}'s kernel: 5 steps on 131 elements equal the CPU reference`, async () => {
    const r = await runOptimizerKernel(name, 131, 5);
    let maxMove = 0;
    for (let i = 0; i < 131; i++) maxMove = Math.max(maxMove, Math.abs(r.cpuParams[i] - r.init[i]));
    assert.ok(maxMove > 0.01, `the parameters moved (by up to ${maxMove})`);
    for (let i = 0; i < 131; i++) {
      close(r.gpuParams[i], r.cpuParams[i], 1e-6 + 1e-5 * Math.abs(r.cpuParams[i]), `θ[${i}]`);
    }
    const cpuState = r.cpuState.parts.map((part) => part[0]); // the one tensor's
    assert.equal(r.gpuState.length, cpuState.length);
    r.gpuState.forEach((s, k) => {
      for (let i = 0; i < 131; i++) {
        close(s[i], cpuState[k][i], 1e-7 + 1e-5 * Math.abs(cpuState[k][i]), `state ${k}[${i}]`);
      }
    });
  });
}

Deno.test("adamStep kernel: gradients near ε (1e-8) — ε as the CPU reference has it, not 10ε", async () => {
  // With |g| ~ ε, the step lr·m̂/(sqrt(v̂) + ε) depends on ε itself: a kernel (or uniform)
  // with 10ε moves each weight about half as far, which the tolerance below tells apart.
  const eps = OPTIMIZER_DEFAULTS.eps;
  const r = await runOptimizerKernel("adam", 131, 5, 3 * eps);
  const wrong = await runOptimizerKernel("adam", 131, 5, 3 * eps, { eps: 10 * eps });
  const tol = (x: number) => 1e-6 + 1e-5 * Math.abs(x);
  let maxMove = 0, apart = 0;
  for (let i = 0; i < 131; i++) {
    maxMove = Math.max(maxMove, Math.abs(r.cpuParams[i] - r.init[i]));
    close(r.gpuParams[i], r.cpuParams[i], tol(r.cpuParams[i]), `θ[${i}]`);
    if (Math.abs(r.gpuParams[i] - wrong.cpuParams[i]) > tol(wrong.cpuParams[i])) apart++;
  }
  assert.ok(maxMove > 0.01, `the parameters moved (by up to ${maxMove})`);
  assert.ok(apart > 100, `10ε would give other weights (${apart} of 131 apart)`);
});
