/** shared/kernels/sources.ts lists every kernel file under shared/kernels/, with its text. */

import assert from "node:assert/strict";
import { KERNEL_SOURCES } from "../shared/kernels/sources.ts";
import { kernelSource } from "../shared/kernels/sources.ts";

Deno.test("every shared/kernels/**/*.wgsl is imported, as the file's text, and nothing else", async () => {
  const root = new URL("../shared/kernels/", import.meta.url);
  const files = new Map<string, URL>(); // kernel name → its file
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".wgsl")) {
        files.set(e.name.slice(0, -".wgsl".length), new URL(e.name, dir));
      }
    }
  };
  await walk(root);
  assert.deepEqual(Object.keys(KERNEL_SOURCES).sort(), [...files.keys()].sort());
  for (const [name, file] of files) {
    assert.equal(KERNEL_SOURCES[name], await Deno.readTextFile(file), name);
  }
  assert.throws(
    () => kernelSource("noSuchKernel"),
    /no kernel noSuchKernel\.wgsl/,
  );
});
