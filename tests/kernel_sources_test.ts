/** shared/kernel_sources.ts lists every kernel file of shared/kernels/, with its text. */

import assert from "node:assert/strict";
import { KERNEL_SOURCES } from "../shared/kernel_sources.ts";
import { kernelSource } from "../shared/gpu.ts";

Deno.test("every shared/kernels/*.wgsl is imported, as the file's text, and nothing else", async () => {
  const dir = new URL("../shared/kernels/", import.meta.url);
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".wgsl")) files.push(e.name.slice(0, -".wgsl".length));
  }
  assert.deepEqual(Object.keys(KERNEL_SOURCES).sort(), files.sort());
  for (const name of files) {
    assert.equal(kernelSource(name), await Deno.readTextFile(new URL(`${name}.wgsl`, dir)), name);
  }
  assert.throws(
    () => kernelSource("noSuchKernel"),
    /no kernel shared\/kernels\/noSuchKernel\.wgsl/,
  );
});
