/**
 * shared/kernels/sources.ts lists every kernel file under shared/kernels/, with its text, and
 * prepends the `struct Step` prelude (shared/kernels/mlp/step.wgsl) to exactly the kernels under
 * mlp/.
 */

import assert from "node:assert/strict";
import {
  KERNEL_SOURCES,
  kernelSource,
  STEP_KERNELS,
  STEP_STRUCT,
} from "../shared/kernels/sources.ts";

const PRELUDE = "mlp/step.wgsl";

/** Every `.wgsl` file under shared/kernels/: kernel name → [folder path, file]. */
async function kernelFiles(): Promise<Map<string, [string, URL]>> {
  const root = new URL("../shared/kernels/", import.meta.url);
  const files = new Map<string, [string, URL]>();
  const walk = async (dir: URL, path: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir), `${path}${e.name}/`);
      else if (e.name.endsWith(".wgsl")) {
        files.set(e.name.slice(0, -".wgsl".length), [`${path}${e.name}`, new URL(e.name, dir)]);
      }
    }
  };
  await walk(root, "");
  return files;
}

Deno.test("every shared/kernels/**/*.wgsl is imported, as the file's text, and nothing else", async () => {
  const files = await kernelFiles();
  const [preludePath, preludeFile] = files.get("step")!;
  assert.equal(preludePath, PRELUDE);
  assert.equal(STEP_STRUCT, await Deno.readTextFile(preludeFile));
  files.delete("step"); // the prelude, not a kernel
  assert.deepEqual(Object.keys(KERNEL_SOURCES).sort(), [...files.keys()].sort());
  for (const [name, [, file]] of files) {
    assert.equal(KERNEL_SOURCES[name], await Deno.readTextFile(file), name);
  }
  assert.throws(
    () => kernelSource("noSuchKernel"),
    /no kernel noSuchKernel\.wgsl/,
  );
});

Deno.test("kernelSource prepends struct Step to the kernels under mlp/, and only to them", async () => {
  const files = await kernelFiles();
  files.delete("step");
  const mlp = [...files].filter(([, [path]]) => path.startsWith("mlp/")).map(([name]) => name);
  assert.deepEqual([...STEP_KERNELS].sort(), mlp.sort());
  assert.match(STEP_STRUCT, /^struct Step \{$/m);
  for (const name of files.keys()) {
    const text = KERNEL_SOURCES[name];
    if (STEP_KERNELS.has(name)) {
      assert.equal(kernelSource(name), `${STEP_STRUCT}\n${text}`, name);
      assert.doesNotMatch(text, /^struct Step\b/m, `${name} keeps a copy of struct Step`);
      assert.match(text, /var<uniform> step: Step;/, name);
    } else {
      assert.equal(kernelSource(name), text, name);
    }
  }
});
