/**
 * Stand-alone reproduction of the abort at exit (bench/RESULTS.md, _Exit
 * aborts_): each `*_test.ts` file here opens a WebGPU device at load time and
 * runs a few small compute dispatches. Now and then a `deno test` process on
 * these files aborts after its summary ("corrupted size vs. prev_size in
 * fastbins", "double free or corruption", or a segmentation fault): a thread
 * of Deno's test runner exits while the main thread runs libEGL's exit
 * handler. More often with several files in one process; one file per
 * process and destroyed devices make it rarer, not impossible. `loop.sh`
 * counts. Nothing of the project is imported.
 *
 * @module
 */

/**
 * Registers `tests` tests named after `name`, each compiling a small compute
 * kernel and dispatching it on the file's one device. With `REPRO_DESTROY=1`
 * the device is destroyed after the file's last test; with `REPRO_SKIP_EXIT=1`
 * the process skips the C exit handlers (as tests/fixtures.ts does).
 */
export async function deviceTests(name: string, tests: number): Promise<void> {
  if (Deno.env.get("REPRO_SKIP_EXIT") === "1") skipExitHandlers();
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice({ label: `exit repro ${name}` });
  if (Deno.env.get("REPRO_DESTROY") === "1") Deno.test.afterAll(() => device.destroy());
  const size = 1 << 20;
  for (let t = 0; t < tests; t++) {
    Deno.test(`exit repro ${name} ${t}`, async () => {
      const code = `@group(0) @binding(0) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = 0.0;
  for (var k = 0u; k < ${t + 3}u; k++) { s += sin(f32(k) * b[g.x]); }
  b[g.x] = b[g.x] * 2.0 + s + ${t}.0;
}`;
      const module = device.createShaderModule({ label: `exit repro ${name} ${t}`, code });
      const pipeline = device.createComputePipeline({
        label: `exit repro ${name} ${t}`,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      const buf = device.createBuffer({
        label: `exit repro ${name} data`,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
      });
      const staging = device.createBuffer({
        label: `exit repro ${name} readback`,
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const group = device.createBindGroup({
        label: `exit repro ${name} bind group`,
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer: buf } }],
      });
      const enc = device.createCommandEncoder({ label: `exit repro ${name} encoder` });
      const pass = enc.beginComputePass({ label: `exit repro ${name} pass` });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(size / 4 / 64);
      pass.end();
      enc.copyBufferToBuffer(buf, 0, staging, 0, size);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      staging.unmap();
    });
  }
}

/** Registers glibc's `_exit` with `on_exit`: `exit()` then ends the process before `_dl_fini`. */
function skipExitHandlers(): void {
  const libc = Deno.dlopen("libc.so.6", {
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
    on_exit: { parameters: ["pointer", "pointer"], result: "i32" },
  });
  const exit = libc.symbols.dlsym(null, new TextEncoder().encode("_exit\0"));
  if (!exit || libc.symbols.on_exit(exit, null) !== 0) throw new Error("on_exit(_exit) failed");
}
