/** The IDX reader: good files, gzip, and a one-line error naming the file for each bad case. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../shared/io/errors.ts";
import {
  checkImagePair,
  encodeIdx,
  parseIdx,
  parseIdxGz,
  readIdx,
  readImagePair,
} from "../shared/data/idx.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Asserts `err` is a one-line `UserError` matching every pattern. */
function assertUserError(err: unknown, ...patterns: RegExp[]): true {
  assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
  assert.doesNotMatch(err.message, /\n/);
  for (const p of patterns) assert.match(err.message, p);
  return true;
}

function throwsUserError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err) => assertUserError(err, ...patterns));
}

async function rejectsUserError(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(fn, (err) => assertUserError(err, ...patterns));
}

/** `n` images of `side`x`side` with pixel = (image + offset) mod 256. */
function images(n: number, side = 28): Uint8Array {
  const data = new Uint8Array(n * side * side);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
  return encodeIdx([n, side, side], data);
}

function labels(values: number[]): Uint8Array {
  return encodeIdx([values.length], Uint8Array.from(values));
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "idx_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseIdx reads dimensions and bytes of a well-formed file", () => {
  const file = images(3);
  const idx = parseIdx(file, "x");
  assert.deepEqual(idx.dims, [3, 28, 28]);
  assert.equal(idx.data.length, 3 * 784);
  assert.deepEqual(idx.data, file.subarray(16));
  // The header is big-endian: 0x00000003 then 0x0000001C twice.
  assert.deepEqual([...file.subarray(0, 16)], [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28]);
  const lab = parseIdx(labels([5, 0, 4]), "y");
  assert.deepEqual(lab.dims, [3]);
  assert.deepEqual([...lab.data], [5, 0, 4]);
});

Deno.test("parseIdx: a file shorter than its header", () => {
  throwsUserError(
    () => parseIdx(new Uint8Array([0, 0]), "f.idx"),
    /^f\.idx: /,
    /2 bytes/,
    /header/,
  );
  throwsUserError(
    () => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1]), "f.idx"),
    /^f\.idx: /,
    /shorter than its 16-byte IDX header/,
  );
  throwsUserError(() => parseIdx(new Uint8Array(0), "empty"), /^empty: file is 0 bytes/);
});

Deno.test("parseIdx: bad magic", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]);
  throwsUserError(() => parseIdx(png, "pic.png"), /^pic\.png: /, /bad magic number 0x89504E47/);
  throwsUserError(
    () => parseIdx(new Uint8Array([0, 1, 8, 1, 0, 0, 0, 0]), "f"),
    /bad magic/,
    /not an IDX file/,
  );
});

Deno.test("parseIdx: types other than unsigned byte are refused by name", () => {
  const float32 = new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
  throwsUserError(() => parseIdx(float32, "w.idx"), /^w\.idx: /, /type 0x0D \(float32\)/);
  const int32 = new Uint8Array([0, 0, 0x0c, 1, 0, 0, 0, 0]);
  throwsUserError(() => parseIdx(int32, "w.idx"), /type 0x0C \(int32\)/);
  const unknown = new Uint8Array([0, 0, 0x42, 1, 0, 0, 0, 0]);
  throwsUserError(() => parseIdx(unknown, "w.idx"), /type 0x42 \(unknown\)/);
});

Deno.test("parseIdx: zero dimensions", () => {
  throwsUserError(() => parseIdx(new Uint8Array([0, 0, 8, 0, 1]), "z"), /^z: .*0 dimensions/);
});

Deno.test("parseIdx: truncated data, with counts", () => {
  const file = images(2).subarray(0, 16 + 1000);
  throwsUserError(
    () => parseIdx(file, "t.idx"),
    /^t\.idx: truncated/,
    /2x28x28 = 1568 bytes/,
    /has 1000/,
    /568 missing/,
  );
});

Deno.test("parseIdx: trailing bytes, with counts", () => {
  const file = new Uint8Array([...labels([1, 2, 3]), 9, 9, 9, 9, 9]);
  throwsUserError(() => parseIdx(file, "l.idx"), /^l\.idx: 5 trailing bytes/, /3 bytes/);
});

Deno.test("parseIdx: a lying header is refused without allocating what it claims", () => {
  // 4 billion labels claimed, 10 bytes there.
  const file = new Uint8Array([0, 0, 8, 1, 0xee, 0x6b, 0x28, 0x00, ...new Uint8Array(10)]);
  throwsUserError(() => parseIdx(file, "big"), /^big: truncated/, /4000000000 bytes/, /has 10/);
  // 2^32-1 to the 4th power: more items than a double counts exactly.
  const huge = new Uint8Array([0, 0, 8, 4, ...new Uint8Array(16).fill(0xff)]);
  throwsUserError(() => parseIdx(huge, "huge"), /^huge: truncated/, /more than 9007199254740991/);
  // A zero dimension makes an empty file valid, whatever the others say.
  const empty = new Uint8Array([0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  assert.deepEqual(parseIdx(empty, "e").dims, [0xffffffff, 0]);
});

Deno.test("readIdx reads plain and gzipped files alike", async () => {
  await withTempDir(async (dir) => {
    const file = images(2);
    await Deno.writeFile(join(dir, "a"), file);
    await Deno.writeFile(join(dir, "a.gz"), await gzip(file));
    const plain = await readIdx(join(dir, "a"));
    const gz = await readIdx(join(dir, "a.gz"));
    assert.deepEqual(plain.dims, [2, 28, 28]);
    assert.deepEqual(gz.dims, plain.dims);
    assert.deepEqual(gz.data, plain.data);
  });
});

Deno.test("readIdx: missing file and directory", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nope");
    await rejectsUserError(() => readIdx(missing), new RegExp(`^${missing}: file not found`));
    await rejectsUserError(() => readIdx(dir), new RegExp(`^${dir}: `));
  });
});

Deno.test("gzip: not gzip, corrupt stream, truncated stream", async () => {
  const gz = await gzip(images(1));
  await rejectsUserError(
    () => parseIdxGz(images(1), "x.gz"),
    /^x\.gz: not a gzip file/,
  );
  const corrupt = gz.slice();
  for (let i = 20; i < 40; i++) corrupt[i] ^= 0x5a;
  await rejectsUserError(() => parseIdxGz(corrupt, "c.gz"), /^c\.gz: corrupt gzip stream/);
  await rejectsUserError(
    () => parseIdxGz(gz.subarray(0, gz.length - 12), "t.gz"),
    /^t\.gz: (corrupt gzip stream|truncated)/,
  );
});

Deno.test("gzip: the IDX checks apply to the decompressed bytes", async () => {
  const truncated = await gzip(images(2).subarray(0, 500));
  await rejectsUserError(
    () => parseIdxGz(truncated, "a.gz"),
    /^a\.gz: truncated/,
    /1568 bytes/,
    /has 484/,
  );
  const trailing = await gzip(new Uint8Array([...labels([1, 2]), 7, 7, 7]));
  await rejectsUserError(() => parseIdxGz(trailing, "b.gz"), /^b\.gz: 3 trailing bytes/);
  const lying = await gzip(new Uint8Array([0, 0, 8, 1, 0xee, 0x6b, 0x28, 0x00, 1, 2, 3]));
  await rejectsUserError(() => parseIdxGz(lying, "c.gz"), /^c\.gz: truncated/, /4000000000/);
  const float = await gzip(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]));
  await rejectsUserError(() => parseIdxGz(float, "d.gz"), /^d\.gz: .*type 0x0D \(float32\)/);
  const short = await gzip(new Uint8Array([0, 0, 8]));
  await rejectsUserError(() => parseIdxGz(short, "e.gz"), /^e\.gz: .*3 bytes.*header/);
});

Deno.test("gzip: a bomb is stopped, not decompressed into memory", async () => {
  // A header declaring 1 byte, then 80 MiB of zeros (which gzip to ~80 KiB).
  const body = new Uint8Array(9 + 80 * 1024 * 1024);
  body.set([0, 0, 8, 1, 0, 0, 0, 1, 42]);
  const bomb = await gzip(body);
  await rejectsUserError(
    () => parseIdxGz(bomb, "bomb.gz"),
    /^bomb\.gz: more than \d+ trailing bytes/,
  );
});

Deno.test("readImagePair: good pair, plain and gzipped", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "img"), images(3));
    await Deno.writeFile(join(dir, "lab.gz"), await gzip(labels([7, 2, 9])));
    const pair = await readImagePair(join(dir, "img"), join(dir, "lab.gz"));
    assert.equal(pair.images.length, 3 * 784);
    assert.deepEqual([...pair.labels], [7, 2, 9]);
    assert.equal(pair.images[0], 3);
    assert.deepEqual([pair.height, pair.width], [28, 28]);
  });
});

Deno.test("checkImagePair: any image size; count mismatch, no pixels, wrong ranks, empty", () => {
  const check = (img: Uint8Array, lab: Uint8Array) =>
    checkImagePair(parseIdx(img, "I"), "imgs.idx", parseIdx(lab, "L"), "labs.idx");
  throwsUserError(
    () => check(images(3), labels([1, 2])),
    /count mismatch/,
    /imgs\.idx has 3 images/,
    /labs\.idx has 2 labels/,
  );
  // Labels of any value and images of any size are a pair (classes are the dataset's business).
  const big = check(images(2, 32), labels([1, 12]));
  assert.deepEqual([big.height, big.width, big.images.length, big.labels[1]], [32, 32, 2048, 12]);
  throwsUserError(
    () => check(encodeIdx([2, 0, 5], new Uint8Array(0)), labels([1, 2])),
    /^imgs\.idx: images are 0x5, holding no pixels/,
  );
  throwsUserError(() => check(labels([1, 2]), labels([1, 2])), /^imgs\.idx: expected images/);
  throwsUserError(() => check(images(2), images(2)), /^labs\.idx: expected labels/);
  throwsUserError(() => check(images(0), labels([])), /^imgs\.idx: holds no images/);
});
