/**
 * The IDX file format of MNIST, read defensively.
 *
 * An IDX file is: two zero bytes, a type byte, the number of dimensions N,
 * then N big-endian u32 sizes, then the items in row-major order. Image sets
 * use type 0x08 (unsigned byte) with shapes [n, height, width] for images
 * (MNIST: [n, 28, 28]) and [n] for labels. Files may be gzipped (`.gz`), as
 * the official downloads are.
 *
 * Every way a file can be wrong becomes a one-line `UserError` that names the
 * file. A header is checked against the bytes actually there before anything
 * is allocated, so a header claiming billions of items costs nothing.
 *
 * @module
 */

import { UserError } from "../io/errors.ts";

/** A parsed IDX file: its dimensions and its unsigned bytes (a view, not a copy). */
export interface Idx {
  dims: number[];
  data: Uint8Array;
}

/** The IDX data types, by type byte. Only 0x08 is accepted. */
const IDX_TYPES: Readonly<Record<number, string>> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

/** How far past the declared length a gzipped file is decompressed just to count trailing bytes. */
const TRAILING_COUNT_LIMIT = 64 * 1024 * 1024;
/** Compressed bytes given to the decompressor at a time (deflate inflates at most ~1032x). */
const GZIP_INPUT_CHUNK = 16 * 1024;

interface IdxHeader {
  dims: number[];
  headerLength: number;
  /** Items the sizes multiply to; may exceed 2^53 or be Infinity for a lying header. */
  items: number;
}

function hex(n: number, digits: number): string {
  return "0x" + n.toString(16).toUpperCase().padStart(digits, "0");
}

function describeCount(n: number): string {
  return Number.isSafeInteger(n) ? String(n) : `more than ${Number.MAX_SAFE_INTEGER}`;
}

/** Checks the magic zero bytes and the type byte of a header's first 4 bytes. */
function checkMagic(bytes: Uint8Array, name: string): void {
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
    throw new UserError(
      `${name}: bad magic number ${
        hex(magic, 8)
      }, not an IDX file (expected 0x0000 then type and dimensions)`,
    );
  }
  const type = bytes[2];
  if (type !== 0x08) {
    throw new UserError(
      `${name}: IDX type ${hex(type, 2)} (${IDX_TYPES[type] ?? "unknown"}) is not supported; ` +
        `only 0x08 (unsigned byte) is`,
    );
  }
}

/** Reads and checks the header; `bytes` may be just a prefix of the file. */
function readHeader(bytes: Uint8Array, name: string, fileLength: string): IdxHeader {
  if (bytes.length < 4) {
    throw new UserError(`${name}: ${fileLength} bytes, shorter than the 4-byte IDX header`);
  }
  checkMagic(bytes, name);
  const ndims = bytes[3];
  if (ndims === 0) throw new UserError(`${name}: IDX header declares 0 dimensions`);
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) {
    throw new UserError(
      `${name}: ${fileLength} bytes, shorter than its ${headerLength}-byte IDX header ` +
        `(${ndims} dimensions)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  // A plain float product: it may overflow to Infinity, which still compares correctly.
  const items = dims.includes(0) ? 0 : dims.reduce((a, b) => a * b, 1);
  return { dims, headerLength, items };
}

function lengthError(name: string, header: IdxHeader, actual: number, atLeast = false): UserError {
  const shape = header.dims.join("x");
  if (actual < header.items) {
    return new UserError(
      `${name}: truncated: header declares ${shape} = ${
        describeCount(header.items)
      } bytes of data, ` +
        `the file has ${actual} (${describeCount(header.items - actual)} missing)`,
    );
  }
  const extra = actual - header.items;
  return new UserError(
    `${name}: ${
      atLeast ? "more than " : ""
    }${extra} trailing bytes after the ${header.items} bytes ` +
      `of data the header declares (${shape})`,
  );
}

/**
 * Parses an IDX file of unsigned bytes. `name` (a path) goes into error messages.
 * The returned data is a view into `bytes`.
 */
export function parseIdx(bytes: Uint8Array, name: string): Idx {
  return parseIdxAs(bytes, name, "file is");
}

function parseIdxAs(bytes: Uint8Array, name: string, what: string): Idx {
  const header = readHeader(bytes, name, `${what} ${bytes.length}`);
  const actual = bytes.length - header.headerLength;
  if (actual !== header.items) throw lengthError(name, header, actual);
  return { dims: header.dims, data: bytes.subarray(header.headerLength) };
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Gunzips and parses a gzipped IDX file. Decompressed bytes are kept only up to
 * the length the header declares, so a gzip bomb or a lying header allocates
 * no more than the data really there.
 */
export async function parseIdxGz(gz: Uint8Array, name: string): Promise<Idx> {
  if (gz.length < 2 || gz[0] !== 0x1f || gz[1] !== 0x8b) {
    throw new UserError(`${name}: not a gzip file (it does not start with 1f 8b), yet named .gz`);
  }
  // Fed in small pieces: the decompressor emits all it can per input chunk,
  // so a whole file at once would inflate a bomb in one go.
  let fed = 0;
  const input = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      if (fed >= gz.length) return controller.close();
      controller.enqueue(gz.slice(fed, fed + GZIP_INPUT_CHUNK) as Uint8Array<ArrayBuffer>);
      fed += GZIP_INPUT_CHUNK;
    },
  });
  const reader = input.pipeThrough(new DecompressionStream("gzip")).getReader();
  let chunks: Uint8Array[] = [];
  let stored = 0;
  let total = 0;
  let header: IdxHeader | undefined;
  let keepLimit = Infinity;
  try {
    while (true) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new UserError(`${name}: corrupt gzip stream (${why.replace(/\s+/g, " ")})`);
      }
      if (step.done) break;
      const chunk = step.value;
      total += chunk.length;
      if (stored < keepLimit) {
        const keep = chunk.subarray(0, Math.min(chunk.length, keepLimit - stored));
        chunks.push(keep);
        stored += keep.length;
      }
      if (header === undefined && stored >= 4) {
        const prefix = concat(chunks, stored);
        checkMagic(prefix, name); // a wrong file fails before more is decompressed
        if (stored >= 4 + 4 * prefix[3]) {
          header = readHeader(prefix, name, "decompressed data is");
          keepLimit = header.headerLength + header.items;
          chunks = [prefix.subarray(0, Math.min(stored, keepLimit))];
          stored = chunks[0].length;
        }
      }
      if (total - keepLimit > TRAILING_COUNT_LIMIT) {
        throw lengthError(name, header!, total - header!.headerLength, true);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (header !== undefined && total > header.headerLength + header.items) {
    throw lengthError(name, header, total - header.headerLength);
  }
  return parseIdxAs(concat(chunks, stored), name, "decompressed data is");
}

/** Reads a file, turning "not found" and friends into one-line `UserError`s. */
export async function readFileOrFail(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UserError(`${path}: file not found`);
    if (err instanceof Deno.errors.IsADirectory) {
      throw new UserError(`${path}: is a directory, expected an IDX file`);
    }
    const why = err instanceof Error ? err.message : String(err);
    throw new UserError(`${path}: cannot read (${why.replace(/\s+/g, " ")})`);
  }
}

/** Reads and parses an IDX file, gunzipping it first when its name ends in `.gz`. */
export async function readIdx(path: string): Promise<Idx> {
  const bytes = await readFileOrFail(path);
  return path.endsWith(".gz") ? await parseIdxGz(bytes, path) : parseIdx(bytes, path);
}

/** Images and their labels, checked to belong together. */
export interface ImagePair {
  /** `count · height · width` pixel bytes, row-major per image. */
  images: Uint8Array;
  /** `count` labels. */
  labels: Uint8Array;
  /** Image height and width in pixels. */
  height: number;
  width: number;
}

/**
 * Checks that two parsed IDX files are images and their labels: images
 * `[n, height, width]` of any size, labels `[n]`, the same n > 0. (How many
 * classes the labels imply is the dataset's business: shared/data/dataset.ts.)
 */
export function checkImagePair(
  images: Idx,
  imagesName: string,
  labels: Idx,
  labelsName: string,
): ImagePair {
  if (images.dims.length !== 3) {
    throw new UserError(
      `${imagesName}: expected images of shape count x height x width, got ` +
        `${images.dims.length} dimension(s) (${images.dims.join("x")})`,
    );
  }
  const [n, height, width] = images.dims;
  if (height === 0 || width === 0) {
    throw new UserError(`${imagesName}: images are ${height}x${width}, holding no pixels`);
  }
  if (labels.dims.length !== 1) {
    throw new UserError(
      `${labelsName}: expected labels of shape count, got ${labels.dims.length} dimensions ` +
        `(${labels.dims.join("x")})`,
    );
  }
  if (labels.dims[0] !== n) {
    throw new UserError(
      `image/label count mismatch: ${imagesName} has ${n} images but ${labelsName} has ` +
        `${labels.dims[0]} labels`,
    );
  }
  if (n === 0) throw new UserError(`${imagesName}: holds no images`);
  return { images: images.data, labels: labels.data, height, width };
}

/** Reads an images file and its labels file (each optionally `.gz`) and checks them. */
export async function readImagePair(imagesPath: string, labelsPath: string): Promise<ImagePair> {
  const [images, labels] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)]);
  return checkImagePair(images, imagesPath, labels, labelsPath);
}

/** Encodes bytes as an IDX file of type 0x08 with the given dimensions. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const items = dims.reduce((a, b) => a * b, 1);
  if (items !== data.length) {
    throw new RangeError(`encodeIdx: dims ${dims.join("x")} do not match ${data.length} bytes`);
  }
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
