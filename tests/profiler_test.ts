/**
 * Tests of `shared/gpu/profiler.ts` on the real adapter (llvmpipe here), with a
 * small kernel written below whose result and operation count are known.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { type Gpu, openGpu } from "../shared/gpu/device.ts";
import { formatProfile, GpuProfiler, type ProfileReport } from "../shared/gpu/profiler.ts";

/** y[i] = Σ_{r<R} x[i]·r for i < n: 2·R flops per element. */
const REPEAT_WGSL = /* wgsl */ `
// y[i] = sum over r in [0, R) of x[i] * r, for i in [0, n); x, y: [n].
struct Params { n: u32, reps: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= params.n) { return; }
  var acc = 0.0;
  for (var r = 0u; r < params.reps; r++) { acc += x[i] * f32(r); }
  y[i] = acc;
}
`;

interface RepeatKernel {
  /** Encodes and submits `passes` passes, each profiled under `name`. */
  run(prof: GpuProfiler, name: string, passes: number): void;
  /** The output, read back. */
  output(): Promise<Float32Array>;
  flopsPerPass: number;
  expected: Float32Array;
}

function repeatKernel(gpu: Gpu, n = 4096, reps = 64): RepeatKernel {
  const { device } = gpu;
  const module = device.createShaderModule({ label: "repeat shader", code: REPEAT_WGSL });
  const pipeline = device.createComputePipeline({
    label: "repeat pipeline",
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const x = new Float32Array(n).map((_, i) => i % 7);
  const params = device.createBuffer({
    label: "repeat params",
    size: 8,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(params, 0, new Uint32Array([n, reps]));
  const xBuf = device.createBuffer({
    label: "repeat x",
    size: n * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(xBuf, 0, x);
  const yBuf = device.createBuffer({
    label: "repeat y",
    size: n * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const bindGroup = device.createBindGroup({
    label: "repeat bind group",
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: xBuf } },
      { binding: 2, resource: { buffer: yBuf } },
    ],
  });
  const sumR = reps * (reps - 1) / 2;
  return {
    flopsPerPass: 2 * n * reps,
    expected: x.map((v) => v * sumR),
    run(prof, name, passes) {
      const enc = device.createCommandEncoder({ label: `${name} encoder` });
      for (let p = 0; p < passes; p++) {
        const pass = enc.beginComputePass({
          label: `${name} pass`,
          timestampWrites: prof.passTimestamps(name, 2 * n * reps),
        });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(Math.ceil(n / 64));
        pass.end();
      }
      device.queue.submit([enc.finish()]);
    },
    async output() {
      const staging = device.createBuffer({
        label: "repeat readback",
        size: n * 4,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = device.createCommandEncoder({ label: "repeat readback encoder" });
      enc.copyBufferToBuffer(yBuf, 0, staging, 0, n * 4);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const out = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      return out;
    },
  };
}

/** Opens the real adapter; GPU errors fail the test instead of exiting. */
async function open(timestamps: boolean): Promise<{ gpu: Gpu; errors: string[] }> {
  const errors: string[] = [];
  const gpu = await openGpu({ timestamps, onError: (m) => errors.push(m) });
  return { gpu, errors };
}

function assertSharesAddUp(r: ProfileReport): void {
  const total = r.kernels.reduce((s, k) => s + k.share, 0) + r.outsideShare;
  assert.ok(Math.abs(total - 1) < 1e-9, `shares sum to ${total}`);
  const gpu = r.kernels.reduce((s, k) => s + k.ms, 0);
  assert.ok(Math.abs(gpu - r.gpuMs) < 1e-9);
  assert.ok(Math.abs(r.wallMs - r.gpuMs - r.outsideMs) < 1e-9);
}

Deno.test("profiler: timestamp queries count calls and time each kernel", async () => {
  const { gpu, errors } = await open(true);
  try {
    assert.ok(gpu.timestamps, `adapter ${gpu.description} lacks timestamp-query`);
    const prof = new GpuProfiler(gpu);
    assert.equal(prof.mode, "timestamps");
    const k = repeatKernel(gpu);
    gpu.device.pushErrorScope("validation");
    const t0 = performance.now();
    k.run(prof, "repeat a", 3);
    k.run(prof, "repeat b", 2);
    await prof.collect();
    const wall = performance.now() - t0;
    assert.equal(await gpu.device.popErrorScope(), null);
    assert.deepEqual(await k.output(), k.expected);

    const r = prof.report(wall);
    assert.equal(r.mode, "timestamps");
    assert.deepEqual(r.kernels.map((x) => x.kernel).sort(), ["repeat a", "repeat b"]);
    const a = r.kernels.find((x) => x.kernel === "repeat a")!;
    const b = r.kernels.find((x) => x.kernel === "repeat b")!;
    assert.equal(a.calls, 3);
    assert.equal(b.calls, 2);
    for (const x of [a, b]) {
      assert.ok(x.ms > 0, `${x.kernel}: ${x.ms} ms`);
      assert.ok(x.share > 0 && x.share < 1, `${x.kernel}: share ${x.share}`);
      assert.equal(x.flops, x.calls * k.flopsPerPass);
      assert.ok(x.gflops !== null && x.gflops > 0);
      assert.ok(Math.abs(x.gflops - x.flops! / (x.ms * 1e6)) < 1e-9);
    }
    // The GPU work happened inside the wall-clock window, so it cannot exceed it.
    assert.ok(r.gpuMs <= wall, `gpu ${r.gpuMs} ms > wall ${wall} ms`);
    assert.ok(r.outsideMs >= 0);
    assertSharesAddUp(r);
    assert.equal(r.dropped, 0);
    assert.equal(r.invalid, 0);
    assert.deepEqual(r.notes, []);

    // The JSON shape the --json summary carries.
    const json = JSON.parse(JSON.stringify(r));
    assert.deepEqual(Object.keys(json).sort(), [
      "dropped",
      "gpuMs",
      "invalid",
      "kernels",
      "mode",
      "notes",
      "outsideMs",
      "outsideShare",
      "wallMs",
    ]);
    assert.deepEqual(Object.keys(json.kernels[0]).sort(), [
      "calls",
      "flops",
      "gflops",
      "kernel",
      "ms",
      "share",
    ]);

    const table = formatProfile(r);
    assert.match(table, /^GPU profile \(timestamp queries\)/);
    assert.match(table, /repeat a\s+3\s/);
    assert.match(table, /repeat b\s+2\s/);
    assert.match(table, /\(outside GPU work\)/);

    // A second round reuses the query set and adds to the totals.
    k.run(prof, "repeat a", 4);
    await prof.collect();
    const r2 = prof.report(wall * 10);
    assert.equal(r2.kernels.find((x) => x.kernel === "repeat a")!.calls, 7);
    assert.ok(r2.kernels.find((x) => x.kernel === "repeat a")!.ms > a.ms);
    assertSharesAddUp(r2);

    prof.reset();
    assert.deepEqual(prof.report(1).kernels, []);
    prof.destroy();
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("profiler: passes beyond capacityPasses run untimed and are counted", async () => {
  const { gpu, errors } = await open(true);
  try {
    const prof = new GpuProfiler(gpu, { capacityPasses: 2 });
    const k = repeatKernel(gpu, 256, 4);
    k.run(prof, "repeat", 3);
    await prof.collect();
    const r = prof.report(1000);
    assert.equal(r.kernels[0].calls, 2);
    assert.equal(r.dropped, 1);
    assert.ok(r.notes.some((n) => n.includes("not timed")));
    assert.deepEqual(await k.output(), k.expected);
    // After collecting, the slots are free again.
    k.run(prof, "repeat", 2);
    await prof.collect();
    assert.equal(prof.report(1000).kernels[0].calls, 4);
    assert.throws(() => new GpuProfiler(gpu, { passesPerQuerySet: 4096 }), RangeError);
    assert.throws(() => new GpuProfiler(gpu, { capacityPasses: 0 }), RangeError);
    prof.destroy();
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("profiler: passes beyond one query set go to further sets", async () => {
  const { gpu, errors } = await open(true);
  try {
    const prof = new GpuProfiler(gpu, { passesPerQuerySet: 2 });
    const k = repeatKernel(gpu, 256, 4);
    gpu.device.pushErrorScope("validation");
    k.run(prof, "repeat", 3);
    k.run(prof, "other", 2);
    await prof.collect();
    assert.equal(await gpu.device.popErrorScope(), null);
    const r = prof.report(1000);
    assert.equal(r.kernels.find((x) => x.kernel === "repeat")!.calls, 3);
    assert.equal(r.kernels.find((x) => x.kernel === "other")!.calls, 2);
    assert.equal(r.dropped, 0);
    assert.equal(r.invalid, 0, "every pass in every set has its two timestamps");
    for (const x of r.kernels) assert.ok(x.ms > 0);
    prof.destroy();
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("profiler: without timestamp-query it times each awaited dispatch", async () => {
  const { gpu, errors } = await open(false);
  try {
    assert.equal(gpu.timestamps, false);
    const prof = new GpuProfiler(gpu);
    assert.equal(prof.mode, "wall-clock");
    const k = repeatKernel(gpu);
    const t0 = performance.now();
    for (let i = 0; i < 2; i++) {
      k.run(prof, "repeat", 1);
      await gpu.device.queue.onSubmittedWorkDone();
      prof.markDone();
    }
    k.run(prof, "other", 1);
    await prof.collect(); // waits and marks the last dispatch done
    const wall = performance.now() - t0;
    const r = prof.report(wall);
    assert.equal(r.mode, "wall-clock");
    assert.equal(r.kernels.find((x) => x.kernel === "repeat")!.calls, 2);
    assert.equal(r.kernels.find((x) => x.kernel === "other")!.calls, 1);
    for (const x of r.kernels) assert.ok(x.ms > 0 && x.gflops! > 0);
    assert.ok(r.gpuMs <= wall);
    assertSharesAddUp(r);
    assert.ok(r.notes.some((n) => n.includes("lacks timestamp-query")));
    assert.match(formatProfile(r), /wall clock per dispatch/);
    assert.deepEqual(await k.output(), k.expected);
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("profiler: disabled, it records nothing and makes no GPU object", async () => {
  const { gpu, errors } = await open(true);
  try {
    const prof = new GpuProfiler(gpu, { enabled: false });
    assert.equal(prof.enabled, false);
    assert.equal(prof.mode, "off");
    const k = repeatKernel(gpu, 256, 4);
    k.run(prof, "repeat", 2);
    prof.markDone();
    await prof.collect();
    const r = prof.report(5);
    assert.deepEqual(r.kernels, []);
    assert.equal(r.gpuMs, 0);
    assert.equal(r.outsideMs, 5);
    assert.equal(formatProfile(r), "profile: off");
    assert.deepEqual(await k.output(), k.expected);
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});
