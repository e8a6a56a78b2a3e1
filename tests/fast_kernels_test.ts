/**
 * Each fused kernel of the fast trainer, every matmul variant, on awkward
 * shapes (no tile or block size divides them, a batch of one, an offset
 * into the image bytes) against the CPU reference of shared/model/mlp.ts, on
 * the real adapter.
 *
 * @module
 */

import assert from "node:assert/strict";

import {
  addBias,
  columnSums,
  crossEntropy,
  matmul,
  matmulTransA,
  matmulTransB,
  relu,
  reluBackward,
  softmax,
  softmaxCrossEntropyBackward,
} from "../shared/model/mlp.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import { confusionMatrix } from "../shared/io/report.ts";
import { fileGpu } from "./fixtures.ts";
import { readMapped } from "../shared/gpu/device.ts";
import {
  defaultVariant,
  dispatchSize,
  kernelFits,
  type MatmulShape,
  type MatmulVariant,
  tileWidth,
  tuneCandidates,
  variantByName,
  variantFits,
  VARIANTS,
  variantSource,
} from "../fast/mlp/variants/matmul.ts";
import { pickFastest } from "../fast/mlp/variants/tuner.ts";
import { readTuneCache, writeTuneCache } from "../fast/files.ts";
import { evalConstInt, kernelSource, specialize, unrollLoops } from "../shared/kernels/sources.ts";

const gpu = await fileGpu();
const { device } = gpu;

// uniform: the Step entry (dynamic offset); ubo: a plain uniform buffer.
type BindingKind = "uniform" | "ubo" | "read" | "rw" | "tex";
type Resource = Float32Array | Uint32Array | { texture: Float32Array; width: number } | "step";

const LAYOUTS: Record<string, BindingKind[]> = {
  product: ["uniform", "read", "tex", "read", "tex", "read", "rw", "read"],
  weightGrad: ["uniform", "read", "tex", "read", "tex", "rw", "rw", "read"],
  nonzero: ["uniform", "read", "rw", "read"],
  outputLayer: ["uniform", "read", "ubo", "read", "read", "rw", "rw", "rw"],
  outputLayerRows: ["uniform", "read", "read", "read", "read", "rw", "rw", "rw"],
  logits: ["uniform", "read", "read", "read", "rw"],
  confusion: ["uniform", "read", "read", "rw"],
  sum: ["uniform", "read", "rw"],
  split: ["uniform", "read", "read", "rw", "rw", "rw"],
};

const pipelines = new Map<
  string,
  Promise<{ bgl: GPUBindGroupLayout; pipeline: GPUComputePipeline }>
>();

/** The pipeline of `code` (compiled once per test file: llvmpipe JIT-compiles each). */
function compiled(label: string, code: string, layoutName: keyof typeof LAYOUTS) {
  const key = `${layoutName}\n${code}`;
  let p = pipelines.get(key);
  if (!p) {
    const kinds = LAYOUTS[layoutName];
    const bgl = device.createBindGroupLayout({
      label: `${label} layout`,
      entries: kinds.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        ...(kind === "uniform"
          ? { buffer: { type: "uniform", hasDynamicOffset: true } }
          : kind === "ubo"
          ? { buffer: { type: "uniform" } }
          : kind === "tex"
          ? { texture: { sampleType: "unfilterable-float" } }
          : { buffer: { type: kind === "read" ? "read-only-storage" : "storage" } }),
      })) as GPUBindGroupLayoutEntry[],
    });
    p = device.createComputePipelineAsync({
      label: `${label} pipeline`,
      layout: device.createPipelineLayout({
        label: `${label} pipeline layout`,
        bindGroupLayouts: [bgl],
      }),
      compute: {
        module: device.createShaderModule({ label: `${label} module`, code }),
        entryPoint: "main",
      },
    }).then((pipeline) => ({ bgl, pipeline }));
    pipelines.set(key, p);
  }
  return p;
}

/**
 * Runs `code` once with the bindings in `resources` (by binding number),
 * the uniform `Step {start, count, lr, rowOrder}` (rowOrder default
 * 0xffffffff: none) at a dynamic offset of 256, and
 * returns the contents of every read-write buffer afterwards. Bindings past
 * the end of `resources` get a small zeroed buffer. With lists of
 * codes and workgroup counts, runs each kernel in turn on the same bindings,
 * in one compute pass (as the engine does). Every buffer and texture it makes
 * is destroyed before it returns.
 */
async function runKernel(
  label: string,
  code: string | string[],
  layoutName: keyof typeof LAYOUTS,
  resources: Resource[],
  step: { start: number; count: number; lr: number; rowOrder?: number },
  workgroups: [number, number] | [number, number][],
): Promise<Map<number, ArrayBuffer>> {
  const kinds = LAYOUTS[layoutName];
  const codes = typeof code === "string" ? [code] : code;
  const sizes = (typeof workgroups[0] === "number" ? [workgroups] : workgroups) as [
    number,
    number,
  ][];
  const kernels = await Promise.all(codes.map((c) => compiled(label, c, layoutName)));
  const stepData = new ArrayBuffer(512);
  new Uint32Array(stepData, 256, 2).set([step.start, step.count]);
  new Float32Array(stepData, 264, 1)[0] = step.lr;
  new Uint32Array(stepData, 268, 1)[0] = step.rowOrder ?? 0xffffffff;
  const made: (GPUBuffer | GPUTexture)[] = [];
  try {
    return await dispatchAndRead(made);
  } finally {
    for (const m of made) m.destroy();
  }

  async function dispatchAndRead(made: (GPUBuffer | GPUTexture)[]) {
    const stepBuf = device.createBuffer({
      label: `${label} step`,
      size: 512,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    made.push(stepBuf);
    device.queue.writeBuffer(stepBuf, 0, stepData);
    const rwBuffers = new Map<number, GPUBuffer>();
    const all = kinds.map((_, binding) => resources[binding] ?? new Uint32Array(4));
    const entries: GPUBindGroupEntry[] = all.map((r, binding) => {
      if (r === "step") return { binding, resource: { buffer: stepBuf, size: 16 } };
      if (r instanceof Float32Array || r instanceof Uint32Array) {
        const ubo = kinds[binding] === "ubo";
        const buf = device.createBuffer({
          label: `${label} binding ${binding}`,
          // A uniform array of vec4s is read whole: round it up to 16 bytes.
          size: ubo ? Math.ceil(r.byteLength / 16) * 16 : Math.max(16, r.byteLength),
          usage: (ubo ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE) |
            GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
        });
        made.push(buf);
        device.queue.writeBuffer(buf, 0, r.slice());
        if (kinds[binding] === "rw") rwBuffers.set(binding, buf);
        return { binding, resource: { buffer: buf } };
      }
      // Variants that read no texture here still need one bound (any size). Every texture is 64
      // rows high, however many it holds (the engine too sizes them once): llvmpipe compiles a
      // kernel anew for each class of texture size it meets, ~2 s for a 32 × 16 block.
      const width = Math.max(1, Math.floor(r.width));
      const rows = Math.floor(r.texture.length / 4 / width);
      const height = Math.max(64, rows);
      const tex = device.createTexture({
        label: `${label} texture ${binding}`,
        size: [width, height],
        format: "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      made.push(tex);
      if (r.texture.length > 0 && r.texture.length === width * rows * 4) {
        device.queue.writeTexture(
          { texture: tex },
          r.texture.slice(),
          { bytesPerRow: width * 16 },
          [
            width,
            rows,
          ],
        );
      }
      return { binding, resource: tex.createView({ label: `${label} texture ${binding} view` }) };
    });
    const enc = device.createCommandEncoder({ label: `${label} encoder` });
    const pass = enc.beginComputePass({ label: `${label} pass` });
    kernels.forEach(({ bgl, pipeline }, i) => {
      const group = device.createBindGroup({ label: `${label} bind group`, layout: bgl, entries });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group, [256]);
      pass.dispatchWorkgroups(...sizes[i]);
    });
    pass.end();
    const stagings = new Map<number, GPUBuffer>();
    for (const [binding, buf] of rwBuffers) {
      const staging = device.createBuffer({
        label: `${label} readback ${binding}`,
        size: buf.size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      made.push(staging);
      enc.copyBufferToBuffer(buf, 0, staging, 0, buf.size);
      stagings.set(binding, staging);
    }
    device.queue.submit([enc.finish()]);
    const out = new Map<number, ArrayBuffer>();
    for (const [binding, staging] of stagings) {
      out.set(binding, await readMapped(staging));
    }
    return out;
  }
}

function randoms(n: number, seed: number, zeroShare = 0): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() < zeroShare ? 0 : rand() * 2 - 1;
  return out;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() < 0.4 ? 0 : Math.floor(rand() * 256);
  return out;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-5) {
  assert.ok(got.length >= want.length, `${what}: ${got.length} values, want ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(
      err <= tol * (1 + Math.abs(want[i])),
      `${what}[${i}]: got ${got[i]}, want ${want[i]}`,
    );
  }
}

/** A case of a matmul kernel: shape, rows, and (for bytes) the first image. */
interface Case {
  shape: MatmulShape;
  rows: number;
  start: number;
}

function cases(op: MatmulShape["op"], bytesToo: boolean): Case[] {
  // Texture variants need K, N multiples of 4 (K of 16 for forward: 48 is 3 trips of its main
  // loop); bytes need K a multiple of 4.
  const out: Case[] = [];
  for (const [k, n] of [[20, 36], [19, 23], [12, 10], [48, 20]]) {
    for (const rows of [13, 1, 37]) {
      out.push({ shape: { op, k, n, aBytes: false }, rows, start: 0 });
      if (bytesToo && k % 4 === 0) out.push({ shape: { op, k, n, aBytes: true }, rows, start: 3 });
    }
  }
  return out;
}

const fits = (v: MatmulVariant, c: Case) => kernelFits(v, c.shape, c.rows, 16384);

/** The cases `v` fits; one that fits none would make a test that checks nothing, so that fails. */
function casesFor(
  v: MatmulVariant,
  op: MatmulShape["op"],
  bytesToo: boolean,
  keep: (v: MatmulVariant, c: Case) => boolean = () => true,
): Case[] {
  const fitting = cases(op, bytesToo).filter((c) => fits(v, c) && keep(v, c));
  assert.ok(fitting.length > 0, `${v.name} fits none of the ${op} cases`);
  return fitting;
}
const label = (v: MatmulVariant, c: Case) =>
  `${c.shape.op} ${v.name} K${c.shape.k} N${c.shape.n} rows${c.rows}${
    c.shape.aBytes ? " bytes" : ""
  }`;

/** A operand: floats for the CPU, and what the kernel binds (words, texture). */
function operandA(c: Case, seed: number) {
  const { k } = c.shape;
  if (c.shape.aBytes) {
    const bytes = randomBytes((c.start + c.rows + 2) * k, seed);
    const floats = new Float32Array(c.rows * k);
    for (let i = 0; i < floats.length; i++) floats[i] = bytes[c.start * k + i] / 255;
    return { floats, words: new Uint32Array(bytes.buffer), texture: new Float32Array(0) };
  }
  const floats = randoms(c.rows * k, seed, 0.3);
  return { floats, words: new Uint32Array(floats.buffer.slice(0)), texture: floats };
}

/** The variant whose outputs the blocked family must match bit for bit. */
const TILED = variantByName("tiled-16");

/**
 * Blocked variants: only the shape whose K is no multiple of the 16 values
 * staged per step and whose N no multiple of a tile (K 20, N 36; rows 1, 13,
 * 37: a partial and more than one row tile) — llvmpipe compiles each case.
 */
const few = (v: MatmulVariant, c: Case) => v.family !== "blocked" || c.shape.k === 20;

/** The read-write buffers `bindings` of two runs hold the same bits. */
function sameBits(
  got: Map<number, ArrayBuffer>,
  want: Map<number, ArrayBuffer>,
  bindings: number[],
  what: string,
) {
  for (const b of bindings) {
    const [x, y] = [new Uint32Array(got.get(b)!), new Uint32Array(want.get(b)!)];
    const at = x.findIndex((bits, i) => bits !== y[i]);
    assert.ok(at < 0, `${what}, binding ${b}: [${at}] is ${x[at]}, tiled-16 gives ${y[at]}`);
  }
}

for (const v of VARIANTS) {
  Deno.test(`fast kernels: forward (matmul + bias + ReLU), ${v.name}`, async () => {
    for (const c of casesFor(v, "forward", true, few)) {
      const { k, n } = c.shape;
      const a = operandA(c, 1);
      const w = randoms(k * n, 2);
      const b = randoms(n, 3);
      const want = relu(addBias(matmul(a.floats, w, c.rows, k, n), b));
      const run = (v: MatmulVariant) =>
        runKernel(
          label(v, c),
          variantSource(c.shape, v),
          "product",
          [
            "step",
            a.words,
            { texture: a.texture, width: k / 4 },
            w,
            { texture: w, width: n / 4 },
            b,
            new Float32Array(c.rows * n).fill(NaN),
          ],
          { start: c.start, count: c.rows, lr: 0 },
          dispatchSize(c.shape, v, c.rows),
        );
      const out = await run(v);
      assertClose(new Float32Array(out.get(6)!), want, label(v, c));
      if (v.family === "blocked") sameBits(out, await run(TILED), [6], label(v, c));
    }
  });

  // The -r8 variants (8 × 4 outputs an invocation) exist for the forward pass only.
  const forwardOnly = v.rm !== undefined;
  if (!forwardOnly) {
    Deno.test(`fast kernels: input gradient with ReLU mask, ${v.name}`, async () => {
      for (const c of casesFor(v, "inputGrad", false, few)) {
        const { k, n } = c.shape;
        const g = randoms(c.rows * k, 4);
        const w = randoms(n * k, 5); // the next layer's W: [in = n, out = k]
        const act = relu(randoms(c.rows * n, 6)); // half of it zero
        const want = reluBackward(matmulTransB(g, w, c.rows, k, n), act);
        const run = (v: MatmulVariant) =>
          runKernel(
            label(v, c),
            variantSource(c.shape, v),
            "product",
            [
              "step",
              g,
              { texture: g, width: k / 4 },
              w,
              { texture: w, width: k / 4 },
              new Float32Array(act),
              new Float32Array(c.rows * n).fill(NaN),
            ],
            { start: 0, count: c.rows, lr: 0 },
            dispatchSize(c.shape, v, c.rows),
          );
        const out = await run(v);
        assertClose(new Float32Array(out.get(6)!), want, label(v, c));
        if (v.family === "blocked") sameBits(out, await run(TILED), [6], label(v, c));
      }
    });
  }

  if (!forwardOnly) {
    Deno.test(`fast kernels: weight gradient + SGD update, ${v.name}`, async () => {
      for (const c of casesFor(v, "weightGrad", true, few)) {
        const { k, n } = c.shape;
        const lr = 0.5;
        const a = operandA(c, 7);
        const g = randoms(c.rows * n, 8);
        const w = randoms(k * n, 9);
        const b = randoms(n, 10);
        const gw = matmulTransA(a.floats, g, c.rows, k, n);
        const gb = columnSums(g, c.rows, n);
        const wantW = w.map((x, i) => x - lr * gw[i]);
        const wantB = b.map((x, i) => x - lr * gb[i]);
        const run = (v: MatmulVariant, updateInPlace = true) =>
          runKernel(
            label(v, c),
            variantSource(c.shape, v, { updateInPlace }),
            "weightGrad",
            [
              "step",
              a.words,
              { texture: a.texture, width: k / 4 },
              g,
              { texture: g, width: n / 4 },
              w,
              b,
            ],
            { start: c.start, count: c.rows, lr },
            dispatchSize(c.shape, v, c.rows),
          );
        const out = await run(v);
        assertClose(new Float32Array(out.get(5)!), wantW, `${label(v, c)} W`);
        assertClose(new Float32Array(out.get(6)!), wantB, `${label(v, c)} b`);
        if (v.family === "blocked") {
          // The sums themselves (gradients stored, not applied: how a compiler contracts the
          // update w − lr·∂w is not the summation order this checks).
          sameBits(await run(v, false), await run(TILED, false), [5, 6], label(v, c));
        }
      }
    });
  }
}

Deno.test("fast kernels: blocked-64x64 at the model's shapes, batch 500", async () => {
  // Layer 1 (784 → 512, image bytes), layer 2 (512 → 128): forward, input gradient and weight
  // gradient as the engine uses them, 500 rows (7 full row tiles of 64 and a partial one).
  const v = variantByName("blocked-64x64");
  const rows = 500;
  const forwards: Case[] = [
    { shape: { op: "forward", k: 784, n: 512, aBytes: true }, rows, start: 3 },
    { shape: { op: "forward", k: 512, n: 128, aBytes: false }, rows, start: 0 },
  ];
  for (const c of forwards) {
    const { k, n } = c.shape;
    const a = operandA(c, 21);
    const w = randoms(k * n, 22).map((x) => x * 0.1);
    const b = randoms(n, 23);
    const want = relu(addBias(matmul(a.floats, w, rows, k, n), b));
    const out = await runKernel(
      label(v, c),
      variantSource(c.shape, v),
      "product",
      [
        "step",
        a.words,
        { texture: new Float32Array(0), width: 1 },
        w,
        {
          texture: new Float32Array(0),
          width: 1,
        },
        b,
        new Float32Array(rows * n).fill(NaN),
      ],
      { start: c.start, count: rows, lr: 0 },
      dispatchSize(c.shape, v, rows),
    );
    assertClose(new Float32Array(out.get(6)!), want, label(v, c), 1e-4);
  }
  {
    const c: Case = { shape: { op: "inputGrad", k: 128, n: 512, aBytes: false }, rows, start: 0 };
    const { k, n } = c.shape;
    const g = randoms(rows * k, 24);
    const w = randoms(n * k, 25);
    const act = relu(randoms(rows * n, 26));
    const want = reluBackward(matmulTransB(g, w, rows, k, n), act);
    const out = await runKernel(
      label(v, c),
      variantSource(c.shape, v),
      "product",
      [
        "step",
        g,
        { texture: new Float32Array(0), width: 1 },
        w,
        {
          texture: new Float32Array(0),
          width: 1,
        },
        new Float32Array(act),
        new Float32Array(rows * n).fill(NaN),
      ],
      { start: 0, count: rows, lr: 0 },
      dispatchSize(c.shape, v, rows),
    );
    assertClose(new Float32Array(out.get(6)!), want, label(v, c), 1e-4);
  }
  const weightGrads: Case[] = [
    { shape: { op: "weightGrad", k: 784, n: 512, aBytes: true }, rows, start: 3 },
    { shape: { op: "weightGrad", k: 512, n: 128, aBytes: false }, rows, start: 0 },
  ];
  for (const c of weightGrads) {
    const { k, n } = c.shape;
    const lr = 0.01;
    const a = operandA(c, 27);
    const g = randoms(rows * n, 28).map((x) => x / rows);
    const w = randoms(k * n, 29);
    const b = randoms(n, 30);
    const gw = matmulTransA(a.floats, g, rows, k, n);
    const gb = columnSums(g, rows, n);
    const out = await runKernel(
      label(v, c),
      variantSource(c.shape, v),
      "weightGrad",
      [
        "step",
        a.words,
        { texture: new Float32Array(0), width: 1 },
        g,
        {
          texture: new Float32Array(0),
          width: 1,
        },
        w,
        b,
      ],
      { start: c.start, count: rows, lr },
      dispatchSize(c.shape, v, rows),
    );
    assertClose(new Float32Array(out.get(5)!), w.map((x, i) => x - lr * gw[i]), label(v, c));
    assertClose(new Float32Array(out.get(6)!), b.map((x, i) => x - lr * gb[i]), label(v, c));
  }
});

/**
 * Image bytes where about half of the 16-pixel groups of each row are all
 * zero (as the background of a digit is), the rest random as `randomBytes`.
 */
function sparseBytes(n: number, k: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const out = randomBytes(n * k, seed + 1);
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < k; g += 16) if (rand() < 0.5) out.fill(0, r * k + g, r * k + g + 16);
  }
  return out;
}

/**
 * The pixels of images `width` wide in tile order (as `tileWord` in
 * weightGradTexture.wgsl): 4 × 4 tiles along the rows of tiles, each tile
 * row by row. `order[p]` is the pixel at tile-order position p.
 */
function tileOrder(k: number, width: number): number[] {
  const order: number[] = [];
  for (let ty = 0; ty < k / width / 4; ty++) {
    for (let tx = 0; tx < width / 4; tx++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) order.push((4 * ty + y) * width + 4 * tx + x);
      }
    }
  }
  return order;
}

/** Sets to zero, in each image of `k` pixels, about half of its tiles of 16 in `order`. */
function blankTiles(bytes: Uint8Array, k: number, order: number[], seed: number): void {
  const rand = mulberry32(seed);
  for (let at = 0; at < bytes.length; at += k) {
    for (let t = 0; t < k; t += 16) {
      if (rand() < 0.5) order.slice(t, t + 16).forEach((p) => bytes[at + p] = 0);
    }
  }
}

/**
 * CPU reference of nonzeroRows.wgsl: for each block of `block` pixels (taken
 * in `order`, default consecutive), the rows `r < count` of the images from
 * `start` with a nonzero pixel there (block 0: every row), as `[count, rows…]`
 * at strides of `1 + maxRows`.
 */
function nonzeroRowLists(
  bytes: Uint8Array,
  start: number,
  count: number,
  k: number,
  block: number,
  maxRows: number,
  order: number[] = [...Array(k).keys()],
): Uint32Array {
  const blocks = Math.ceil(k / block);
  const out = new Uint32Array(blocks * (1 + maxRows));
  for (let b = 0; b < blocks; b++) {
    let n = 0;
    for (let r = 0; r < count; r++) {
      const pixels = order.slice(b * block, Math.min((b + 1) * block, k));
      if (b === 0 || pixels.some((p) => bytes[(start + r) * k + p] !== 0)) {
        out[b * (1 + maxRows) + 1 + n++] = r;
      }
    }
    out[b * (1 + maxRows)] = n;
  }
  return out;
}

Deno.test("fast kernels: nonzeroRows lists the rows with a nonzero pixel per block", async () => {
  const maxRows = 40;
  // Image widths: 0 for runs of consecutive pixels, else 4 × 4 tiles (K = 48: 3 tiles in a row).
  for (const [k, width] of [[48, 0], [784, 0], [48, 12], [784, 28]]) {
    for (const block of [4, 8, 16, 32]) {
      for (const [rows, start] of [[13, 3], [1, 0], [37, 2]]) {
        const bytes = sparseBytes(start + rows + 1, k, 51);
        const order = width ? tileOrder(k, width) : undefined;
        if (order) blankTiles(bytes, k, order, 52);
        const what = `nonzeroRows K${k} width${width} block${block} rows${rows}`;
        const consts = { K: k, BLOCK: block, MAX_ROWS: maxRows, IMAGE_WIDTH: width };
        const out = await runKernel(
          what,
          specialize(kernelSource("nonzeroRows"), consts),
          "nonzero",
          [
            "step",
            new Uint32Array(bytes.buffer),
            new Uint32Array(Math.ceil(k / block) * (1 + maxRows)),
          ],
          { start, count: rows, lr: 0 },
          [Math.ceil(Math.ceil(k / block) / 8), 1],
        );
        const got = new Uint32Array(out.get(2)!);
        const want = nonzeroRowLists(bytes, start, rows, k, block, maxRows, order);
        let skipped = 0;
        for (let b = 0; b < Math.ceil(k / block); b++) {
          const at = b * (1 + maxRows);
          const n = want[at];
          skipped += rows - n;
          assert.deepEqual(
            [...got.subarray(at, at + 1 + n)],
            [...want.subarray(at, at + 1 + n)],
            `${what} block ${b}`,
          );
        }
        if (rows > 1) assert.ok(skipped > 0, `${what}: the data should have rows to skip`);
      }
    }
  }
});

/**
 * CPU reference of nonzeroGroups.wgsl: for each block of `rowsPerBlock`
 * positions of a batch of `count` images from `start`, taking its rows in
 * `order` (batch rows by position; default the positions themselves), the
 * groups of 16 pixels where one of its rows has a nonzero pixel, then the
 * block's rows (the last one repeated past the batch's end), as
 * `[count, groups…, rows…]` at strides of `1 + k / 16 + rowsPerBlock`.
 */
function nonzeroGroupLists(
  bytes: Uint8Array,
  start: number,
  count: number,
  k: number,
  rowsPerBlock: number,
  order: number[] = [...Array(count).keys()],
): Uint32Array {
  const blocks = Math.ceil(count / rowsPerBlock), stride = 1 + k / 16 + rowsPerBlock;
  const out = new Uint32Array(Math.max(1, blocks) * stride);
  for (let b = 0; b < blocks; b++) {
    const rows = Array.from(
      { length: rowsPerBlock },
      (_, i) => order[Math.min(b * rowsPerBlock + i, count - 1)],
    );
    let n = 0;
    for (let g = 0; g < k / 16; g++) {
      let nonzero = false;
      for (const r of rows) {
        const at = (start + r) * k + 16 * g;
        if (bytes.subarray(at, at + 16).some((x) => x !== 0)) nonzero = true;
      }
      if (nonzero) out[b * stride + 1 + n++] = g;
    }
    out[b * stride] = n;
    out.set(rows, b * stride + 1 + k / 16);
  }
  return out;
}

/**
 * Images of `k` pixels with ink in one of 3 bands of groups of 16 pixels
 * (row r in band r mod 3; others blank), random bytes there. In their
 * order few groups are blank in every row of a block; ordered by band
 * (`bandOrder`) most are.
 */
function bandedBytes(n: number, k: number, seed: number): Uint8Array {
  const out = randomBytes(n * k, seed);
  const band = Math.ceil(k / 16 / 3);
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < k / 16; g++) {
      if (Math.floor(g / band) !== r % 3) out.fill(0, r * k + 16 * g, r * k + 16 * g + 16);
    }
  }
  return out;
}

/** The rows `start .. start + count − 1` of `bandedBytes` by band, as batch rows. */
function bandOrder(start: number, count: number): number[] {
  const rows = [...Array(count).keys()];
  return rows.sort((a, b) => (start + a) % 3 - (start + b) % 3 || a - b);
}

Deno.test("fast kernels: nonzeroGroups lists the groups of 16 pixels not all zero per row block", async () => {
  for (const k of [48, 784]) {
    for (const rowsPerBlock of [8, 16, 32]) {
      for (const [rows, start] of [[13, 3], [1, 0], [70, 2]]) {
        for (const ordered of [false, true]) {
          const bytes = bandedBytes(start + rows + 1, k, 71);
          const what = `nonzeroGroups K${k} rows/block ${rowsPerBlock} rows${rows}` +
            (ordered ? " in an order" : "");
          const blocks = Math.ceil(rows / rowsPerBlock);
          const stride = 1 + k / 16 + rowsPerBlock;
          // The order table holds other entries first: the step says where this batch's begins.
          const order = ordered ? bandOrder(start, rows) : undefined;
          const out = await runKernel(
            what,
            specialize(kernelSource("nonzeroGroups"), { K: k, ROWS: rowsPerBlock }),
            "nonzero",
            [
              "step",
              new Uint32Array(bytes.buffer),
              new Uint32Array(blocks * stride),
              new Uint32Array([7, 7, 7, ...(order ?? [])]),
            ],
            { start, count: rows, lr: 0, rowOrder: ordered ? 3 : undefined },
            [Math.ceil(blocks / 8), 1],
          );
          const got = new Uint32Array(out.get(2)!);
          const want = nonzeroGroupLists(bytes, start, rows, k, rowsPerBlock, order);
          let skipped = 0;
          for (let b = 0; b < blocks; b++) {
            const at = b * stride;
            skipped += k / 16 - want[at];
            for (const [from, to] of [[at, at + 1 + want[at]], [at + 1 + k / 16, at + stride]]) {
              assert.deepEqual(
                [...got.subarray(from, to)],
                [...want.subarray(from, to)],
                `${what} block ${b}`,
              );
            }
          }
          // In their order a block's rows have ink in every band; by band, a block
          // within two thirds of the batch leaves one blank.
          if (ordered && (rows === 1 || rowsPerBlock < 2 * rows / 3)) {
            assert.ok(skipped > 0, `${what}: the data should have groups to skip`);
          }
        }
      }
    }
  }
});

for (const v of VARIANTS.filter((v) => v.family === "texture")) {
  Deno.test(`fast kernels: forward skipping all-zero groups of pixels, ${v.name}`, async () => {
    // K = 48: 3 trips of 16 pixels, the middle one blank (one K only: each is a compile).
    for (const k of [48]) {
      for (const [rows, start] of [[13, 3], [1, 0], [37, 2]]) {
        const n = 20;
        const shape: MatmulShape = { op: "forward", k, n, aBytes: true };
        const bytes = sparseBytes(start + rows + 1, k, 81);
        for (let i = 0; i < bytes.length; i++) if ((i % k) % 32 >= 16) bytes[i] = 0;
        const a = Float32Array.from(bytes.subarray(start * k, (start + rows) * k), (x) => x / 255);
        const w = randoms(k * n, 82);
        const b = randoms(n, 83);
        const want = relu(addBias(matmul(a, w, rows, k, n), b));
        // Rows in their order, then in another (each block's rows come from its list).
        for (const order of [undefined, bandOrder(start, rows)]) {
          const lists = nonzeroGroupLists(bytes, start, rows, k, v.block[0], order);
          const what = `${v.name} skipping zero groups K${k} rows${rows}${
            order ? " in an order" : ""
          }`;
          // The forward pass with `groupLists` at binding 7; returns the activations.
          const forward = async (label: string, groupLists: Uint32Array) =>
            new Float32Array(
              (await runKernel(
                label,
                variantSource(shape, v, { zeroLists: { maxRows: 64 } }),
                "product",
                [
                  "step",
                  new Uint32Array(bytes.buffer),
                  { texture: new Float32Array(0), width: 1 },
                  w,
                  { texture: w, width: n / 4 },
                  b,
                  new Float32Array(rows * n).fill(NaN),
                  groupLists,
                ],
                { start, count: rows, lr: 0 },
                dispatchSize(shape, v, rows),
              )).get(6)!,
            );
          assertClose(await forward(what, lists), want, what);
          // Empty lists (no groups, same rows): the kernel takes its groups from them,
          // so only the bias is left.
          const empty = lists.slice();
          for (let at = 0; at < empty.length; at += 1 + k / 16 + v.block[0]) empty[at] = 0;
          assertClose(
            await forward(`${what} (empty lists)`, empty),
            relu(addBias(new Float64Array(rows * n), b)),
            `${what} (empty lists)`,
          );
        }
      }
    }
  });
}

for (const v of VARIANTS.filter((v) => v.family === "texture")) {
  Deno.test(`fast kernels: weight gradient skipping zero rows, ${v.name}`, async () => {
    // K = 48 is 3 groups of 16 pixels: with 32-row blocks the second block is
    // partial. K = 64 is taken as 8 × 8 images in 4 × 4 tiles (imageWidth 8).
    const maxRows = 40;
    for (const [k, imageWidth] of [[48, undefined], [64, 8]] as [number, number | undefined][]) {
      for (const [rows, start] of [[13, 3], [1, 0], [37, 2]]) {
        const n = 20;
        const shape: MatmulShape = { op: "weightGrad", k, n, aBytes: true };
        const lr = 0.5;
        const bytes = sparseBytes(start + rows + 1, k, 61);
        const order = imageWidth ? tileOrder(k, imageWidth) : undefined;
        if (order) blankTiles(bytes, k, order, 69);
        const a = Float32Array.from(bytes.subarray(start * k, (start + rows) * k), (x) => x / 255);
        const g = randoms(rows * n, 62);
        const w = randoms(k * n, 63);
        const b = randoms(n, 64);
        const gw = matmulTransA(a, g, rows, k, n);
        const gb = columnSums(g, rows, n);
        const what = `${v.name} skipping zero rows K${k} width ${imageWidth} rows${rows}`;
        const opts = { zeroLists: { maxRows, imageWidth } };
        assert.equal(tileWidth(shape, v, opts), imageWidth ?? 0, what);
        const out = await runKernel(
          what,
          variantSource(shape, v, opts),
          "weightGrad",
          [
            "step",
            new Uint32Array(bytes.buffer),
            { texture: new Float32Array(0), width: 1 },
            g,
            { texture: g, width: n / 4 },
            w,
            b,
            nonzeroRowLists(bytes, start, rows, k, v.block[0], maxRows, order),
          ],
          { start, count: rows, lr },
          dispatchSize(shape, v, rows),
        );
        assertClose(new Float32Array(out.get(5)!), w.map((x, i) => x - lr * gw[i]), `${what} W`);
        assertClose(new Float32Array(out.get(6)!), b.map((x, i) => x - lr * gb[i]), `${what} b`);
      }
    }
    // Empty lists: the kernel takes its rows from them, so nothing changes.
    const shape: MatmulShape = { op: "weightGrad", k: 48, n: 20, aBytes: true };
    const w = randoms(48 * 20, 65);
    const out = await runKernel(
      `${v.name} empty row lists`,
      variantSource(shape, v, { zeroLists: { maxRows } }),
      "weightGrad",
      [
        "step",
        new Uint32Array(sparseBytes(8, 48, 66).buffer),
        { texture: new Float32Array(0), width: 1 },
        randoms(8 * 20, 67),
        { texture: randoms(8 * 20, 67), width: 5 },
        w,
        randoms(20, 68),
        new Uint32Array(3 * (1 + maxRows)),
      ],
      { start: 0, count: 8, lr: 0.5 },
      dispatchSize(shape, v, 8),
    );
    assert.deepEqual(new Float32Array(out.get(5)!), w);
  });
}

Deno.test("fast kernels: softmax + cross-entropy + gradient, fused with the output layer", async () => {
  for (const [k, rows, start] of [[12, 13, 5], [128, 1, 0], [7, 70, 2]]) {
    const c = 10;
    const act = new Float32Array(relu(randoms(rows * k, 11)));
    const w = randoms(k * c, 12);
    const b = randoms(c, 13);
    const labels = new Uint32Array(start + rows + 3).map((_, i) => (i * 7) % 10);
    const ys = labels.subarray(start, start + rows);
    const logits = addBias(matmul(act, w, rows, k, c), b);
    const p = softmax(logits, rows, c);
    const wantLoss = crossEntropy(p, ys, c);
    const wantDz = softmaxCrossEntropyBackward(p, ys, c);
    const losses = new Float32Array(start + rows + 3).fill(-1);
    const out = await runKernel(
      `outputLayer K${k} rows${rows}`,
      unrollLoops(specialize(kernelSource("outputLayer"), { K: k, C: c })),
      "outputLayer",
      [
        "step",
        act,
        w,
        b,
        labels,
        losses,
        new Float32Array(rows * c).fill(NaN),
        new Float32Array(rows * k + 8).fill(NaN),
      ],
      { start, count: rows, lr: 0 },
      [Math.ceil(rows / 64), 1],
    );
    const gotLoss = new Float32Array(out.get(5)!);
    assertClose(gotLoss.subarray(start, start + rows), wantLoss, "loss");
    assert.equal(gotLoss[start - 1] ?? -1, -1, "loss slots before the batch untouched");
    assert.equal(gotLoss[start + rows], -1, "loss slots after the batch untouched");
    assertClose(new Float32Array(out.get(6)!), wantDz, "dz");
    // ∂act = (∂z · Wᵀ) ⊙ (act > 0), W: [k, c]; act has zeros (ReLU of ±).
    const gotDact = new Float32Array(out.get(7)!);
    assertClose(gotDact, reluBackward(matmulTransB(wantDz, w, rows, c, k), act), "dact");
    assert.ok(gotDact.subarray(rows * k).every(Number.isNaN), "dact past the batch untouched");
  }
});

Deno.test("fast kernels: outputLayerRows (16 lanes a row, + ∂act) equals the CPU", async () => {
  // Rows not a multiple of the 4 per workgroup, K not a multiple of the 16 lanes.
  for (const [k, rows, start] of [[12, 13, 5], [128, 1, 0], [7, 70, 2], [128, 37, 3]]) {
    const c = 10;
    const act = new Float32Array(relu(randoms(rows * k, 21)));
    const w = randoms(k * c, 22);
    const b = randoms(c, 23);
    const labels = new Uint32Array(start + rows + 3).map((_, i) => (i * 3) % 10);
    const ys = labels.subarray(start, start + rows);
    const p = softmax(addBias(matmul(act, w, rows, k, c), b), rows, c);
    const dz = softmaxCrossEntropyBackward(p, ys, c);
    const losses = new Float32Array(start + rows + 3).fill(-1);
    const out = await runKernel(
      `outputLayerRows K${k} rows${rows}`,
      specialize(kernelSource("outputLayerRows"), { K: k, C: c, ROWS: 4 }),
      "outputLayerRows",
      [
        "step",
        act,
        w,
        b,
        labels,
        losses,
        new Float32Array(rows * c + 8).fill(NaN),
        new Float32Array(rows * k + 8).fill(NaN),
      ],
      { start, count: rows, lr: 0 },
      [Math.ceil(rows / 4), 1],
    );
    const gotLoss = new Float32Array(out.get(5)!);
    assertClose(gotLoss.subarray(start, start + rows), crossEntropy(p, ys, c), "loss");
    assert.equal(gotLoss[start - 1] ?? -1, -1, "loss slots before the batch untouched");
    assert.equal(gotLoss[start + rows], -1, "loss slots after the batch untouched");
    const gotDz = new Float32Array(out.get(6)!);
    assertClose(gotDz, dz, "dz");
    assert.ok(gotDz.subarray(rows * c).every(Number.isNaN), "dz past the batch untouched");
    // ∂act = (∂z · Wᵀ) ⊙ (act > 0), W: [k, c]; act has zeros (ReLU of ±).
    const gotDact = new Float32Array(out.get(7)!);
    assertClose(gotDact, reluBackward(matmulTransB(dz, w, rows, c, k), act), "dact");
    assert.ok(gotDact.subarray(rows * k).every(Number.isNaN), "dact past the batch untouched");
  }
});

Deno.test("fast kernels: split-K weight gradient (chunks, then their sum) equals the CPU", async () => {
  const chunk = 32;
  for (const [k, n] of [[12, 10], [7, 3], [128, 10]]) {
    for (const rows of [1, 13, 32, 33, 70]) {
      for (const inPlace of [true, false]) {
        const lr = 0.5;
        const a = randoms(rows * k, 31, 0.3);
        const g = randoms(rows * n, 32);
        const w = randoms(k * n, 33);
        const b = randoms(n, 34);
        const gw = matmulTransA(a, g, rows, k, n);
        const gb = columnSums(g, rows, n);
        const consts = { K: k, N: n, CHUNK: chunk };
        const width = k * n + n;
        const what = `split K${k} N${n} rows${rows}${inPlace ? "" : " (store)"}`;
        const out = await runKernel(
          what,
          [
            specialize(kernelSource("weightGradSplit"), consts),
            specialize(kernelSource("weightGradSplitSum"), {
              ...consts,
              UPDATE_IN_PLACE: inPlace,
            }),
          ],
          "split",
          ["step", a, g, new Float32Array(Math.ceil(rows / chunk) * width).fill(NaN), w, b],
          { start: 0, count: rows, lr },
          [[Math.ceil(width / 64), Math.ceil(rows / chunk)], [Math.ceil(width / 64), 1]],
        );
        const wantW = inPlace ? w.map((x, i) => x - lr * gw[i]) : gw;
        const wantB = inPlace ? b.map((x, i) => x - lr * gb[i]) : gb;
        assertClose(new Float32Array(out.get(4)!), wantW, `${what} W`);
        assertClose(new Float32Array(out.get(5)!), wantB, `${what} b`);
      }
    }
  }
});

Deno.test("fast kernels: weightGradRow (one row of W per invocation) equals the CPU", async () => {
  // K not a multiple of the 64 invocations of a workgroup; the last partial batch (rows 13).
  for (const [k, n] of [[12, 10], [7, 3], [130, 10]]) {
    for (const rows of [1, 13, 70]) {
      for (const inPlace of [true, false]) {
        const lr = 0.5;
        const a = randoms(rows * k, 41, 0.3);
        const g = randoms(rows * n, 42);
        const w = randoms(k * n, 43);
        const b = randoms(n, 44);
        const gw = matmulTransA(a, g, rows, k, n);
        const gb = columnSums(g, rows, n);
        const what = `row K${k} N${n} rows${rows}${inPlace ? "" : " (store)"}`;
        const source = specialize(kernelSource("weightGradRow"), {
          K: k,
          N: n,
          UPDATE_IN_PLACE: inPlace,
        });
        const out = await runKernel(
          what,
          unrollLoops(source),
          "weightGrad",
          [
            "step",
            a,
            { texture: new Float32Array(0), width: 1 },
            g,
            {
              texture: new Float32Array(0),
              width: 1,
            },
            w,
            b,
          ],
          { start: 0, count: rows, lr },
          [Math.ceil(k / 64), 1],
        );
        const wantW = inPlace ? w.map((x, i) => x - lr * gw[i]) : gw;
        const wantB = inPlace ? b.map((x, i) => x - lr * gb[i]) : gb;
        assertClose(new Float32Array(out.get(5)!), wantW, `${what} W`);
        assertClose(new Float32Array(out.get(6)!), wantB, `${what} b`);
      }
    }
  }
});

Deno.test("fast kernels: outputLogits, then argmaxConfusion counts (label, argmax) pairs like the CPU", async () => {
  const k = 16, c = 10, rows = 150, start = 4;
  const act = new Float32Array(relu(randoms((start + rows) * k, 14)));
  const w = randoms(k * c, 15);
  const b = randoms(c, 16);
  const labels = new Uint32Array(start + rows).map((_, i) => (i * 3) % 10);
  const actRows = act.subarray(0, rows * k); // the kernel reads rows 0.. of act
  const logits = addBias(matmul(actRows, w, rows, k, c), b);
  // Make some predictions right: set the label to the argmax for every third row.
  let want = 0;
  const preds: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (logits[r * c + j] > logits[r * c + best]) best = j;
    if (r % 3 === 0) labels[start + r] = best;
    if (labels[start + r] === best) want++;
    preds.push(best);
  }
  const wantMatrix = confusionMatrix(preds, labels.subarray(start, start + rows), c);
  const batch = { start, count: rows, lr: 0 };
  const logitsOut = await runKernel(
    "outputLogits",
    specialize(kernelSource("outputLogits"), { K: k, C: c }),
    "logits",
    ["step", act, w, b, new Float32Array(rows * c).fill(NaN)],
    batch,
    [Math.ceil(rows / 64), 1],
  );
  const gotLogits = new Float32Array(logitsOut.get(4)!);
  for (let i = 0; i < rows * c; i++) {
    assert.ok(
      Math.abs(gotLogits[i] - logits[i]) <= 1e-5,
      `logit ${i}: ${gotLogits[i]} vs ${logits[i]}`,
    );
  }
  const out = await runKernel(
    "argmaxConfusion",
    specialize(kernelSource("argmaxConfusion"), { CLASSES: c }),
    "confusion",
    ["step", gotLogits, labels, new Uint32Array(c * c)],
    batch,
    [Math.ceil(rows / 64), 1],
  );
  const got = new Uint32Array(out.get(3)!);
  assert.deepEqual(Array.from(got), wantMatrix.flat());
  let trace = 0;
  for (let t = 0; t < c; t++) trace += got[t * c + t];
  assert.equal(trace, want);
});

Deno.test("fast kernels: sumLosses sums the first n losses", async () => {
  for (const n of [1, 255, 1000, 60000]) {
    const losses = randoms(n + 5, 17).map((x) => Math.abs(x) * 3);
    let want = 0;
    for (let i = 0; i < n; i++) want += losses[i];
    const out = await runKernel(
      `sumLosses n${n}`,
      kernelSource("sumLosses"),
      "sum",
      ["step", losses, new Float32Array(4).fill(NaN)],
      { start: 0, count: n, lr: 0 },
      [1, 1],
    );
    const got = new Float32Array(out.get(2)!)[0];
    assert.ok(Math.abs(got - want) <= 1e-5 * want, `n=${n}: ${got} vs ${want}`);
  }
});

Deno.test("fast matmul: specialize sets consts and refuses unknown ones", () => {
  const src = "const K = 784u;\nconst A_BYTES = true;\nfn f() {}\n";
  assert.equal(
    specialize(src, { K: 20, A_BYTES: false }),
    "const K = 20u;\nconst A_BYTES = false;\nfn f() {}\n",
  );
  assert.throws(() => specialize(src, { N: 3 }), /const N/);
  // Every variant's file has every const its host sets, for every op (8 rows per invocation:
  // the forward kernel only).
  for (const v of VARIANTS) {
    for (const op of ["forward", "inputGrad", "weightGrad"] as const) {
      if (v.rm !== undefined && op !== "forward") continue;
      const shape = { op, k: 784, n: 512, aBytes: op !== "inputGrad" };
      assert.ok(variantSource(shape, v).includes("const K = 784u;"), `${op} ${v.name}`);
    }
  }
});

Deno.test("fast matmul: unrollLoops writes out marked loops, in order, and refuses others", () => {
  const src = [
    "const R = 2u;",
    "const Q = R * 3u / 2u;",
    "  // unroll",
    "  for (var i = 0u; i < R; i++) {",
    "    // unroll",
    "    for (var j = 0u; j < Q; j++) {",
    "      s[i][j] += a[i] * b[j + i];",
    "    }",
    "  }",
    "for (var k = 0u; k < 9u; k++) {}",
    "",
  ].join("\n");
  const out = unrollLoops(src);
  const body = [...out.matchAll(/s\[(\d)u\]\[(\d)u\] \+= a\[\1u\] \* b\[\2u \+ \1u\];/g)];
  assert.deepEqual(body.map((m) => `${m[1]}${m[2]}`), ["00", "01", "02", "10", "11", "12"]);
  assert.ok(!out.includes("// unroll") && !out.includes("var i") && !out.includes("var j"));
  assert.ok(out.includes("for (var k = 0u; k < 9u; k++) {}"), "unmarked loops stay");
  assert.equal(evalConstInt("(R + 6u) % 5u - 1u", new Map([["R", 2]])), 2);
  assert.equal(evalConstInt("R / 0u", new Map([["R", 2]])), undefined);
  assert.equal(evalConstInt("select(1u, 2u, true)", new Map()), undefined);
  assert.throws(() => unrollLoops("// unroll\nfor (var i = 1u; i < 4u; i++) {\n}\n"), /unroll/);
  assert.throws(() => unrollLoops("// unroll\nfor (var i = 0u; i < X; i++) {\n}\n"), /unroll/);
  // The texture kernels keep no marked loop rolled.
  for (const op of ["forward", "weightGrad"] as const) {
    const code = variantSource(
      { op, k: 784, n: 512, aBytes: true },
      variantByName("texture-16x16"),
    );
    assert.ok(!/^\s*\/\/ unroll$/m.test(code) && !/for \(var [ijt] /.test(code), op);
  }
});

Deno.test("fast matmul: textures only where shapes and rows fit; defaults by adapter type", () => {
  const fwd: MatmulShape = { op: "forward", k: 784, n: 512, aBytes: true };
  const tex = VARIANTS.find((v) => v.name === "texture-16x16")!;
  assert.ok(variantFits(tex, fwd, 500, 8192));
  assert.ok(!variantFits(tex, fwd, 9000, 8192), "activation textures higher than the limit");
  assert.ok(!variantFits(tex, { ...fwd, k: 19 }, 500, 8192), "K not a multiple of 4");
  for (const v of VARIANTS.filter((v) => v.family === "registers" || v.family === "tiled")) {
    assert.ok(variantFits(v, { ...fwd, k: 19, n: 23 }, 60000, 8192));
  }
  assert.equal(defaultVariant(fwd, true, 500, 8192).name, "texture-16x16");
  assert.equal(defaultVariant(fwd, false, 500, 8192).name, "tiled-16");
  assert.equal(defaultVariant(fwd, true, 60000, 8192).name, "registers-16x16");
  // The engine copies operands into textures in 256-byte rows: a layer 32 wide (W1's rows, or
  // ∂z1's) runs the kernel fine but cannot be copied, so the engine takes registers there.
  for (const shape of [{ ...fwd, n: 32 }, { ...fwd, op: "weightGrad" as const, n: 32 }]) {
    assert.ok(kernelFits(tex, shape, 500, 8192), shape.op);
    assert.ok(!variantFits(tex, shape, 500, 8192), shape.op);
    assert.equal(defaultVariant(shape, true, 500, 8192).name, "registers-16x16");
  }
  const inputGrad: MatmulShape = { op: "inputGrad", k: 32, n: 64, aBytes: false };
  assert.ok(kernelFits(tex, inputGrad, 500, 8192) && !variantFits(tex, inputGrad, 500, 8192));
  assert.ok(variantFits(tex, { ...inputGrad, k: 64, n: 32 }, 500, 8192), "∂z2 rows of 64 floats");
});

Deno.test("fast matmul: the tuner tries the blocked family on GPUs only, where K and N fit; textures only on CPUs", () => {
  const fwd: MatmulShape = { op: "forward", k: 784, n: 512, aBytes: true };
  const names = (software: boolean, shape = fwd) =>
    tuneCandidates(shape, software, 500, 8192).map((v) => v.name);
  const blocked = [
    "blocked-64x64",
    "blocked-32x64",
    "blocked-32x32",
    "blocked-16x64",
    "blocked-32x16",
    "blocked-16x32",
    "blocked-32x32-k8",
    "blocked-32x64-r8",
    "blocked-64x64-r8",
  ];
  for (const name of blocked) {
    assert.ok(names(false).includes(name), `${name} on a GPU`);
    assert.ok(!names(true).includes(name), `${name} left out on a CPU adapter`);
    assert.ok(!names(false, { ...fwd, n: 510 }).includes(name), `${name}: N not a multiple of 4`);
  }
  // 8 rows per invocation: the forward kernel only.
  for (const op of ["inputGrad", "weightGrad"] as const) {
    const shape = { ...fwd, op, aBytes: op === "weightGrad" };
    assert.ok(names(false, shape).includes("blocked-32x32-k8"), `blocked-32x32-k8 for ${op}`);
    assert.ok(!names(false, shape).some((n) => n.endsWith("-r8")), `no -r8 for ${op}`);
  }
  // On a CPU adapter (timed only with --tune) the texture variants that fit, nothing else.
  assert.deepEqual(
    names(true),
    VARIANTS.filter((v) => v.family === "texture" && variantFits(v, fwd, 500, 8192)).map((v) =>
      v.name
    ),
  );
  const wg = variantByName("blocked-32x64");
  assert.deepEqual(dispatchSize({ op: "weightGrad", k: 784, n: 512, aBytes: true }, wg, 500), [
    8,
    25,
  ]);
  assert.deepEqual(dispatchSize(fwd, wg, 500), [8, 16]);
});

Deno.test("fast matmul: pickFastest screens, then keeps the fastest finalist", async () => {
  // A made-up adapter: ms per dispatch per row for each variant, 10 ms readback.
  const perRow: Record<string, number> = {
    "registers-4x4": 0.5,
    "registers-8x8": 0.2,
    "registers-16x16": 0.1,
    "tiled-16": 5,
    "blocked-64x64": 6,
    "blocked-32x64": 6,
    "blocked-32x32": 6,
    "blocked-16x64": 6,
    "blocked-32x16": 6,
    "blocked-16x32": 6,
    "blocked-32x32-k8": 6,
    "blocked-32x64-r8": 6,
    "blocked-64x64-r8": 6,
    "texture-8x8": 0.05,
    "texture-16x8": 0.04,
    "texture-16x16": 0.03,
    "texture-32x16": 0.035,
  };
  const timed: string[] = [];
  const result = await pickFastest(
    [...VARIANTS],
    (v, rows, reps) => {
      timed.push(`${v.name}@${rows}x${reps}`);
      return Promise.resolve(10 + reps * rows * perRow[v.name]);
    },
    500,
    16,
  );
  assert.equal(result.best.name, "texture-16x16");
  assert.equal(result.overheadMs, 10);
  assert.ok(
    !timed.some((t) => t.startsWith("tiled-16@500")),
    "a slow variant is not timed in full",
  );
  // Screens on 16 rows: 0.48, 0.56, 0.64, 0.8 ms are within 1.5 × 0.48 + 0.5; 1.6 ms is not.
  assert.deepEqual(Object.keys(result.ms).sort(), [
    "texture-16x16",
    "texture-16x8",
    "texture-32x16",
    "texture-8x8",
  ]);
});

Deno.test("fast matmul: the tuning cache survives bad files and read-only places", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-cache-" });
  try {
    const path = `${dir}/tune-cache.json`;
    assert.deepEqual(readTuneCache(path), {});
    await Deno.writeTextFile(path, "{not json");
    assert.deepEqual(readTuneCache(path), {});
    await Deno.writeTextFile(path, "[1, 2]");
    assert.deepEqual(readTuneCache(path), {});
    const cache = { "some adapter": { "forward K784 N512 rows500 bytes": "tiled-16" } };
    assert.ok(await writeTuneCache(path, cache));
    assert.deepEqual(readTuneCache(path), cache);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["tune-cache.json"]);
    assert.equal(await writeTuneCache(`${dir}/missing/dir/cache.json`, cache), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Every blocked variant at the model's shapes

/**
 * The slots of the 784 → 512 → 128 → 10 model (as `slotShapes` gives them:
 * layer 1 reads image bytes), at 13 rows: one partial row tile, to keep
 * llvmpipe's time small (the shapes' K and N are what the variants unroll and
 * tile differently from the small cases above). Against the CPU only: the
 * small cases above check the bits against tiled-16's.
 */
const MODEL_SLOTS: MatmulShape[] = [
  { op: "forward", k: 784, n: 512, aBytes: true },
  { op: "forward", k: 512, n: 128, aBytes: false },
  { op: "inputGrad", k: 128, n: 512, aBytes: false },
  { op: "weightGrad", k: 512, n: 128, aBytes: false },
  { op: "weightGrad", k: 784, n: 512, aBytes: true },
];

/** Runs slot `c` with variant `v` on inputs of `seed`; the outputs and the CPU's. */
async function runModelSlot(v: MatmulVariant, c: Case, seed: number) {
  const { k, n } = c.shape;
  const none = { texture: new Float32Array(0), width: 1 };
  const at = { start: c.start, count: c.rows, lr: 0 };
  const size = dispatchSize(c.shape, v, c.rows);
  const src = variantSource(c.shape, v);
  if (c.shape.op === "forward") {
    const a = operandA(c, seed);
    const w = randoms(k * n, seed + 1).map((x) => x * 0.1);
    const b = randoms(n, seed + 2);
    const out = await runKernel(
      label(v, c),
      src,
      "product",
      [
        "step",
        a.words,
        none,
        w,
        none,
        b,
        new Float32Array(c.rows * n).fill(NaN),
      ],
      at,
      size,
    );
    return { out, bindings: [6], want: [relu(addBias(matmul(a.floats, w, c.rows, k, n), b))] };
  }
  if (c.shape.op === "inputGrad") {
    const g = randoms(c.rows * k, seed);
    const w = randoms(n * k, seed + 1);
    const act = relu(randoms(c.rows * n, seed + 2));
    const out = await runKernel(
      label(v, c),
      src,
      "product",
      [
        "step",
        g,
        none,
        w,
        none,
        new Float32Array(act),
        new Float32Array(c.rows * n).fill(NaN),
      ],
      at,
      size,
    );
    return { out, bindings: [6], want: [reluBackward(matmulTransB(g, w, c.rows, k, n), act)] };
  }
  const lr = 0.5;
  const a = operandA(c, seed);
  const g = randoms(c.rows * n, seed + 1);
  const w = randoms(k * n, seed + 2);
  const b = randoms(n, seed + 3);
  const gw = matmulTransA(a.floats, g, c.rows, k, n);
  const gb = columnSums(g, c.rows, n);
  const out = await runKernel(
    label(v, c),
    src,
    "weightGrad",
    ["step", a.words, none, g, none, w, b],
    { ...at, lr },
    size,
  );
  return {
    out,
    bindings: [5, 6],
    want: [w.map((x, i) => x - lr * gw[i]), b.map((x, i) => x - lr * gb[i])],
  };
}

for (const v of VARIANTS.filter((v) => v.family === "blocked")) {
  Deno.test(`fast kernels: ${v.name} at the model's shapes (784→512→128, 13 rows) equals the CPU`, async () => {
    const slots = MODEL_SLOTS.map((shape): Case => ({
      shape,
      rows: 13,
      start: shape.aBytes ? 3 : 0,
    }))
      .filter((c) => fits(v, c));
    // Every variant runs layer 1's forward at least; the -r8 ones only that op.
    assert.ok(
      slots.length >= (v.rm ? 1 : 4),
      `${v.name} fits ${slots.length} of the model's slots`,
    );
    for (const [i, c] of slots.entries()) {
      const seed = 40 + 5 * i;
      const got = await runModelSlot(v, c, seed);
      got.bindings.forEach((b, j) => {
        assertClose(new Float32Array(got.out.get(b)!), got.want[j], `${label(v, c)} [${b}]`, 1e-4);
      });
    }
  });
}
