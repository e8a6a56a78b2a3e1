/**
 * The fixed costs the slow trainer pays around its kernels, each timed alone:
 * a submit-and-wait round trip, a readback, making a shader module and
 * pipeline, a buffer allocation, a bind group, an upload of one batch.
 *
 * On llvmpipe, Mesa keeps compiled shaders in an on-disk cache, so compiling
 * WGSL it has seen before (the slow trainer's case: the same kernels again and
 * again) is cheap; `MESA_SHADER_CACHE_DISABLE=true` shows the cold cost (the
 * "new module + pipeline + first dispatch" case went from ~12 to ~24 ms).
 *
 * Run: deno bench --allow-read --allow-env bench/overheads_bench.ts
 *
 * @module
 */

import { openGpu, readBuffer } from "../shared/gpu/device.ts";
import { kernelSource } from "../shared/kernels/sources.ts";

const { device, description } = await openGpu();
console.log(`adapter: ${description}`);

const BATCH = 500, PIXELS = 784;

/** y[i] = x[i] + 1: a kernel that does next to nothing, for a dispatch's floor cost. */
const TINY_WGSL = /* wgsl */ `
// y[i] = x[i] + 1 for i in [0, arrayLength(y)); x, y: [n].
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < arrayLength(&y)) { y[gid.x] = x[gid.x] + 1.0; }
}
`;

const matmulSource = kernelSource("matmul");
let compiled = 0;

const small = device.createBuffer({
  label: "small result (10 floats)",
  size: 40,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
});
const batchFloats = new Float32Array(BATCH * PIXELS);
const batchBuffer = device.createBuffer({
  label: "batch input [500, 784]",
  size: batchFloats.byteLength,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
});
const tinyModule = device.createShaderModule({ label: "tiny shader", code: TINY_WGSL });
const tinyPipeline = device.createComputePipeline({
  label: "tiny pipeline",
  layout: "auto",
  compute: { module: tinyModule, entryPoint: "main" },
});
const tinyOut = device.createBuffer({
  label: "tiny output",
  size: 256,
  usage: GPUBufferUsage.STORAGE,
});
const tinyBindGroup = device.createBindGroup({
  label: "tiny bind group",
  layout: tinyPipeline.getBindGroupLayout(0),
  entries: [
    { binding: 0, resource: { buffer: small } },
    { binding: 1, resource: { buffer: tinyOut, size: 40 } },
  ],
});
const matmulPipeline = device.createComputePipeline({
  label: "matmul pipeline",
  layout: "auto",
  compute: {
    module: device.createShaderModule({ label: "matmul shader", code: matmulSource }),
    entryPoint: "main",
  },
});
const shapeBuffer = device.createBuffer({
  label: "matmul shape",
  size: 16,
  usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
});

Deno.bench({
  name: "submit (empty) + onSubmittedWorkDone",
  group: "round trip",
  baseline: true,
  async fn() {
    device.queue.submit([device.createCommandEncoder({ label: "empty encoder" }).finish()]);
    await device.queue.onSubmittedWorkDone();
  },
});

Deno.bench({
  name: "readback of 40 bytes (copy + mapAsync)",
  group: "round trip",
  async fn() {
    await readBuffer(device, small);
  },
});

Deno.bench({
  name: "dispatch of a tiny kernel + wait",
  group: "round trip",
  async fn() {
    const enc = device.createCommandEncoder({ label: "tiny encoder" });
    const pass = enc.beginComputePass({ label: "tiny pass" });
    pass.setPipeline(tinyPipeline);
    pass.setBindGroup(0, tinyBindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  },
});

Deno.bench({
  name: "upload one batch (500×784 f32, 1.5 MiB) + wait",
  group: "round trip",
  async fn() {
    device.queue.writeBuffer(batchBuffer, 0, batchFloats);
    await device.queue.onSubmittedWorkDone();
  },
});

Deno.bench({
  name: "shader module + compute pipeline (matmul.wgsl)",
  group: "objects",
  fn() {
    // A different comment each time, so no cache can hand back an old module.
    const code = `${matmulSource}\n// ${compiled++}\n`;
    const module = device.createShaderModule({ label: "matmul shader (bench)", code });
    device.createComputePipeline({
      label: "matmul pipeline (bench)",
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
  },
});

Deno.bench({
  name: "createComputePipelineAsync (matmul.wgsl)",
  group: "objects",
  async fn() {
    const code = `${matmulSource}\n// ${compiled++}\n`;
    const module = device.createShaderModule({ label: "matmul shader (bench)", code });
    await device.createComputePipelineAsync({
      label: "matmul pipeline (bench, async)",
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
  },
});

Deno.bench({
  name: "new module + pipeline + its first dispatch + wait (tiny kernel)",
  group: "round trip",
  async fn() {
    // Drivers may compile lazily, at the first dispatch: this pays that too.
    const code = `${TINY_WGSL}\n// ${compiled++}\n`;
    const module = device.createShaderModule({ label: "tiny shader (bench)", code });
    const pipeline = device.createComputePipeline({
      label: "tiny pipeline (bench)",
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const bindGroup = device.createBindGroup({
      label: "tiny bind group (bench)",
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: small } },
        { binding: 1, resource: { buffer: tinyOut, size: 40 } },
      ],
    });
    const enc = device.createCommandEncoder({ label: "tiny encoder (bench)" });
    const pass = enc.beginComputePass({ label: "tiny pass (bench)" });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  },
});

Deno.bench({
  name: "buffer create + destroy (1.5 MiB storage)",
  group: "objects",
  baseline: true,
  fn() {
    device.createBuffer({
      label: "bench buffer",
      size: batchFloats.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    }).destroy();
  },
});

Deno.bench({
  name: "bind group (4 entries, matmul layout)",
  group: "objects",
  fn() {
    device.createBindGroup({
      label: "matmul bind group (bench)",
      layout: matmulPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: shapeBuffer } },
        { binding: 1, resource: { buffer: batchBuffer } },
        { binding: 2, resource: { buffer: batchBuffer } },
        { binding: 3, resource: { buffer: tinyOut } },
      ],
    });
  },
});
