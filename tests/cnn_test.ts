/**
 * The CNN: its CPU reference (`shared/model/cnn.ts`) checked with finite
 * differences, each CNN kernel against that reference on awkward shapes, and
 * the GPU engine (`fast/cnn/engine.ts`) against whole CPU training steps — on the
 * real adapter (llvmpipe here), with small shapes.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { createCnnEngine } from "../fast/cnn/engine.ts";
import { type BindingKind, kernelPipeline, specializedSource } from "../fast/kit.ts";
import { trainCnn } from "../fast/cnn/model.ts";
import {
  cloneCnnParams,
  cnnDims,
  cnnForward,
  cnnLossAndGradients,
  type CnnParams,
  cnnPredict,
  type CnnShape,
  cnnTrainStep,
  col2im,
  im2col,
  initCnnParams,
  maxPool,
  maxPoolBackward,
  MNIST_CNN,
  newCnnOptimizerState,
} from "../shared/model/cnn.ts";
import { UsageError } from "../shared/io/errors.ts";
import { type Gpu, openGpu, readBuffer, workgroupGrid } from "../shared/gpu/device.ts";
import { matmul, matmulTransA, matmulTransB, reluBackward } from "../shared/model/mlp.ts";
import type { Dataset } from "../shared/data/dataset.ts";
import {
  OPTIMIZER_DEFAULTS,
  type OptimizerName,
  type OptimizerOptions,
} from "../shared/model/optim.ts";
import { mulberry32, shuffledIndices } from "../shared/model/rng.ts";

/** A 13×13 input with 3×3 kernels: both pools drop an odd last row and column. */
const TINY: CnnShape = { height: 13, width: 13, kernel: 3, c1: 3, c2: 5, classes: 4 };

/** A `Dataset` of `shape`'s image size and classes: these training images and labels, and a test set. */
function dataOf(
  shape: CnnShape,
  [trainImages, trainLabels]: [Uint8Array, Uint8Array],
  [testImages, testLabels]: [Uint8Array, Uint8Array] = [new Uint8Array(0), new Uint8Array(0)],
): Dataset {
  const { height, width, classes } = shape;
  return {
    source: "synthetic",
    height,
    width,
    classes,
    trainImages,
    trainLabels,
    testImages,
    testLabels,
  };
}

function randoms(n: number, seed: number, lo = -1, hi = 1): Float32Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

function randomBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

function randomLabels(n: number, classes: number, seed: number): Uint8Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * classes));
}

/** Pixels of images `ids` (bytes, `pixels` each) as floats byte/255. */
function pixels(images: Uint8Array, ids: ArrayLike<number>, perImage: number): Float64Array {
  const x = new Float64Array(ids.length * perImage);
  for (let i = 0; i < ids.length; i++) {
    for (let p = 0; p < perImage; p++) x[i * perImage + p] = images[ids[i] * perImage + p] / 255;
  }
  return x;
}

/**
 * Element by element, |actual − expected| ≤ atol + rtol·|expected| (and
 * finite): a small entry may not hide behind the tensor's largest one.
 */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol: number; rtol: number },
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(Array.from(expected).some((e) => e !== 0), `${what}: the expected values are all zero`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(
      err <= tol.atol + tol.rtol * Math.abs(expected[i]),
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} ` +
        `(|err| ${err} > ${tol.atol} + ${tol.rtol} × |expected|)`,
    );
  }
}

/** A device for one test; `using` destroys it when the test ends, passed or failed. */
async function openTestGpu(): Promise<{ gpu: Gpu; errors: string[] } & Disposable> {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  return { gpu, errors, [Symbol.dispose]: () => gpu.device.destroy() };
}

// ---------------------------------------------------------------------------
// CPU reference

Deno.test("cnnDims: the MNIST CNN's feature maps", () => {
  const d = cnnDims(MNIST_CNN);
  assert.deepEqual([d.h1, d.p1h, d.h2, d.p2h, d.k1, d.k2, d.features], [
    24,
    12,
    8,
    4,
    25,
    400,
    512,
  ]);
  assert.throws(() => cnnDims({ ...TINY, height: 6 }), RangeError);
});

Deno.test("initCnnParams: He-uniform bounds, zero biases, same numbers for the same seed", () => {
  const p = initCnnParams(7, TINY);
  const d = cnnDims(TINY);
  const fanIns = [d.k1, d.k2, d.features];
  p.weights.forEach((w, l) => {
    const limit = Math.sqrt(6 / fanIns[l]);
    assert.ok(w.every((v) => Math.abs(v) <= limit), `layer ${l} within ±${limit}`);
    assert.ok(w.some((v) => Math.abs(v) > limit / 2), `layer ${l} spreads`);
  });
  assert.ok(p.biases.every((b) => b.every((v) => v === 0)));
  assert.deepEqual(initCnnParams(7, TINY), p);
  assert.notDeepEqual(initCnnParams(8, TINY).weights[0], p.weights[0]);
});

Deno.test("im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>", () => {
  const [b, h, w, c, k] = [2, 6, 5, 3, 3];
  const x = randoms(b * h * w * c, 1);
  const cols = im2col(x, b, h, w, c, k);
  const g = randoms(cols.length, 2);
  const gx = col2im(g, b, h, w, c, k);
  let lhs = 0, rhs = 0;
  for (let i = 0; i < cols.length; i++) lhs += cols[i] * g[i];
  for (let i = 0; i < x.length; i++) rhs += x[i] * gx[i];
  assert.ok(Math.abs(lhs - rhs) < 1e-9, `${lhs} vs ${rhs}`);
  // And one entry by hand: cols[(b=1, oy=2, ox=1), (ky=1, kx=2, c=0)] = x[1, 3, 3, 0].
  const ho = h - k + 1, wo = w - k + 1;
  assert.equal(
    cols[((1 * ho + 2) * wo + 1) * k * k * c + (1 * k + 2) * c],
    x[((1 * h + 3) * w + 3) * c],
  );
});

Deno.test("finite differences agree with cnnLossAndGradients on a tiny CNN", () => {
  const batch = 3;
  const p32 = initCnnParams(11, TINY);
  // Float64 parameters, so that a perturbation of 1e-6 is not rounded away;
  // small random biases, so that no ReLU input sits exactly at zero.
  const params: CnnParams = {
    shape: TINY,
    weights: p32.weights.map((w) => Float64Array.from(w)),
    biases: p32.biases.map((b, l) => Float64Array.from(randoms(b.length, 20 + l, -0.1, 0.1))),
  };
  const x = randoms(batch * TINY.height * TINY.width, 3, 0, 1);
  const labels = [0, 3, 1];
  const loss = () => cnnLossAndGradients(params, x, labels).loss;
  const grads = cnnLossAndGradients(params, x, labels);
  const h = 1e-6;
  let checked = 0;
  const tensors: [string, Float32Array | Float64Array, Float64Array][] = [];
  for (let l = 0; l < 3; l++) {
    tensors.push([`W${l + 1}`, params.weights[l], grads.weights[l]]);
    tensors.push([`b${l + 1}`, params.biases[l], grads.biases[l]]);
  }
  for (const [name, t, g] of tensors) {
    let nonzero = 0;
    for (let i = 0; i < t.length; i++) {
      const keep = t[i];
      t[i] = keep + h;
      const up = loss();
      t[i] = keep - h;
      const down = loss();
      t[i] = keep;
      const fd = (up - down) / (2 * h);
      assert.ok(
        Math.abs(fd - g[i]) <= 1e-6 + 1e-4 * Math.abs(g[i]),
        `${name}[${i}]: finite difference ${fd}, backward ${g[i]}`,
      );
      if (g[i] !== 0) nonzero++;
      checked++;
    }
    assert.ok(nonzero > 0, `${name} has a non-zero gradient`);
  }
  assert.equal(checked, 9 * 3 + 3 + 27 * 5 + 5 + 5 * 4 + 4);
});

// ---------------------------------------------------------------------------
// Kernels, one at a time

interface Binding {
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;
  write?: boolean;
}

/**
 * Runs `kernel` once on one batch `{start: 0, count}` (binding 0, dynamic
 * offset), `bindings` at 1, 2, … in order; returns every binding read back.
 */
async function runKernel(
  gpu: Gpu,
  kernel: string,
  constants: Record<string, number>,
  count: number,
  threads: number,
  bindings: Binding[],
): Promise<ArrayBuffer[]> {
  const { device } = gpu;
  const uniform = device.createBuffer({
    label: `test ${kernel} batch uniform`,
    size: 256,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniform, 0, new Uint32Array([0, count]));
  const buffers = bindings.map(({ data }, i) => {
    const buf = device.createBuffer({
      label: `test ${kernel} binding ${i + 1}`,
      size: Math.max(4, data.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  });
  const kinds: BindingKind[] = [
    "dynamic",
    ...bindings.map((b): BindingKind => b.write ? "write" : "read"),
  ];
  const pipeline = await kernelPipeline(device, kernel, kinds, constants);
  const bindGroup = device.createBindGroup({
    label: `test ${kernel} bind group`,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: uniform, size: 16 } },
      ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
    ],
  });
  const enc = device.createCommandEncoder({ label: `test ${kernel} encoder` });
  const pass = enc.beginComputePass({ label: `test ${kernel} pass` });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup, [0]);
  pass.dispatchWorkgroups(...workgroupGrid(threads, 64));
  pass.end();
  device.queue.submit([enc.finish()]);
  const out = [];
  for (const b of buffers) out.push(await readBuffer(device, b));
  for (const b of [uniform, ...buffers]) b.destroy();
  return out;
}

/** im2col and col2im kernels (`suffix` "" or "Vec4") on B 3, 7×6, k 3, rows padded to `stride`. */
async function checkIm2col(suffix: string, c: number, stride: number) {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const [b, h, w, k] = [3, 7, 6, 3];
  const kkc = k * k * c, per = suffix ? 4 : 1;
  const constants = { H: h, W: w, C: c, K: k, COLS: stride };
  const x = randoms(b * h * w * c, 5);
  const cols = im2col(x, b, h, w, c, k);
  const rows = cols.length / kkc;
  const padded = new Float64Array(rows * stride);
  for (let r = 0; r < rows; r++) padded.set(cols.subarray(r * kkc, (r + 1) * kkc), r * stride);
  const [, gotCols] = await runKernel(gpu, `im2col${suffix}`, constants, b, padded.length / per, [
    { data: x },
    { data: randoms(padded.length, 7), write: true }, // garbage: padding must be zeroed
  ]);
  assertClose(new Float32Array(gotCols), padded, { atol: 0, rtol: 0 }, "im2col");

  const g = randoms(cols.length, 6);
  const gx = col2im(g, b, h, w, c, k);
  const gPadded = randoms(rows * stride, 8); // padding columns hold garbage, to be ignored
  for (let r = 0; r < rows; r++) gPadded.set(g.subarray(r * kkc, (r + 1) * kkc), r * stride);
  const [, gotGx] = await runKernel(gpu, `col2im${suffix}`, constants, b, gx.length / per, [
    { data: gPadded },
    { data: new Float32Array(gx.length), write: true },
  ]);
  assertClose(new Float32Array(gotGx), gx, { atol: 1e-6, rtol: 1e-5 }, "col2im");
  assert.deepEqual(errors, []);
}

Deno.test("im2col and col2im kernels equal the CPU reference (C 3, rows 27 padded to 29)", async () => {
  await checkIm2col("", 3, 29);
});

Deno.test("im2colVec4 and col2imVec4 equal the CPU reference (C 4, rows 36 padded to 40)", async () => {
  await checkIm2col("Vec4", 4, 40);
});

/** maxPool and maxPoolBackward`suffix` against relu → maxPool and its backward, 7×5 with `c` channels. */
async function checkPool(suffix: string, c: number) {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const [b, h, w] = [2, 7, 5];
  const per = suffix ? 4 : 1;
  const constants = { H: h, W: w, C: c };
  // Mostly negative values so that some windows are all ≤ 0 (ReLU output 0, ties).
  const z = randoms(b * h * w * c, 8, -1, 0.6);
  z[0] = z[c] = 0.25; // a tie between two positive values in the first window
  const relu = z.map((v) => Math.max(v, 0));
  const ref = maxPool(relu, b, h, w, c);
  const n = ref.out.length;
  const [, pooled, argmax] = await runKernel(gpu, "maxPool", constants, b, n, [
    { data: z },
    { data: new Float32Array(n), write: true },
    { data: new Uint32Array(n), write: true },
  ]);
  assertClose(new Float32Array(pooled), ref.out, { atol: 0, rtol: 0 }, "pooled");
  assert.deepEqual([...new Uint32Array(argmax)], [...ref.argmax], "argmax");
  assert.ok(ref.out.some((v) => v === 0) && ref.out.some((v) => v > 0));

  const gOut = randoms(n, 9);
  const gz = reluBackward(maxPoolBackward(gOut, ref.argmax, z.length), z);
  const [, , , gotGz] = await runKernel(
    gpu,
    `maxPoolBackward${suffix}`,
    constants,
    b,
    z.length / per,
    [
      { data: gOut },
      { data: Uint32Array.from(ref.argmax) },
      { data: z },
      { data: randoms(z.length, 10), write: true }, // garbage: every element must be written
    ],
  );
  assertClose(new Float32Array(gotGz), gz, { atol: 0, rtol: 0 }, "∂z");
  assert.deepEqual(errors, []);
}

Deno.test("maxPool and maxPoolBackward equal relu → maxPool and its backward (7×5, C 3)", async () => {
  await checkPool("", 3);
});

Deno.test("maxPoolBackwardVec4 equals the backward of relu → maxPool (7×5, C 4)", async () => {
  await checkPool("Vec4", 4);
});

/**
 * The three matmul kernels of a family against the CPU reference: M = count · rows
 * rows (not a multiple of the block), K, N, with the weight gradient split in slices of 8 rows.
 */
async function checkMatmuls(vec4: boolean, K: number, N: number) {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const [count, rows] = [3, 13];
  const M = count * rows, side = vec4 ? 8 : 4, suffix = vec4 ? "Vec4" : "";
  const blocks = (a: number, b: number) => Math.ceil(a / side) * Math.ceil(b / side);
  const a = randoms(M * K, 11);
  const w = randoms((K + 1) * N, 12); // weights, then the bias row
  const constants = { K, N, ROWS_PER_IMAGE: rows };
  const z = matmul(a, w.subarray(0, K * N), M, K, N);
  for (let i = 0; i < z.length; i++) z[i] += w[K * N + (i % N)];
  const [, , gotZ] = await runKernel(gpu, `cnnMatmul${suffix}`, constants, count, blocks(M, N), [
    { data: a },
    { data: w },
    { data: new Float32Array(M * N), write: true },
  ]);
  assertClose(new Float32Array(gotZ), z, { atol: 1e-6, rtol: 1e-5 }, "z = a·W + b");

  const g = randoms(M * N, 13);
  const aOnes = new Float64Array(M * (K + 1));
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) aOnes[m * (K + 1) + k] = a[m * K + k];
    aOnes[m * (K + 1) + K] = 1;
  }
  const dW = matmulTransA(aOnes, g, M, K + 1, N);
  const sliceRows = 8; // 5 slices, the last one partial
  const slices = Math.ceil(M / sliceRows);
  const [, , part] = await runKernel(
    gpu,
    `cnnMatmulTransA${suffix}`,
    { ...constants, SLICE_ROWS: sliceRows },
    count,
    slices * blocks(K + 1, N),
    [{ data: a }, { data: g }, { data: new Float32Array(slices * (K + 1) * N), write: true }],
  );
  const [, gotDw] = await runKernel(
    gpu,
    "cnnSumSlices",
    { LEN: (K + 1) * N, ROWS_PER_IMAGE: rows, SLICE_ROWS: sliceRows },
    count,
    (K + 1) * N,
    [{ data: new Float32Array(part) }, { data: new Float32Array((K + 1) * N), write: true }],
  );
  assertClose(new Float32Array(gotDw), dW, { atol: 1e-6, rtol: 1e-5 }, "∂W (last row ∂b)");

  const ga = matmulTransB(g, w.subarray(0, K * N), M, N, K);
  const [, , gotGa] = await runKernel(
    gpu,
    `cnnMatmulTransB${suffix}`,
    constants,
    count,
    blocks(M, K),
    [
      { data: g },
      { data: w },
      { data: new Float32Array(M * K), write: true },
    ],
  );
  assertClose(new Float32Array(gotGa), ga, { atol: 1e-6, rtol: 1e-5 }, "∂a = g·Wᵀ");
  assert.deepEqual(errors, []);
}

Deno.test("cnnMatmul, cnnMatmulTransA + cnnSumSlices, cnnMatmulTransB equal the CPU reference (M 39, K 7, N 6)", async () => {
  await checkMatmuls(false, 7, 6);
});

Deno.test("the Vec4 (8×8 block) matmul kernels equal the CPU reference (M 39, K 24, N 16)", async () => {
  await checkMatmuls(true, 24, 16);
});

/**
 * `cnnConvWeightGradImage` (conv1's weight gradient read from the image)
 * against sums over the im2col columns on the CPU: 3 images of 9 × 9, a 3 × 3
 * kernel (K 9 padded to 16), 8 channels, slices of 20 rows (7 pixels a line:
 * most slices start inside one). Every row of `part` is checked, the zero
 * padding rows and the bias row included, over a buffer of garbage.
 */
Deno.test("cnnConvWeightGradImage equals the im2col weight gradient on the CPU, per slice, padding rows zero", async () => {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const [count, H, W, KS, KPAD, N, sliceRows] = [3, 9, 9, 3, 16, 8, 20];
  const [HO, WO] = [H - KS + 1, W - KS + 1], M = count * HO * WO;
  const slices = Math.ceil(M / sliceRows);
  const x = randoms(count * H * W, 21), g = randoms(M * N, 22);
  const want = new Float64Array(slices * (KPAD + 1) * N);
  for (let m = 0; m < M; m++) {
    const [b, oy, ox] = [Math.floor(m / (HO * WO)), Math.floor(m / WO) % HO, m % WO];
    const part = Math.floor(m / sliceRows) * (KPAD + 1);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < KS * KS; k++) {
        const pixel = x[(b * H + oy + Math.floor(k / KS)) * W + ox + (k % KS)];
        want[(part + k) * N + n] += pixel * g[m * N + n];
      }
      want[(part + KPAD) * N + n] += g[m * N + n]; // the bias row; rows 9 .. 15 stay 0
    }
  }
  const [, , got] = await runKernel(
    gpu,
    "cnnConvWeightGradImage",
    { H, W, KS, KPAD, N, NV: 2, SLICE_ROWS: sliceRows },
    count,
    slices * KS, // one kernel row × 8 channels an invocation
    [{ data: x }, { data: g }, { data: randoms(want.length, 23), write: true }],
  );
  assertClose(new Float32Array(got), want, { atol: 1e-6, rtol: 1e-5 }, "part");
  assert.deepEqual(errors, []);
});

// ---------------------------------------------------------------------------
// The engine against whole CPU training steps

/** The confusion matrix `[label][predicted]` of `predicted` against `labels`, on the CPU. */
function cpuConfusion(predicted: ArrayLike<number>, labels: ArrayLike<number>, classes: number) {
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) confusion[labels[i]][predicted[i]]++;
  return confusion;
}

/**
 * Trains an epoch of batches on the GPU engine and with the CPU reference
 * from the same parameters, in `order` (given to `setOrder`; without it the
 * images' own order); compares the loss sum and per-image losses, the
 * parameters, and the test pass's count and confusion counts.
 */
async function compareWithReference(
  shape: CnnShape,
  optimizer: OptimizerName,
  nTrain: number,
  batchSize: number,
  lr: number,
  order?: Uint32Array,
  hyper: Partial<OptimizerOptions> = {},
) {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const perImage = shape.height * shape.width;
  const images = randomBytes(nTrain * perImage, 31);
  const labels = randomLabels(nTrain, shape.classes, 32);
  const testImages = randomBytes(9 * perImage, 33);
  const testLabels = randomLabels(9, shape.classes, 34);
  const opts: OptimizerOptions = { ...OPTIMIZER_DEFAULTS, ...hyper, optimizer };
  const params = initCnnParams(5, shape);
  const engine = await createCnnEngine(gpu.device, {
    params,
    batchSize,
    lr,
    optimizer: opts,
    shuffle: order !== undefined,
    data: dataOf(shape, [images, labels], [testImages, testLabels]),
  });
  if (order) engine.setOrder(order);
  else order = Uint32Array.from({ length: nTrain }, (_, i) => i);
  const lossSum = await engine.trainEpoch();
  const losses = await engine.readLosses(0, nTrain);
  const tail = await engine.readLosses(nTrain - 2, 2);
  const got = await engine.readParams();
  const correct = await engine.evaluate();
  const counts = await engine.evaluateConfusion();
  engine.destroy();

  const cpu = cloneCnnParams(params);
  const state = newCnnOptimizerState(opts, cpu);
  const cpuLosses: number[] = [];
  for (let start = 0; start < nTrain; start += batchSize) {
    const ids = order.subarray(start, Math.min(nTrain, start + batchSize));
    const g = cnnTrainStep(
      cpu,
      pixels(images, ids, perImage),
      [...ids].map((i) => labels[i]),
      lr,
      opts,
      state,
    );
    cpuLosses.push(...g.losses);
  }
  const cpuSum = cpuLosses.reduce((a, b) => a + b);
  assert.ok(Math.abs(lossSum - cpuSum) <= 1e-5 * cpuSum, `loss sum ${lossSum} vs ${cpuSum}`);
  assertClose(
    losses,
    cpuLosses,
    { atol: 1e-7, rtol: 1e-5 },
    "per-image losses, by position in the order",
  );
  assert.deepEqual([...tail], [...losses.subarray(nTrain - 2)], "readLosses(start, count)");
  for (let l = 0; l < 3; l++) {
    // Compare what the steps changed, element by element.
    const delta = (p: CnnParams, which: "weights" | "biases") =>
      Array.from(p[which][l], (v, i) => v - params[which][l][i]);
    assertClose(
      delta(got, "weights"),
      delta(cpu, "weights"),
      { atol: 1e-7, rtol: 1e-4 },
      `ΔW${l + 1}`,
    );
    assertClose(
      delta(got, "biases"),
      delta(cpu, "biases"),
      { atol: 1e-7, rtol: 1e-4 },
      `Δb${l + 1}`,
    );
  }
  const predicted = cnnPredict(got, pixels(testImages, [...Array(9).keys()], perImage), 9);
  // The CPU's own prediction from the GPU's parameters (ties aside, the same count).
  assert.equal(
    correct,
    predicted.filter((p, i) => p === testLabels[i]).length,
    "correct test images",
  );
  assert.deepEqual(counts.confusion, cpuConfusion(predicted, testLabels, shape.classes));
  assert.equal(counts.correct, correct, "evaluate is the confusion's trace");
  assert.deepEqual(errors, []);
}

for (const optimizer of ["sgd", "momentum", "adam"] as const) {
  Deno.test(`engine, tiny CNN, ${optimizer}: 3 steps (shuffled, last batch partial) equal the CPU reference`, async () => {
    await compareWithReference(
      TINY,
      optimizer,
      10,
      4,
      optimizer === "adam" ? 0.01 : 0.1,
      shuffledIndices(10, 4),
    );
  });
}

Deno.test("engine, tiny CNN, adamw (λ = 5): 3 steps (shuffled, last batch partial) equal the CPU reference", async () => {
  // lr·λ = 5% a step: the decoupled decay moves a weight about as much as Adam's step does.
  await compareWithReference(TINY, "adamw", 10, 4, 0.01, shuffledIndices(10, 4), {
    weightDecay: 5,
  });
});

Deno.test("engine, 8-channel CNN (vec4 kernels, conv1's im2col padded 9 → 16), adam: 3 steps equal the CPU reference", async () => {
  const shape = { ...TINY, c1: 8, c2: 8, classes: 10 };
  await compareWithReference(shape, "adam", 10, 4, 0.01, shuffledIndices(10, 6));
});

Deno.test("engine, MNIST-sized CNN (16 and 32 channels), sgd: one step of 3 images (no shuffle) equals the CPU reference", async () => {
  await compareWithReference(MNIST_CNN, "sgd", 3, 3, 0.05);
});

Deno.test("engine: setOrder before each epoch, two shuffled epochs equal the CPU reference on those orders", async () => {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const shape = TINY, perImage = shape.height * shape.width, n = 11, batchSize = 4, lr = 0.1;
  const images = randomBytes(n * perImage, 51);
  const labels = randomLabels(n, shape.classes, 52);
  const opts: OptimizerOptions = { ...OPTIMIZER_DEFAULTS, optimizer: "momentum" };
  const params = initCnnParams(6, shape);
  const engine = await createCnnEngine(gpu.device, {
    params,
    batchSize,
    lr,
    optimizer: opts,
    shuffle: true,
    data: dataOf(shape, [images, labels]),
  });
  const cpu = cloneCnnParams(params);
  const state = newCnnOptimizerState(opts, cpu);
  for (const seed of [1, 2]) {
    const order = shuffledIndices(n, seed);
    engine.setOrder(order);
    const sum = await engine.trainEpoch();
    const losses = await engine.readLosses(0, n);
    const cpuLosses: number[] = [];
    for (let start = 0; start < n; start += batchSize) {
      const ids = order.subarray(start, Math.min(n, start + batchSize));
      const x = pixels(images, ids, perImage);
      const g = cnnTrainStep(cpu, x, [...ids].map((i) => labels[i]), lr, opts, state);
      cpuLosses.push(...g.losses);
    }
    assertClose(
      losses,
      cpuLosses,
      { atol: 1e-7, rtol: 1e-5 },
      `epoch ${seed}: per-image losses in its order`,
    );
    const cpuSum = cpuLosses.reduce((a, b) => a + b);
    assert.ok(Math.abs(sum - cpuSum) <= 1e-5 * cpuSum, `epoch ${seed}: ${sum} vs ${cpuSum}`);
  }
  const got = await engine.readParams();
  for (let l = 0; l < 3; l++) {
    const delta = (p: CnnParams) => Array.from(p.weights[l], (v, i) => v - params.weights[l][i]);
    assertClose(delta(got), delta(cpu), { atol: 1e-7, rtol: 1e-4 }, `ΔW${l + 1} after two epochs`);
  }
  assert.throws(() => engine.setOrder(new Uint32Array(n - 1)), RangeError);
  engine.destroy();
  const unshuffled = await createCnnEngine(gpu.device, {
    params,
    batchSize,
    lr,
    optimizer: opts,
    data: dataOf(shape, [images, labels]),
  });
  assert.throws(() => unshuffled.setOrder(shuffledIndices(n, 1)), /shuffle option/);
  unshuffled.destroy();
  assert.deepEqual(errors, []);
});

Deno.test("engine: the GPU's confusion counts over several test batches (the last partial) equal cnnPredict's", async () => {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const shape = { ...TINY, classes: 5 }, perImage = shape.height * shape.width, nTest = 37;
  const testImages = randomBytes(nTest * perImage, 61);
  const testLabels = randomLabels(nTest, shape.classes, 62);
  const params = initCnnParams(9, shape);
  // Output biases that centre each class's logit over these images, so that the
  // predictions spread over the classes.
  const x = pixels(testImages, [...Array(nTest).keys()], perImage);
  const { logits } = cnnForward(params, x, nTest);
  params.biases[2] = Float32Array.from(
    { length: shape.classes },
    (_, j) => -logits.filter((_, i) => i % shape.classes === j).reduce((a, b) => a + b) / nTest,
  );
  const engine = await createCnnEngine(gpu.device, {
    params,
    batchSize: 8,
    lr: 0.1,
    optimizer: OPTIMIZER_DEFAULTS,
    data: dataOf(
      shape,
      [randomBytes(4 * perImage, 64), randomLabels(4, 5, 65)],
      [testImages, testLabels],
    ),
  });
  const first = await engine.evaluateConfusion();
  const again = await engine.evaluateConfusion(); // cleared in between, not accumulated
  const correct = await engine.evaluate();
  engine.destroy();
  const predicted = cnnPredict(params, x, nTest);
  const expected = cpuConfusion(predicted, testLabels, shape.classes);
  assert.deepEqual(first.confusion, expected);
  assert.deepEqual(again, first);
  assert.equal(correct, expected.reduce((a, row, i) => a + row[i], 0));
  assert.ok(new Set(predicted).size > 1, "more than one class predicted");
  assert.deepEqual(errors, []);
});

Deno.test("a CNN kernel's constant the host leaves unset fails loudly, naming it", () => {
  assert.throws(
    () => specializedSource("cnnMatmul", { K: 8, N: 16 }),
    /kernel cnnMatmul: the host did not set ROWS_PER_IMAGE/,
  );
  assert.throws(() => specializedSource("cnnMatmul", { K: 8, N: 16, ROWS: 1 }), /no 'const ROWS/);
  const src = specializedSource("cnnMatmul", { K: 8, N: 16, ROWS_PER_IMAGE: 1 });
  assert.match(src, /^const ROWS_PER_IMAGE = 1u;$/m);
  assert.doesNotMatch(src, /SET_BY_HOST;/);
});

Deno.test("trainCnn: epochs, loss and accuracy as the CPU reference computes them", async () => {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const shape = TINY;
  const perImage = shape.height * shape.width;
  const data: Dataset = {
    source: "synthetic",
    height: shape.height,
    width: shape.width,
    classes: shape.classes,
    trainImages: randomBytes(23 * perImage, 41),
    trainLabels: randomLabels(23, shape.classes, 42),
    testImages: randomBytes(11 * perImage, 43),
    testLabels: randomLabels(11, shape.classes, 44),
  };
  const lines: string[] = [];
  const config = {
    ...OPTIMIZER_DEFAULTS,
    optimizer: "momentum" as const,
    shuffle: true,
    epochs: 2,
    batchSize: 8,
    lr: 0.05,
    seed: 3,
    trainLimit: 20,
    json: false,
    profile: false,
    noTune: false,
  };
  const summary = await trainCnn(config, {
    gpu,
    data,
    shape,
    log: (l) => lines.push(l),
    tuneCachePath: null,
  });
  assert.equal(summary.trainer, "fast");
  assert.deepEqual(summary.data, { source: "synthetic", train: 20, test: 11 });
  assert.equal(summary.config.model, "cnn", "the summary says which model it trained");
  assert.equal(summary.config.init, undefined, "the CNN has no --init");
  assert.equal(summary.epochs.length, 2);
  assert.equal(lines.length, 5);
  // TINY's channels do not fit the texture variants: the im2col ones, the only choice.
  assert.equal(lines[0], "CNN variants: conv1 im2col, conv2 im2col (default)");
  assert.match(lines[3], /^validation: accuracy = /);
  assert.match(lines[4], /^true\\pred/, "the confusion matrix follows");

  const params = initCnnParams(3, shape);
  const state = newCnnOptimizerState(config, params);
  for (let epoch = 1; epoch <= 2; epoch++) {
    const order = shuffledIndices(20, 3 + epoch);
    let sum = 0;
    for (let start = 0; start < 20; start += 8) {
      const ids = order.subarray(start, Math.min(20, start + 8));
      const g = cnnTrainStep(
        params,
        pixels(data.trainImages, ids, perImage),
        [...ids].map((i) => data.trainLabels[i]),
        config.lr,
        config,
        state,
      );
      for (const v of g.losses) sum += v;
    }
    const gpuLoss = summary.epochs[epoch - 1].loss;
    assert.ok(
      Math.abs(gpuLoss - sum / 20) <= 1e-4 * sum / 20,
      `epoch ${epoch}: ${gpuLoss} vs ${sum / 20}`,
    );
  }
  const x = pixels(data.testImages, [...Array(11).keys()], perImage);
  const correct = cnnPredict(params, x, 11).filter((p, i) => p === data.testLabels[i]).length;
  assert.equal(summary.test.correct, correct);
  assert.equal(summary.test.total, 11);
  const confusion = summary.test.confusion!;
  assert.equal(confusion.length, shape.classes);
  assert.equal(confusion.reduce((a, row, i) => a + row[i], 0), correct, "its trace");
  assert.equal(confusion.flat().reduce((a, b) => a + b), 11);
  assert.deepEqual(errors, []);
});

Deno.test("createCnnEngine: a batch too large for the device's buffers is a one-line UsageError", async () => {
  using opened = await openTestGpu();
  const { gpu, errors } = opened;
  const n = 4;
  await assert.rejects(
    () =>
      createCnnEngine(gpu.device, {
        params: initCnnParams(1),
        batchSize: 100_000,
        lr: 0.01,
        optimizer: OPTIMIZER_DEFAULTS,
        data: dataOf(MNIST_CNN, [new Uint8Array(n * 784), new Uint8Array(n)]),
      }),
    (err: Error) =>
      err instanceof UsageError &&
      /^--batch-size 100000 is too large for the CNN/.test(err.message) &&
      !err.message.includes("\n"),
  );
  assert.deepEqual(errors, []);
});
