/**
 * shared/kernels/sources.ts lists every kernel file under shared/kernels/, with its text, and
 * prepends each prelude to exactly the kernels of its folders: the per-batch `struct Batch`
 * (shared/kernels/common/batch.wgsl) to those under common/, mlp/ and cnn/ (one struct for both
 * models), `struct OptimizerStep` (optim/optimizerStep.wgsl) to those under optim/.
 */

import assert from "node:assert/strict";
import {
  BATCH_STRUCT,
  CNN_KERNELS,
  COMMON_KERNELS,
  KERNEL_SOURCES,
  kernelSource,
  MLP_KERNELS,
  PRELUDES,
  specialize,
} from "../shared/kernels/sources.ts";

/** The kernel name a prelude's file would have, were it a kernel ("common/batch.wgsl" → "batch"). */
const preludeName = (file: string) => file.slice(file.lastIndexOf("/") + 1, -".wgsl".length);

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

/** The kernels (preludes left out) whose files are under `folder` ("mlp/"). */
function inFolder(files: Map<string, [string, URL]>, folder: string): string[] {
  return [...files].filter(([, [path]]) => path.startsWith(folder)).map(([name]) => name).sort();
}

Deno.test("every shared/kernels/**/*.wgsl is imported, as the file's text, and nothing else", async () => {
  const files = await kernelFiles();
  for (const { file, source } of PRELUDES) {
    const [path, url] = files.get(preludeName(file))!;
    assert.equal(path, file);
    assert.equal(source, await Deno.readTextFile(url), file);
    files.delete(preludeName(file)); // a prelude, not a kernel
  }
  assert.deepEqual(Object.keys(KERNEL_SOURCES).sort(), [...files.keys()].sort());
  for (const [name, [, file]] of files) {
    assert.equal(KERNEL_SOURCES[name], await Deno.readTextFile(file), name);
  }
  assert.throws(
    () => kernelSource("noSuchKernel"),
    /no kernel noSuchKernel\.wgsl/,
  );
});

Deno.test("one per-batch struct Batch for both models: common/, mlp/ and cnn/ kernels, and only them", async () => {
  const files = await kernelFiles();
  for (const { file } of PRELUDES) files.delete(preludeName(file));
  assert.deepEqual([...COMMON_KERNELS].sort(), inFolder(files, "common/"));
  assert.deepEqual([...MLP_KERNELS].sort(), inFolder(files, "mlp/"));
  assert.deepEqual([...CNN_KERNELS].sort(), inFolder(files, "cnn/"));
  assert.ok(COMMON_KERNELS.has("sumLosses"), "the loss sum is shared");
  assert.match(BATCH_STRUCT, /^struct Batch \{$/m);
  const batch = new Set([...COMMON_KERNELS, ...MLP_KERNELS, ...CNN_KERNELS]);
  for (const name of files.keys()) {
    const text = KERNEL_SOURCES[name];
    if (batch.has(name)) {
      assert.equal(kernelSource(name), `${BATCH_STRUCT}\n${text}`, name);
      assert.doesNotMatch(text, /^struct (Batch|Step)\b/m, `${name} keeps a struct of its own`);
      assert.match(text, /var<uniform> \w+: Batch;/, name);
    } else {
      assert.doesNotMatch(kernelSource(name), /^struct Batch\b/m, name);
    }
  }
});

Deno.test("kernelSource prepends each prelude to every kernel of its folders, none keeping a copy", async () => {
  const files = await kernelFiles();
  for (const { file } of PRELUDES) files.delete(preludeName(file));
  assert.deepEqual(PRELUDES.map((p) => p.file), ["common/batch.wgsl", "optim/optimizerStep.wgsl"]);
  const structs = PRELUDES.map(({ source }) => source.match(/^struct (\w+) \{$/m)?.[1]);
  assert.deepEqual(structs, ["Batch", "OptimizerStep"]);
  const prefixed = new Set<string>();
  PRELUDES.forEach(({ source, folders, kernels }, p) => {
    const want = folders.flatMap((folder) => inFolder(files, folder));
    assert.deepEqual([...kernels].sort(), want.sort(), folders.join(" "));
    for (const name of kernels) {
      const text = KERNEL_SOURCES[name];
      assert.ok(!prefixed.has(name), `${name} has two preludes`);
      prefixed.add(name);
      assert.equal(kernelSource(name), `${source}\n${text}`, name);
      for (const struct of structs) {
        const own = new RegExp(`^struct ${struct}\\b`, "m");
        assert.doesNotMatch(text, own, `${name} keeps a copy of struct ${struct}`);
      }
      assert.match(text, new RegExp(`var<uniform> \\w+: ${structs[p]};`), name);
    }
  });
  // The rest (slow/, gatherRows) are returned as their files are.
  for (const name of files.keys()) {
    if (!prefixed.has(name)) assert.equal(kernelSource(name), KERNEL_SOURCES[name], name);
  }
});

Deno.test("specialize: a constant the host must set is SET_BY_HOST, and one left unset fails, named", () => {
  // Every MLP kernel whose shapes the host sets declares them one way: `const NAME = SET_BY_HOST;`.
  const hostSet = [...MLP_KERNELS].filter((k) =>
    /^const \w+ = SET_BY_HOST;/m.test(kernelSource(k))
  );
  assert.deepEqual(
    [...MLP_KERNELS].filter((k) => !hostSet.includes(k)),
    [],
    "every MLP kernel takes its shapes from the host (the loss sum, one workgroup of 256, is common/)",
  );
  for (const k of hostSet) {
    const unset = [...kernelSource(k).matchAll(/^const (\w+) = SET_BY_HOST;/gm)].map((m) => m[1]);
    assert.throws(
      () => specialize(kernelSource(k), {}),
      new RegExp(
        `^Error: kernel ${k}: the host did not set ${unset.join(", ")} \\(SET_BY_HOST\\)$`,
      ),
    );
    // Setting all but the last still names the last; setting all of them leaves none.
    const some = Object.fromEntries(unset.slice(0, -1).map((name) => [name, 4]));
    assert.throws(
      () => specialize(kernelSource(k), some),
      new RegExp(`did not set ${unset.at(-1)} `),
    );
    const all = specialize(kernelSource(k), Object.fromEntries(unset.map((name) => [name, 4])));
    assert.doesNotMatch(all, /= SET_BY_HOST;/, k);
  }
  assert.throws(() => specialize(kernelSource("outputLogits"), { Q: 1 }), /no 'const Q = …;'/);
});
