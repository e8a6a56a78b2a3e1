/**
 * Each naive kernel of the slow trainer against the CPU reference in
 * `shared/model/mlp.ts`, on the real WebGPU adapter (llvmpipe here), with shapes
 * that are not multiples of the workgroup sizes (8×8 and 64).
 *
 * Kernels run through the trainer's own `dispatch`, so these tests exercise
 * exactly the code path of `deno task slow`.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { type Gpu, openGpu, readBuffer } from "../shared/gpu/device.ts";
import {
  addBias,
  columnSums,
  crossEntropy,
  matmul,
  matmulTransA,
  matmulTransB,
  pixelsToFloats,
  relu,
  reluBackward,
  softmax,
  softmaxCrossEntropyBackward,
} from "../shared/model/mlp.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import {
  dispatch,
  LINEAR_WORKGROUP,
  linearGroups,
  MATMUL_TILE,
  matmulGroups,
  shapeUniform,
  type SlowKernel,
} from "../slow/train.ts";

/** Opens the real adapter; GPU errors are collected so a test can assert there were none. */
async function openTestGpu(): Promise<{ gpu: Gpu; errors: string[] }> {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  return { gpu, errors };
}

/**
 * Runs `kernel` once via the trainer's `dispatch`: every array in `bindings`
 * is uploaded as a storage buffer (bindings 1, 2, …), and every buffer is
 * read back afterwards, in the same order (outputs are passed as zero arrays).
 */
async function runKernel(
  gpu: Gpu,
  kernel: SlowKernel,
  uniform: ArrayBuffer,
  bindings: (Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>)[],
  workgroups: [number, number?],
): Promise<ArrayBuffer[]> {
  const { device } = gpu;
  const buffers = bindings.map((data, i) => {
    const buf = device.createBuffer({
      label: `test ${kernel} binding ${i + 1}`,
      size: Math.max(4, data.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  });
  await dispatch(device, kernel, uniform, buffers, workgroups);
  const out: ArrayBuffer[] = [];
  for (let i = 0; i < buffers.length; i++) {
    out.push(await readBuffer(device, buffers[i], bindings[i].byteLength));
    buffers[i].destroy();
  }
  return out;
}

function randomFloats(n: number, seed: number, scale = 1): Float32Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

function randomLabels(n: number, classes: number, seed: number): Uint32Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(rand() * classes));
}

/** max |gpu − cpu| / max |cpu| over the tensor must be within `rel`. */
function assertClose(gpu: ArrayLike<number>, cpu: ArrayLike<number>, what: string, rel = 1e-5) {
  assert.equal(gpu.length, cpu.length, `${what}: length`);
  let maxDiff = 0, maxRef = 0;
  for (let i = 0; i < cpu.length; i++) {
    assert.ok(Number.isFinite(gpu[i]), `${what}[${i}] = ${gpu[i]} is not finite`);
    maxDiff = Math.max(maxDiff, Math.abs(gpu[i] - cpu[i]));
    maxRef = Math.max(maxRef, Math.abs(cpu[i]));
  }
  assert.ok(maxRef > 0, `${what}: reference is all zeros, the comparison would be empty`);
  assert.ok(
    maxDiff / maxRef <= rel,
    `${what}: max |gpu − cpu| = ${maxDiff} vs max |cpu| = ${maxRef} (rel ${maxDiff / maxRef})`,
  );
}

// Odd sizes: none is a multiple of the 8×8 matmul tile or the 64-wide workgroup.
const M = 13, K = 37, N = 19;

Deno.test("workgroup counts cover every element exactly, spilling into y past 65535", () => {
  assert.deepEqual(linearGroups(1), [1, 1]);
  assert.deepEqual(linearGroups(65), [2, 1]);
  assert.deepEqual(linearGroups(65535 * LINEAR_WORKGROUP + 1), [65535, 2]);
  assert.deepEqual(matmulGroups(13, 19), [3, 2]);
  assert.equal(MATMUL_TILE, 8);
  const u = new DataView(shapeUniform([3, 4], [0.5]));
  assert.equal(u.byteLength, 16);
  assert.deepEqual([u.getUint32(0, true), u.getUint32(4, true), u.getFloat32(8, true)], [
    3,
    4,
    0.5,
  ]);
});

Deno.test("matmul, matmulTransA, matmulTransB match the CPU reference", async () => {
  const { gpu, errors } = await openTestGpu();
  try {
    // C[M, N] = A[M, K] · B[K, N]
    const a = randomFloats(M * K, 1), b = randomFloats(K * N, 2);
    const [, , c] = await runKernel(
      gpu,
      "matmul",
      shapeUniform([M, K, N]),
      [a, b, new Float32Array(M * N)],
      matmulGroups(M, N),
    );
    assertClose(new Float32Array(c), matmul(a, b, M, K, N), "matmul");

    // C[K, N] = A[M, K]ᵀ · B[M, N]
    const g = randomFloats(M * N, 3);
    const [, , ct] = await runKernel(
      gpu,
      "matmulTransA",
      shapeUniform([M, K, N]),
      [a, g, new Float32Array(K * N)],
      matmulGroups(K, N),
    );
    assertClose(new Float32Array(ct), matmulTransA(a, g, M, K, N), "matmulTransA");

    // C[M, K] = A[M, N] · B[K, N]ᵀ
    const [, , cb] = await runKernel(
      gpu,
      "matmulTransB",
      shapeUniform([M, N, K]),
      [g, b, new Float32Array(M * K)],
      matmulGroups(M, K),
    );
    assertClose(new Float32Array(cb), matmulTransB(g, b, M, N, K), "matmulTransB");
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("addBias, relu, reluBackward, columnSums match the CPU reference", async () => {
  const { gpu, errors } = await openTestGpu();
  try {
    const z = randomFloats(M * N, 4);
    z[0] = 0; // ReLU and its mask at exactly zero
    const bias = randomFloats(N, 5);
    const [zb] = await runKernel(
      gpu,
      "addBias",
      shapeUniform([M, N]),
      [z.slice(), bias],
      linearGroups(M * N),
    );
    assertClose(new Float32Array(zb), addBias(Float64Array.from(z), bias), "addBias");

    const [, a] = await runKernel(
      gpu,
      "relu",
      shapeUniform([M * N]),
      [z, new Float32Array(M * N)],
      linearGroups(M * N),
    );
    assertClose(new Float32Array(a), relu(z), "relu");

    const gradA = randomFloats(M * N, 6);
    const [, , gz] = await runKernel(
      gpu,
      "reluBackward",
      shapeUniform([M * N]),
      [gradA, z, new Float32Array(M * N)],
      linearGroups(M * N),
    );
    assertClose(new Float32Array(gz), reluBackward(gradA, z), "reluBackward");

    const [, sums] = await runKernel(
      gpu,
      "columnSums",
      shapeUniform([M, N]),
      [gradA, new Float32Array(N)],
      linearGroups(N),
    );
    assertClose(new Float32Array(sums), columnSums(gradA, M, N), "columnSums");
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("softmax, crossEntropy, softmaxCrossEntropyBackward match the CPU reference", async () => {
  const { gpu, errors } = await openTestGpu();
  try {
    const rows = 67, classes = 10; // 67 rows: more than one 64-wide workgroup
    const logits = randomFloats(rows * classes, 7, 8);
    logits[5] = 80; // large logit: the row max must be subtracted before exp
    const labels = randomLabels(rows, classes, 8);
    const [, p] = await runKernel(
      gpu,
      "softmax",
      shapeUniform([rows, classes]),
      [logits, new Float32Array(rows * classes)],
      linearGroups(rows),
    );
    const probs = new Float32Array(p);
    assertClose(probs, softmax(logits, rows, classes), "softmax");

    const [, , loss] = await runKernel(
      gpu,
      "crossEntropy",
      shapeUniform([rows, classes]),
      [probs, labels, new Float32Array(rows)],
      linearGroups(rows),
    );
    assertClose(new Float32Array(loss), crossEntropy(probs, labels, classes), "crossEntropy");

    const [, , g] = await runKernel(
      gpu,
      "softmaxCrossEntropyBackward",
      shapeUniform([rows, classes]),
      [probs, labels, new Float32Array(rows * classes)],
      linearGroups(rows * classes),
    );
    assertClose(
      new Float32Array(g),
      softmaxCrossEntropyBackward(probs, labels, classes),
      "softmaxCrossEntropyBackward",
    );
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("sgdUpdate, bytesToFloats, argmax match the CPU reference", async () => {
  const { gpu, errors } = await openTestGpu();
  try {
    const n = 1001, lr = 0.037;
    const theta = randomFloats(n, 9), grad = randomFloats(n, 10);
    const [updated] = await runKernel(
      gpu,
      "sgdUpdate",
      shapeUniform([n], [lr]),
      [theta.slice(), grad],
      linearGroups(n),
    );
    const want = Array.from(theta, (t, i) => t - lr * grad[i]);
    assertClose(new Float32Array(updated), want, "sgdUpdate");

    // Three images of 784 bytes, starting at image 1 of 5, every byte value present.
    const images = Uint8Array.from({ length: 5 * 784 }, (_, i) => (i * 7 + 3) % 256);
    const bytes = images.slice(784, 4 * 784);
    const [, x] = await runKernel(
      gpu,
      "bytesToFloats",
      shapeUniform([bytes.length]),
      [new Uint32Array(bytes.buffer), new Float32Array(bytes.length)],
      linearGroups(bytes.length),
    );
    assertClose(new Float32Array(x), pixelsToFloats(images, 1, 3), "bytesToFloats");

    const rows = 70, classes = 10;
    const logits = randomFloats(rows * classes, 11);
    logits[3 * classes + 2] = logits[3 * classes + 7] = 5; // a tie goes to the lower index
    const [, pred] = await runKernel(
      gpu,
      "argmax",
      shapeUniform([rows, classes]),
      [logits, new Uint32Array(rows)],
      linearGroups(rows),
    );
    const want2: number[] = [];
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let j = 1; j < classes; j++) {
        if (logits[r * classes + j] > logits[r * classes + best]) best = j;
      }
      want2.push(best);
    }
    assert.deepEqual(Array.from(new Uint32Array(pred)), want2);
    assert.equal(want2[3], 2);
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("a one-dimensional kernel past 65535 workgroups covers every element (2D grid)", async () => {
  const { gpu, errors } = await openTestGpu();
  try {
    const n = 65535 * LINEAR_WORKGROUP + 99; // needs a second row of workgroups
    const z = new Float32Array(n);
    for (let i = 0; i < n; i++) z[i] = (i % 3) - 1; // -1, 0, 1, ...
    const groups = linearGroups(n);
    assert.equal(groups[1], 2);
    const [, a] = await runKernel(
      gpu,
      "relu",
      shapeUniform([n]),
      [z, new Float32Array(n).fill(-7)],
      groups,
    );
    const got = new Float32Array(a);
    for (let i = 0; i < n; i++) {
      if (got[i] !== Math.max(0, z[i])) {
        assert.fail(`relu[${i}] = ${got[i]}, want ${Math.max(0, z[i])}`);
      }
    }
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});
