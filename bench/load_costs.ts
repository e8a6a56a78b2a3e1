/**
 * What a load (or a store) costs a kernel on this adapter, against a
 * multiply-add: the measurement behind the CNN's texture kernels (issue 26;
 * fast/DESIGN.md, "The CNN", _Its texture variant_). Each probe is one kernel
 * of 65,536 invocations looping 256 times over 4 loads of one kind into vec4
 * sums (or 4 stores, or 16 vec4 multiply-adds, the 4 sums in turn), dispatched 5 times in
 * one submit; the least of 3 such timings, less that of a probe with an empty
 * loop (the set-up and the dispatch), divided by the operations, is the cost
 * of one operation of one invocation, all cores together.
 *
 * On llvmpipe (a CPU adapter, 8 invocations per SIMD instruction; 2026-12-06,
 * 2 cores) every kind of load with an index the compiler cannot prove the same
 * for all invocations cost about the same, 0.8–1.3 ns: a texel fetch, a
 * storage, uniform, workgroup or private-array load; one address for every
 * invocation was no cheaper. A vec4 multiply-add cost 0.054 ns, a 15th to a
 * 24th of a load: a kernel there is as fast as it makes each loaded value
 * serve many multiply-adds. A store (22:00 UTC the same day), each
 * workgroup's in 4 KB in a row: 2.2–2.5 ns a texel of an rgba32float storage
 * texture, 1.0–1.1 ns a vec4 and 0.6–0.7 ns an f32 of a storage buffer (with
 * the 4 stores of a trip 256 KB apart instead, 12.9, 6.1 and 2.7 ns: where
 * stores land matters as much as their kind). Yet conv1's im2col and pool1's
 * backward, which store textures, ran no faster storing the same values in
 * buffers (0.69 and 0.78 ms a step of 32, as before): not their stores but
 * their invocations' other work bounds them. Not a test (it asserts
 * nothing): a measurement to repeat on another adapter.
 *
 * Run: deno run --allow-read --allow-env bench/load_costs.ts
 *
 * @module
 */

import { openGpu } from "../shared/gpu/device.ts";

const INVOCATIONS = 65536, TRIPS = 256, REPEATS = 5;

/** Each probe: the loop body (4 loads or 16 multiply-adds into a0 … a3) and its operation count. */
const PROBES: Record<string, { body: string; ops: number }> = {
  // The set-up and the dispatch alone: subtracted from every other probe.
  "nothing (the baseline)": { body: "", ops: 0 },
  "texel fetch, a texel per invocation": {
    body: [0, 1, 2, 3].map((j) =>
      `a${j} += textureLoad(t, vec2u((i + ${j}u) & 63u, g & 1023u), 0);`
    )
      .join(" "),
    ops: 4,
  },
  "texel fetch, one texel for all": {
    body: [0, 1, 2, 3].map((j) => `a${j} += textureLoad(t, vec2u((i + ${j}u) & 63u, 5u), 0);`)
      .join(" "),
    ops: 4,
  },
  "storage vec4, one per invocation": {
    body: [0, 1, 2, 3].map((j) => `a${j} += s[(i * 64u + g + ${j}u) & 65535u];`).join(" "),
    ops: 4,
  },
  "storage vec4, one for all": {
    body: [0, 1, 2, 3].map((j) => `a${j} += s[i + ${j}u];`).join(" "),
    ops: 4,
  },
  "uniform vec4, one per invocation": {
    body: [0, 1, 2, 3].map((j) => `a${j} += u[(i * 8u + g + ${j}u) & 4095u];`).join(" "),
    ops: 4,
  },
  "workgroup vec4, one per invocation": {
    body: [0, 1, 2, 3].map((j) => `a${j} += sh[(i * 8u + g + ${j}u) & 1023u];`).join(" "),
    ops: 4,
  },
  "private array vec4, one per invocation": {
    body: [0, 1, 2, 3].map((j) => `a${j} += pa[(i + g + ${j}u) & 63u];`).join(" "),
    ops: 4,
  },
  // Stores: each of the 4 to a texel (element) of its own in [4096][64]: workgroup w writes rows
  // 4w .. 4w + 3 (the 4 stores; 64 texels a row, one an invocation), 4 rows further every trip.
  "texel store, one per invocation": {
    body: [0, 1, 2, 3].map((j) =>
      `textureStore(ts, vec2u(g & 63u, (((g >> 6u) + i) * 4u + ${j}u) & 4095u), a${j});`
    ).join(" "),
    ops: 4,
  },
  "storage vec4 store, one per invocation": {
    body: [0, 1, 2, 3].map((j) =>
      `sv[((((g >> 6u) + i) * 4u + ${j}u) & 4095u) * 64u + (g & 63u)] = a${j};`
    ).join(" "),
    ops: 4,
  },
  "storage f32 store, one per invocation": {
    body: [0, 1, 2, 3].map((j) =>
      `sf[((((g >> 6u) + i) * 4u + ${j}u) & 4095u) * 64u + (g & 63u)] = a${j}.x;`
    ).join(" "),
    ops: 4,
  },
  "vec4 multiply-add (4 interleaved sums)": {
    body: Array.from({ length: 16 }, (_, j) => `a${j % 4} = a${j % 4} * w + a${(j + 1) % 4};`)
      .join(" "),
    ops: 16,
  },
};

/** One probe's kernel: o[g] = the sums of TRIPS trips of `body`. */
function probeSource(body: string): string {
  return /* wgsl */ `
// A probe of bench/load_costs.ts: ${TRIPS} trips of one kind of operation into vec4 sums.
@group(0) @binding(0) var t: texture_2d<f32>; // [1024][64]
@group(0) @binding(1) var<storage, read> s: array<vec4f>; // [65536]
@group(0) @binding(2) var<storage, read_write> o: array<vec4f>; // [${INVOCATIONS}]
@group(0) @binding(3) var<uniform> u: array<vec4f, 4096>;
@group(0) @binding(4) var ts: texture_storage_2d<rgba32float, write>; // [4096][64]
@group(0) @binding(5) var<storage, read_write> sv: array<vec4f>; // [4096·64]
@group(0) @binding(6) var<storage, read_write> sf: array<f32>; // [4096·64]
var<workgroup> sh: array<vec4f, 1024>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  var a0 = vec4f(1.0 + f32(g) * 1e-6); // the sums stay normal numbers (no denormals)
  var a1 = a0;
  var a2 = a0;
  var a3 = a0;
  let w = vec4f(0.5, 0.25, 0.125, 0.0625 + f32(g & 7u) * 1e-3);
  var pa: array<vec4f, 64>;
  for (var j = 0u; j < 64u; j++) {
    pa[j] = vec4f(f32(j + g));
    sh[(j * 16u + g) & 1023u] = vec4f(f32(j));
  }
  workgroupBarrier();
  for (var i = 0u; i < ${TRIPS}u; i++) {
    ${body}
  }
  o[g] = a0 + a1 + a2 + a3;
}
`;
}

const { device, description } = await openGpu();
console.log(`adapter: ${description}`);
const texture = device.createTexture({
  label: "probe texture [1024][64]",
  size: { width: 64, height: 1024 },
  format: "rgba32float",
  usage: GPUTextureUsage.TEXTURE_BINDING,
});
const storage = device.createBuffer({
  label: "probe storage and uniform [65536] vec4",
  size: 65536 * 16,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM,
});
const storeTexture = device.createTexture({
  label: "probe store texture [4096][64]",
  size: { width: 64, height: 4096 },
  format: "rgba32float",
  usage: GPUTextureUsage.STORAGE_BINDING,
});
const storeVec4s = device.createBuffer({
  label: "probe store vec4s [4096·64]",
  size: 4096 * 64 * 16,
  usage: GPUBufferUsage.STORAGE,
});
const storeFloats = device.createBuffer({
  label: "probe store floats [4096·64]",
  size: 4096 * 64 * 4,
  usage: GPUBufferUsage.STORAGE,
});
const out = device.createBuffer({
  label: "probe sums",
  size: INVOCATIONS * 16,
  usage: GPUBufferUsage.STORAGE,
});
const layout = device.createBindGroupLayout({
  label: "probe bind group layout",
  entries: [
    {
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      texture: { sampleType: "unfilterable-float" },
    },
    { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
    { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
    { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    {
      binding: 4,
      visibility: GPUShaderStage.COMPUTE,
      storageTexture: { access: "write-only", format: "rgba32float" },
    },
    { binding: 5, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
    { binding: 6, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
  ],
});
const bindGroup = device.createBindGroup({
  label: "probe bind group",
  layout,
  entries: [
    { binding: 0, resource: texture.createView({ label: "probe texture view" }) },
    { binding: 1, resource: { buffer: storage } },
    { binding: 2, resource: { buffer: out } },
    { binding: 3, resource: { buffer: storage, size: 65536 } },
    { binding: 4, resource: storeTexture.createView({ label: "probe store texture view" }) },
    { binding: 5, resource: { buffer: storeVec4s } },
    { binding: 6, resource: { buffer: storeFloats } },
  ],
});
const pipelineLayout = device.createPipelineLayout({
  label: "probe pipeline layout",
  bindGroupLayouts: [layout],
});

/** Milliseconds of `repeats` dispatches of `pipeline` in one submit, to the end of the GPU work. */
async function timed(pipeline: GPUComputePipeline, repeats: number): Promise<number> {
  const t0 = performance.now();
  const encoder = device.createCommandEncoder({ label: "probe encoder" });
  const pass = encoder.beginComputePass({ label: "probe pass" });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  for (let r = 0; r < repeats; r++) pass.dispatchWorkgroups(INVOCATIONS / 64);
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

let baseline = 0; // ms of a dispatch of the empty probe
for (const [name, { body, ops }] of Object.entries(PROBES)) {
  const module = device.createShaderModule({ label: `probe: ${name}`, code: probeSource(body) });
  const pipeline = await device.createComputePipelineAsync({
    label: `probe pipeline: ${name}`,
    layout: pipelineLayout,
    compute: { module, entryPoint: "main" },
  });
  await timed(pipeline, 1); // compiles on llvmpipe
  const ms = Math.min(
    await timed(pipeline, REPEATS),
    await timed(pipeline, REPEATS),
    await timed(pipeline, REPEATS),
  ) / REPEATS;
  if (ops === 0) {
    baseline = ms;
    console.log(`${name.padEnd(40)} ${ms.toFixed(3)} ms a dispatch`);
    continue;
  }
  const perOp = (ms - baseline) * 1e6 / (INVOCATIONS * TRIPS * ops);
  console.log(`${name.padEnd(40)} ${perOp.toFixed(3)} ns per operation per invocation`);
}
