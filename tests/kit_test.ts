/**
 * The stage kit's bindings by name (fast/bindings.ts, fast/kit.ts): what a
 * kernel declares is read from its WGSL; a host record that names a binding
 * the kernel does not declare, or leaves one unbound, is an error naming the
 * kernel and the binding; and a real stage bound by name runs on the real
 * adapter (llvmpipe here) and matches a CPU reference.
 *
 * Not here: the engines' stages themselves (cnn_test.ts, fast_train_test.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import {
  bindByName,
  declaredBindings,
  dispatcher,
  encodeStages,
  Pipelines,
  record,
  signatureOf,
  specializedSource,
  stageBinder,
  type StageSpec,
  submit,
} from "../fast/kit.ts";
import { openGpu, readBuffer } from "../shared/gpu/device.ts";
import { BATCH_BYTES, kernelSource } from "../shared/kernels/sources.ts";
import { mulberry32 } from "../shared/model/rng.ts";

/** The argmax + confusion kernel both models' test passes use. */
const SCORE = "argmaxConfusion";

Deno.test("declaredBindings reads names, numbers and kinds from a kernel's WGSL", () => {
  // shared/kernels/common/sumLosses.wgsl and mlp/outputLayer.wgsl, read by eye.
  assert.deepEqual(declaredBindings("sumLosses", kernelSource("sumLosses")).bindings, [
    { binding: 0, name: "batch", kind: "dynamic" },
    { binding: 1, name: "losses", kind: "read" },
    { binding: 2, name: "total", kind: "write" },
  ]);
  const out = declaredBindings("outputLayer", kernelSource("outputLayer")).bindings;
  assert.deepEqual(out.map((d) => `${d.binding} ${d.name} ${d.kind}`), [
    "0 step dynamic",
    "1 act read",
    "2 w uniform", // W_L's uniform copy: a plain uniform, not a dynamic-offset entry
    "3 bias read",
    "4 labels read",
    "5 losses write",
    "6 dz write",
    "7 dAct write",
  ]);
  const tex = declaredBindings(
    "inputGradReluMaskTexture",
    kernelSource("inputGradReluMaskTexture"),
  );
  assert.deepEqual(tex.bindings.map((d) => `${d.binding} ${d.name} ${d.kind}`), [
    "0 step dynamic",
    "2 gTex texture",
    "4 wTex texture",
    "5 act read",
    "6 dz write",
  ]);
  // shared/kernels/cnn/cnnToTexture.wgsl writes a storage texture.
  const store = declaredBindings("cnnToTexture", kernelSource("cnnToTexture")).bindings;
  assert.deepEqual(store.map((d) => `${d.binding} ${d.name} ${d.kind}`), [
    "0 batch dynamic",
    "1 src read",
    "2 tex storageTexture",
  ]);
  // Comments are not declarations; a binding number declared twice is an error.
  const src = `// @group(0) @binding(3) var<storage, read> old: array<f32>;
@group(0) @binding(0) var<storage, read> a: array<f32>;
/* @group(0) @binding(1) var<storage, read> b: array<f32>; */`;
  assert.deepEqual(declaredBindings("k", src).bindings, [{ binding: 0, name: "a", kind: "read" }]);
  assert.throws(
    () => declaredBindings("k", `${src}\n@group(0) @binding(0) var<storage, read_write> c: f32;`),
    /kernel k: binding 0 declared twice \(a, c\)/,
  );
});

Deno.test("signatureOf: the union of kernels' bindings, holes left out, kinds must agree", () => {
  const split = ["weightGradSplit", "weightGradSplitSum"].map((k) =>
    declaredBindings(k, kernelSource(k))
  );
  assert.deepEqual(signatureOf(split), ["dynamic", "read", "read", "write", "write", "write"]);
  const rows = declaredBindings("nonzeroRows", kernelSource("nonzeroRows"));
  assert.deepEqual(signatureOf([rows]), ["dynamic", "read", "write"]);
  const a = declaredBindings("a", "@group(0) @binding(2) var<storage, read> x: array<f32>;");
  assert.deepEqual(Array.from(signatureOf([a])), [undefined, undefined, "read"]);
  const b = declaredBindings("b", "@group(0) @binding(2) var<storage, read_write> y: array<f32>;");
  assert.throws(() => signatureOf([a, b]), /binding 2 is read in kernel a but write \(y\) in b/);
});

Deno.test("bindByName fails naming the kernel and the binding when host and kernel drift", async () => {
  const gpu = await openGpu();
  try {
    const { device } = gpu;
    const buffer = (label: string, usage: number = GPUBufferUsage.STORAGE) =>
      device.createBuffer({ label, size: 256, usage });
    const batch = { buffer: buffer("batch", GPUBufferUsage.UNIFORM), size: BATCH_BYTES };
    const [logits, labels, confusion] = ["logits", "labels", "confusion"].map((l) => buffer(l));
    const kernel = declaredBindings(SCORE, specializedSource(SCORE, { CLASSES: 10 }));
    const good = { batch, logits, labels, confusion };
    // Every declared binding, in the kernel's numbering.
    assert.deepEqual(bindByName("g", [kernel], good).map((e) => e.binding), [0, 1, 2, 3]);
    assert.throws(
      () => bindByName("g", [kernel], { ...good, logit: logits }),
      new RegExp(`g: kernel ${SCORE} declares no binding logit \\(it declares batch, logits`),
    );
    const { labels: _, ...missing } = good;
    assert.throws(
      () => bindByName("g", [kernel], missing),
      new RegExp(`g: kernel ${SCORE} binding 2 \\(labels\\) is not bound`),
    );
    assert.throws(
      () => bindByName("g", [kernel], { ...good, batch: batch.buffer }),
      new RegExp(`kernel ${SCORE} binding 0 \\(batch\\) needs one entry's range`),
    );
    // A texture where the kernel declares a buffer, and a buffer where it declares a texture.
    const texture = device.createTexture({
      label: "a texture",
      size: [4, 4],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING,
    });
    assert.throws(
      () => bindByName("g", [kernel], { ...good, logits: texture }),
      new RegExp(`kernel ${SCORE} binding 1 \\(logits\\) needs a buffer`),
    );
    const copy = declaredBindings(
      "cnnToTexture",
      specializedSource("cnnToTexture", {
        WIDTH: 1,
        ROWS: 4,
      }),
    );
    const src = buffer("src");
    assert.equal(bindByName("c", [copy], { batch, src, tex: texture }).length, 3);
    assert.throws(
      () => bindByName("c", [copy], { batch, src, tex: src }),
      /kernel cnnToTexture binding 2 \(tex\) needs a texture/,
    );
    // Two kernels of one group naming one binding differently: one resource for both names.
    const fwd = ["matmulBiasRelu", "matmulBiasReluTexture"].map((k) =>
      declaredBindings(k, kernelSource(k))
    );
    const tex = device.createTexture({
      label: "t",
      size: [4, 4],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING,
    });
    const [x, w, bias, out, list] = ["x", "w", "bias", "out", "list"].map((l) => buffer(l));
    const step = batch;
    const slot = { step, aWords: x, aVec: x, aTex: tex, w, wTex: tex, bias, outAct: out };
    assert.throws(
      () => bindByName("f", fwd, slot),
      /f: kernel matmulBiasReluTexture binding 7 \(groupList\) is not bound/,
    );
    assert.equal(bindByName("f", fwd, { ...slot, groupList: list }).length, 8);
    assert.throws(
      () => bindByName("f", fwd, { ...slot, groupList: list, aVec: out }),
      /f: binding 1 is bound twice \(aWords, aVec\)/,
    );
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("a stage bound by name runs: argmax + confusion of a batch, against the CPU", async () => {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  try {
    const { device } = gpu;
    const [classes, n, start, count] = [5, 40, 7, 29];
    const rand = mulberry32(3);
    const logits = Float32Array.from({ length: count * classes }, () => Math.floor(rand() * 4));
    const labels = Uint32Array.from({ length: n }, () => Math.floor(rand() * classes));
    // The reference: confusion[labels[start + i], first argmax of logits[i]] += 1 (ties: many here).
    const want = new Uint32Array(classes * classes);
    for (let i = 0; i < count; i++) {
      let best = 0;
      for (let j = 1; j < classes; j++) {
        if (logits[i * classes + j] > logits[i * classes + best]) best = j;
      }
      want[labels[start + i] * classes + best]++;
    }
    const storage = (label: string, data: ArrayBufferView<ArrayBuffer> | number) => {
      const size = typeof data === "number" ? data : data.byteLength;
      const buf = device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      if (typeof data !== "number") device.queue.writeBuffer(buf, 0, data);
      return buf;
    };
    const uniform = device.createBuffer({
      label: "kit test batch table",
      size: 512,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(uniform, 256, new Uint32Array([start, count, 0, 0]));
    const confusion = storage("kit test confusion", classes * classes * 4);
    const spec = (bindings: StageSpec["bindings"], uniform: StageSpec["uniform"] = "batch") => ({
      name: "test argmax",
      kernel: SCORE,
      constants: { CLASSES: classes },
      uniform,
      bindings,
      threads: (c: number) => c,
      flops: () => 0,
    });
    const bind = stageBinder(device, new Pipelines(device), {
      batch: { buffer: uniform, size: BATCH_BYTES },
    });
    const bindings = {
      logits: storage("kit test logits", logits),
      labels: storage("kit test labels", labels),
      confusion,
    };
    await assert.rejects(
      bind(spec({ ...bindings, scores: confusion })),
      new RegExp(`test argmax bind group: kernel ${SCORE} declares no binding scores`),
    );
    await assert.rejects(
      bind(spec(bindings, "none")),
      new RegExp(`test argmax: kernel ${SCORE} binding 0 \\(batch\\): the stage gives no uniform`),
    );
    const stage = await bind(spec(bindings));
    const rec = record(dispatcher(device, 2), "kit test");
    encodeStages(rec, [stage], 1, 0, count); // uniform entry 1: {start, count}
    submit(rec);
    const got = new Uint32Array(await readBuffer(device, confusion));
    assert.deepEqual(got, want);
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});
