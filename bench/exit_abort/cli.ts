/**
 * The exit-abort reproduction's `deno run` side (bench/RESULTS.md, _Exit
 * aborts_): opens a device, compiles and dispatches a few small kernels, and
 * leaves without destroying it. Usage: `deno run -A bench/exit_abort/cli.ts
 * keep|destroy exit|natural [kernels]`. It did not abort in our loops.
 *
 * @module
 */

const [mode = "keep", how = "natural", np = "4"] = Deno.args;
const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("no adapter");
const device = await adapter.requestDevice({ label: "repro device" });
const n = Number(np);
for (let p = 0; p < n; p++) {
  const code = `@group(0) @binding(0) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; var s = 0.0;
  for (var k = 0u; k < ${p + 3}u; k++) { s += f32(k) * 0.5; }
  b[i] = b[i] * 2.0 + s + ${p}.0; }`;
  const module = device.createShaderModule({ label: `repro ${p}`, code });
  const pipeline = device.createComputePipeline({
    label: `repro ${p}`,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const buf = device.createBuffer({
    label: "repro buf",
    size: 4096 * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const st = device.createBuffer({
    label: "repro st",
    size: 4096 * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const bg = device.createBindGroup({
    label: "repro bg",
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: buf } }],
  });
  const enc = device.createCommandEncoder({ label: "repro enc" });
  const pass = enc.beginComputePass({ label: "repro pass" });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(64);
  pass.end();
  enc.copyBufferToBuffer(buf, 0, st, 0, 4096 * 4);
  device.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  st.unmap();
}
if (mode === "destroy") device.destroy();
if (how === "exit") Deno.exit(0);
