/**
 * Tests of the texture variants of conv1 and conv2 (fast/cnn/textures_conv1.ts,
 * fast/cnn/textures.ts: the convolutions and their gradients reading
 * textures, conv2's as implicit GEMMs): bit for bit the results of the im2col
 * variants they replace (same sums, same order), on the
 * MNIST CNN (both variants, and conv2's alone) and on a shape with odd
 * feature maps; which shapes and batches they take; and that conv1's needs
 * conv2's. The CPU reference comparison of the default engine
 * (which takes the texture variant on MNIST's shape) is tests/cnn_test.ts's.
 * Not here: the other kernels.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { createCnnEngine } from "../fast/cnn/engine.ts";
import { cnnVariants } from "../fast/cnn/variants.ts";
import { conv2TextureFits } from "../fast/cnn/textures.ts";
import { conv1TextureFits } from "../fast/cnn/textures_conv1.ts";
import { cnnDims, type CnnShape, initCnnParams, MNIST_CNN } from "../shared/model/cnn.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { OPTIMIZER_DEFAULTS } from "../shared/model/optim.ts";
import { mulberry32 } from "../shared/model/rng.ts";

function randomBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  // Half the pixels blank, as on MNIST, so that ReLU and the pools see zeros too.
  return Uint8Array.from({ length: n }, () => rand() < 0.5 ? 0 : Math.floor(rand() * 256));
}

function randomLabels(n: number, classes: number, seed: number): Uint8Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * classes));
}

type Variant = "texture" | "im2col";
type Variants = { conv1: Variant; conv2: Variant };

/**
 * The options of a momentum engine for `shape` on `n` random images (7 test
 * images), with `variants` asked for (none: the engine's defaults).
 */
function engineOptions(
  shape: CnnShape,
  variants: Partial<Variants>,
  n: number,
  batchSize: number,
) {
  const perImage = shape.height * shape.width;
  return {
    params: initCnnParams(3, shape),
    batchSize,
    lr: 0.05,
    optimizer: { ...OPTIMIZER_DEFAULTS, optimizer: "momentum" as const },
    ...variants,
    data: {
      source: "synthetic",
      height: shape.height,
      width: shape.width,
      classes: shape.classes,
      trainImages: randomBytes(n * perImage, 61),
      trainLabels: randomLabels(n, shape.classes, 62),
      testImages: randomBytes(7 * perImage, 63),
      testLabels: randomLabels(7, shape.classes, 64),
    },
  };
}

/**
 * Two epochs of `n` images (the last batch partial) with momentum and a test
 * pass, on an engine with conv1's and conv2's variants `variants`: the
 * per-image losses, the parameters and the confusion counts.
 */
async function run(shape: CnnShape, variants: Variants, n: number, batchSize: number) {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  try {
    const engine = await createCnnEngine(gpu.device, engineOptions(shape, variants, n, batchSize));
    await engine.trainEpoch();
    await engine.trainEpoch(); // a second epoch: the velocity and updated weights in play
    const losses = await engine.readLosses(0, n);
    const params = await engine.readParams();
    const counts = await engine.evaluateConfusion();
    engine.destroy();
    assert.deepEqual(errors, [], `GPU errors (${JSON.stringify(variants)})`);
    return { losses, params, counts };
  } finally {
    gpu.device.destroy();
  }
}

/** The results of `variants` and of the im2col variants, compared bit for bit. */
async function assertSameBits(shape: CnnShape, n: number, batchSize: number, variants: Variants) {
  const texture = await run(shape, variants, n, batchSize);
  const im2col = await run(shape, { conv1: "im2col", conv2: "im2col" }, n, batchSize);
  assert.ok(texture.losses.some((l) => l > 0), "losses were computed");
  assert.deepEqual([...texture.losses], [...im2col.losses], "per-image losses of epoch 2");
  for (let l = 0; l < 3; l++) {
    assert.deepEqual([...texture.params.weights[l]], [...im2col.params.weights[l]], `W${l + 1}`);
    assert.deepEqual([...texture.params.biases[l]], [...im2col.params.biases[l]], `b${l + 1}`);
  }
  assert.deepEqual(texture.counts, im2col.counts, "test confusion counts");
}

Deno.test("conv1 and conv2 on textures: the MNIST CNN's two momentum epochs equal the im2col variant's bit for bit", async () => {
  await assertSameBits(MNIST_CNN, 21, 8, { conv1: "texture", conv2: "texture" });
});

Deno.test("conv2 alone on textures (pool1 into a1's texture by maxPoolTexture) equals the im2col variant's bit for bit", async () => {
  await assertSameBits(MNIST_CNN, 21, 8, { conv1: "im2col", conv2: "texture" });
});

Deno.test("the default engine runs the texture variants on a CPU adapter, the im2col ones on a GPU", async () => {
  const gpu = await openGpu();
  try {
    const engine = await createCnnEngine(gpu.device, engineOptions(MNIST_CNN, {}, 8, 8));
    const want = gpu.software ? "texture" : "im2col"; // openGpu's reading of the adapter
    assert.deepEqual(engine.variants, { conv1: want, conv2: want }, gpu.description);
    engine.destroy();
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("conv1's texture variant without conv2's is refused, naming why", async () => {
  const gpu = await openGpu();
  try {
    await assert.rejects(
      () =>
        createCnnEngine(
          gpu.device,
          engineOptions(MNIST_CNN, { conv1: "texture", conv2: "im2col" }, 8, 8),
        ),
      /conv1's texture variant writes a1 into conv2's texture: it needs conv2's/,
    );
  } finally {
    gpu.device.destroy();
  }
});

Deno.test("conv1 and conv2 on textures: odd feature maps (5×5 conv2 outputs, 8 channels; slices from mid-line) equal the im2col variant's bit for bit", async () => {
  const shape: CnnShape = { height: 16, width: 16, kernel: 3, c1: 8, c2: 8, classes: 3 };
  assert.ok(conv2TextureFits(shape, cnnDims(shape), 13, 8192), "conv2's texture variant takes it");
  assert.ok(conv1TextureFits(shape, 16, 8192), "conv1's too (K1 9 → 16)");
  // Batches of 13: conv2's 325 rows (13 × 5 × 5) and conv1's 2,548 (13 × 14 × 14) make weight-
  // gradient slices of 256 rows that start inside a line (256 = 51·5 + 1 = 18·14 + 4), where the
  // texture kernels must fetch the line's first pixels afresh. 29 images: the last batch of 3.
  await assertSameBits(shape, 29, 13, { conv1: "texture", conv2: "texture" });
});

Deno.test("conv1 and conv2 on textures: odd conv1 maps (13×13: a last line and column no pool covers) equal the im2col variant's bit for bit", async () => {
  const shape: CnnShape = { height: 16, width: 16, kernel: 4, c1: 8, c2: 8, classes: 3 };
  const d = cnnDims(shape); // z1 13 × 13 → a1 6 × 6 → z2 3 × 3 → a2 1 × 1
  assert.deepEqual([d.h1, d.w1, d.h2, d.w2], [13, 13, 3, 3]);
  assert.ok(conv1TextureFits(shape, 16, 8192), "conv1's texture variant takes it");
  await assertSameBits(shape, 13, 5, { conv1: "texture", conv2: "texture" });
  await assertSameBits(shape, 13, 5, { conv1: "im2col", conv2: "texture" });
});

Deno.test("conv1TextureFits: C1 a multiple of 8, K1 padded to 8·n, a width of 4·n, [W1; b1] within the texture limit", () => {
  assert.equal(conv1TextureFits(MNIST_CNN, 32, 8192), true, "MNIST's CNN");
  assert.equal(conv1TextureFits(MNIST_CNN, 32, 33), true, "[W1; b1]: 33 rows");
  assert.equal(conv1TextureFits(MNIST_CNN, 32, 32), false, "33 rows past a limit of 32");
  assert.equal(conv1TextureFits({ ...MNIST_CNN, c1: 12 }, 32, 8192), false, "C1 = 12");
  assert.equal(conv1TextureFits(MNIST_CNN, 28, 8192), false, "K1 padded to 28");
  const w30 = { ...MNIST_CNN, height: 30, width: 30 };
  assert.equal(conv1TextureFits(w30, 32, 8192), false, "30 pixels wide");
});

Deno.test("cnnVariants: textures on a CPU adapter where they fit, conv1's only with conv2's, a refusal for one asked where it does not fit", () => {
  const cpu = { maxTextureDimension2D: 8192, software: true };
  const pick = (shape: CnnShape, batch: number, asked: object = {}, adapter = cpu) =>
    cnnVariants(shape, batch, adapter, asked);
  assert.deepEqual(pick(MNIST_CNN, 32), { conv1: "texture", conv2: "texture" });
  const gpu = { ...cpu, software: false }; // the im2col variants, measured there, by default
  assert.deepEqual(pick(MNIST_CNN, 32, {}, gpu), { conv1: "im2col", conv2: "im2col" });
  assert.deepEqual(
    pick(MNIST_CNN, 32, { conv1: "texture", conv2: "texture" }, gpu),
    { conv1: "texture", conv2: "texture" },
    "asked for",
  );
  assert.deepEqual(pick(MNIST_CNN, 683), { conv1: "im2col", conv2: "im2col" }, "past the height");
  const w30 = { ...MNIST_CNN, height: 30, width: 30 };
  assert.deepEqual(pick(w30, 32), { conv1: "im2col", conv2: "texture" }, "30 pixels wide");
  assert.deepEqual(pick(MNIST_CNN, 32, { conv2: "im2col" }), { conv1: "im2col", conv2: "im2col" });
  assert.throws(() => pick(w30, 32, { conv1: "texture" }), /conv1's texture variant does not fit/);
  assert.throws(
    () => pick(MNIST_CNN, 683, { conv2: "texture" }),
    /conv2's texture variant does not fit/,
  );
  assert.throws(
    () => pick(MNIST_CNN, 32, { conv1: "texture", conv2: "im2col" }),
    /conv1's texture variant writes a1 into conv2's texture: it needs conv2's/,
  );
});

Deno.test("conv2TextureFits: channels that would pad K2 or leave the vec4 kernels, and batches past the texture height, go im2col", () => {
  const d = cnnDims(MNIST_CNN);
  assert.equal(conv2TextureFits(MNIST_CNN, d, 32, 8192), true);
  assert.equal(conv2TextureFits(MNIST_CNN, d, 682, 8192), true, "682 · 12 rows = 8,184");
  assert.equal(conv2TextureFits(MNIST_CNN, d, 683, 8192), false, "683 · 12 rows = 8,196");
  const c12 = { ...MNIST_CNN, c1: 12 };
  assert.equal(
    conv2TextureFits(c12, cnnDims(c12), 32, 8192),
    false,
    "C1 = 12: K2 = 300 padded to 304",
  );
  const c20 = { ...MNIST_CNN, c2: 20 };
  assert.equal(
    conv2TextureFits(c20, cnnDims(c20), 32, 8192),
    false,
    "C2 = 20: not the vec4 kernels",
  );
});
