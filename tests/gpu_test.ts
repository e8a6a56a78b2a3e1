/**
 * WebGPU smoke test: the adapter exists (a missing one FAILS here, it is
 * never skipped), a kernel from shared/kernels/ runs and matches the CPU,
 * and GPU validation errors reach `onError` naming the object's label.
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { UserError } from "../shared/io/errors.ts";
import { bufferFrom, gpuChecked, openGpu, readBuffer } from "../shared/gpu/device.ts";
import { relu } from "../shared/model/mlp.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import { kernelSource } from "../shared/kernels/sources.ts";

Deno.test("an adapter is found and relu.wgsl matches the CPU", async () => {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  try {
    assert.ok(gpu.description.length > 0);
    const { device } = gpu;
    const n = 1000; // not a multiple of the workgroup size (64)
    const rand = mulberry32(11);
    const z = new Float32Array(n).map(() => rand() * 2 - 1);
    const module = device.createShaderModule({ label: "relu test", code: kernelSource("relu") });
    const pipeline = device.createComputePipeline({
      label: "relu test pipeline",
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const shape = bufferFrom(
      device,
      "relu test shape",
      new Uint32Array([n, 0, 0, 0]),
      GPUBufferUsage.UNIFORM,
    );
    const zBuf = bufferFrom(device, "relu test z", z, GPUBufferUsage.STORAGE);
    const aBuf = device.createBuffer({
      label: "relu test a",
      size: n * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const bind = device.createBindGroup({
      label: "relu test bindings",
      layout: pipeline.getBindGroupLayout(0),
      entries: [shape, zBuf, aBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = device.createCommandEncoder({ label: "relu test encoder" });
    const pass = enc.beginComputePass({ label: "relu test pass" });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(Math.ceil(n / 64));
    pass.end();
    device.queue.submit([enc.finish()]);
    const got = new Float32Array(await readBuffer(device, aBuf));
    assert.deepEqual(got, Float32Array.from(relu(z)));

    // An uncaptured error reaches onError as one line naming the object's label.
    const gone = device.createBuffer({
      label: "destroyed on purpose",
      size: 16,
      usage: GPUBufferUsage.COPY_SRC,
    });
    gone.destroy();
    const enc2 = device.createCommandEncoder({ label: "copy from a destroyed buffer" });
    enc2.copyBufferToBuffer(gone, 0, aBuf, 0, 16);
    device.queue.submit([enc2.finish()]);
    await readBuffer(device, aBuf, 4); // a real round trip, so the error event has fired
    for (let i = 0; i < 20 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(errors.length, 1, `one error reported, got ${JSON.stringify(errors)}`);
    assert.match(errors[0], /^GPU error: .*'destroyed on purpose'/);
    assert.ok(!errors[0].includes("\n"));

    // gpuChecked turns an error inside it into a UserError saying what was being done.
    await assert.rejects(
      gpuChecked(device, "making the 'bad bindings' bind group", () =>
        device.createBindGroup({
          label: "bad bindings",
          layout: pipeline.getBindGroupLayout(0),
          entries: [{ binding: 0, resource: { buffer: shape } }],
        })),
      (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.match(
          e.message,
          /^GPU error while making the 'bad bindings' bind group: .*bindings/,
        );
        return true;
      },
    );
    assert.equal(errors.length, 1, "a scoped error is not also uncaptured");
  } finally {
    gpu.device.destroy();
  }
});
