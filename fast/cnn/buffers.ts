/**
 * The CNN engine's GPU memory: every buffer fast/cnn/step.ts's stages work
 * on, the dataset packed and uploaded (images padded to whole u32 words, so
 * that gatherRows can move them as rows), the parameters in their packed
 * layout, the per-batch and per-step uniform tables, the readback buffers;
 * and the checks that the data and a batch fit. fast/cnn/engine.ts makes the
 * pipelines and bind groups over them.
 *
 * @module
 */

import type { CnnDims, CnnParams, CnnShape } from "../../shared/model/cnn.ts";
import { type Dataset, sizeText } from "../../shared/data/dataset.ts";
import { UsageError, UserError } from "../../shared/io/errors.ts";
import { bufferFrom } from "../../shared/gpu/device.ts";
import { batchRanges } from "../../shared/model/mlp.ts";
import { OPTIMIZERS } from "../../shared/model/optim.ts";
import { UNIFORM_STRIDE } from "../kit.ts";
import { type CnnBuffers, type CnnNet, partialFloats } from "./step.ts";
import { conv2TextureSizes } from "./textures.ts";
import { conv1TextureSize } from "./textures_conv1.ts";

/** What `createBuffers` fills the buffers from (the engine's options, less how it trains). */
export interface BufferSources {
  /** Starting parameters, of the network `net` describes. */
  params: CnnParams;
  /** Images per step: activations are made for a full batch. */
  batchSize: number;
  /** Also a copy of the training set for `setOrder` to gather into. */
  shuffle?: boolean;
  /**
   * The images and labels, all used (limits already applied): training set,
   * and a test set (none when it is empty).
   */
  data: Dataset;
}

/** The buffers `createBuffers` makes: the step's, and the engine's own. */
export interface MadeBuffers {
  buffers: CnnBuffers;
  /** With `shuffle`: the epoch's order, and what `setOrder` gathers from. */
  ordered?: Ordered;
  /**
   * Per-batch `Batch {start, count, lr 0, rowOrder 0}` entries (shared/kernels/common/batch.wgsl:
   * training batches, then test batches, then the epoch's loss sum, entry `sumEntry`) and
   * per-step optimiser entries.
   */
  batchUniform: GPUBuffer;
  sumEntry: number;
  stepUniform: GPUBuffer;
  trainRanges: [number, number][];
  testRanges: [number, number][];
  lossReadback: GPUBuffer;
  confusionReadback: GPUBuffer;
}

/** With `shuffle`: the epoch's order [nTrain] and the training set as uploaded (gatherRows' src). */
export interface Ordered {
  order: GPUBuffer;
  images: GPUBuffer;
  labels: GPUBuffer;
}

/**
 * Every buffer (and texture) of the engine (each pushed to `owned`), the data
 * and the parameters uploaded.
 */
export function createBuffers(
  device: GPUDevice,
  net: CnnNet,
  opts: BufferSources,
  owned: (GPUBuffer | GPUTexture)[],
): MadeBuffers {
  const { shape: s, dims: d, layers } = net, B = opts.batchSize;
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const own = (b: GPUBuffer) => (owned.push(b), b);
  const floats = (label: string, count: number) =>
    own(device.createBuffer({ label, size: Math.max(4, count * 4), usage: storage }));
  const upload = (label: string, data: ArrayBufferView<ArrayBuffer>, usage: number) =>
    own(bufferFrom(device, label, data, usage));

  // Parameters: layer l's [K + 1, N] block at its offset (step.ts: layerBlocks).
  const packed = new Float32Array(net.paramFloats);
  layers.forEach(({ kPad, n, offset }, l) => {
    packed.set(opts.params.weights[l], offset);
    packed.set(opts.params.biases[l], offset + kPad * n);
  });
  // One buffer per part of the optimiser's state (shared/model/optim.ts): none for SGD.
  const state = OPTIMIZERS[net.optimizer].state.map((part) => floats(part.label, net.paramFloats));

  // The dataset, resident (with shuffle, also the copies that setOrder gathers into).
  const { data } = opts;
  const resident = residentData(net, data, opts.shuffle ?? false, upload);
  const { trainImages, trainLabels, inOrder } = resident;

  // Per-batch {start, count} entries: training batches, then test batches, then the loss sum's
  // (sumLosses reads count: every image of the epoch).
  const trainRanges = batchRanges(net.nTrain, B);
  const testRanges = batchRanges(data.testLabels.length, B);
  const entries: [number, number][] = [...trainRanges, ...testRanges, [0, net.nTrain]];
  const batchWords = batchEntries(entries);

  // Activations and their gradients, for a full batch (shapes: step.ts, CnnBuffers).
  const m1 = d.h1 * d.w1, m2 = d.h2 * d.w2, p1 = d.p1h * d.p1w;
  const buffers: CnnBuffers = {
    params: upload("CNN parameters [W1|b1, W2|b2, W3|b3]", packed, storage),
    grads: floats("CNN gradients (layout of the parameters)", net.paramFloats),
    state,
    trainImages: inOrder?.images ?? trainImages,
    trainLabels: inOrder?.labels ?? trainLabels,
    testImages: resident.testImages,
    testLabels: resident.testLabels,
    x: floats("x [B, H, W, 1]", B * net.pixels),
    arg1: floats("pool1 argmax", B * p1 * s.c1),
    z2: floats("conv2 z2 [B, h2, w2, C2]", B * m2 * s.c2),
    pool2: floats("pool2 a2 [B, F]", B * d.features),
    arg2: floats("pool2 argmax", B * d.features),
    logits: floats("logits [B, classes]", B * s.classes),
    gLogits: floats("∂logits [B, classes]", B * s.classes),
    gPool2: floats("∂a2 [B, F]", B * d.features),
    gZ1: floats("∂z1 [B, h1, w1, C1]", B * m1 * s.c1),
    partial: floats("split-K partial weight gradients", partialFloats(net, B)),
    losses: floats("per-image losses of the epoch", Math.max(1, net.nTrain)),
    total: floats("epoch's summed loss", 1),
    confusion: floats("test confusion counts [classes, classes]", s.classes * s.classes),
    // The im2col variants' buffers, or the texture variants' textures (only what each runs).
    ...(net.conv1 === "im2col"
      ? conv1Im2colBuffers(net, B, floats)
      : conv1Textures(device, net, owned)),
    ...(net.conv2 === "im2col"
      ? conv2Im2colBuffers(net, B, floats)
      : conv2Textures(device, net, B, owned)),
  };
  const readback = (label: string, size: number) =>
    own(
      device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    );
  return {
    buffers,
    ordered: inOrder && {
      order: floats(`epoch order [${net.nTrain}]`, net.nTrain),
      images: trainImages,
      labels: trainLabels,
    },
    batchUniform: upload("CNN batch {start, count} entries", batchWords, GPUBufferUsage.UNIFORM),
    sumEntry: entries.length - 1,
    stepUniform: own(device.createBuffer({
      label: "CNN optimiser step entries",
      size: Math.max(1, trainRanges.length) * UNIFORM_STRIDE,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    })),
    trainRanges,
    testRanges,
    lossReadback: readback("CNN epoch loss readback", 4),
    confusionReadback: readback("CNN confusion readback", s.classes * s.classes * 4),
  };
}

/** An rgba32float texture of [width, height] texels that kernels write and read; in `owned`. */
function rgbaTexture(
  device: GPUDevice,
  owned: (GPUBuffer | GPUTexture)[],
  label: string,
  [width, height]: [number, number],
): GPUTexture {
  const t = device.createTexture({
    label,
    size: { width, height },
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
  });
  owned.push(t);
  return t;
}

/** conv1's im2col variant's buffers: its columns, z1 (which pool1 reads). */
function conv1Im2colBuffers(
  net: CnnNet,
  B: number,
  floats: (label: string, count: number) => GPUBuffer,
): { cols1: GPUBuffer; z1: GPUBuffer } {
  const m1 = net.dims.h1 * net.dims.w1;
  return {
    cols1: floats("conv1 im2col columns [B·h1·w1, k·k (padded)]", B * m1 * net.layers[0].kPad),
    z1: floats("conv1 z1 [B, h1, w1, C1]", B * m1 * net.shape.c1),
  };
}

/**
 * conv2's im2col variant's buffers: a1 (which its im2col reads), its
 * columns, ∂z2, ∂cols2, ∂a1 (col2im's, which pool1's backward reads).
 */
function conv2Im2colBuffers(
  net: CnnNet,
  B: number,
  floats: (label: string, count: number) => GPUBuffer,
): { pool1: GPUBuffer; cols2: GPUBuffer; gZ2: GPUBuffer; gCols2: GPUBuffer; gPool1: GPUBuffer } {
  const { dims: d, shape: s } = net, m2 = d.h2 * d.w2, K2 = net.layers[1].kPad;
  return {
    pool1: floats("pool1 a1 [B, h1/2, w1/2, C1]", B * d.p1h * d.p1w * s.c1),
    cols2: floats("conv2 im2col columns [B·h2·w2, k·k·C1 (padded)]", B * m2 * K2),
    gZ2: floats("∂z2 [B, h2, w2, C2]", B * m2 * s.c2),
    gCols2: floats("∂cols2 [B·h2·w2, k·k·C1 (padded)]", B * m2 * K2),
    gPool1: floats("∂a1 [B, h1/2, w1/2, C1]", B * d.p1h * d.p1w * s.c1),
  };
}

/** conv1's texture (the "texture" variant, fast/cnn/textures_conv1.ts): [W1; b1]. */
function conv1Textures(
  device: GPUDevice,
  net: CnnNet,
  owned: (GPUBuffer | GPUTexture)[],
): { w1Tex: GPUTexture } {
  const size = conv1TextureSize(net.shape, net.layers[0].kPad);
  return {
    w1Tex: rgbaTexture(device, owned, "conv1 [W1; b1] texture [K1 + 1][C1/4]", size),
  };
}

/** conv2's textures (the "texture" variant, fast/cnn/textures.ts): a1, [W2; b2], ∂z2; rgba32float. */
function conv2Textures(
  device: GPUDevice,
  net: CnnNet,
  batchSize: number,
  owned: (GPUBuffer | GPUTexture)[],
): { a1Tex: GPUTexture; w2Tex: GPUTexture; gZ2Tex: GPUTexture } {
  const sizes = conv2TextureSizes(net.shape, net.dims, batchSize);
  const texture = (label: string, size: [number, number]) =>
    rgbaTexture(device, owned, label, size);
  return {
    a1Tex: texture("pool1 a1 texture [B·h1/2][w1/2·C1/4]", sizes.a1),
    w2Tex: texture("conv2 [W2; b2] texture [K2 + 1][C2/4]", sizes.w2),
    gZ2Tex: texture("conv2 ∂z2 texture [B·h2][w2·C2/4]", sizes.gZ2),
  };
}

/**
 * The dataset as the GPU holds it, uploaded with `upload`: images [n, words]
 * (packed bytes), labels [n] (u32), for training and test (the training
 * buffers stand in for an empty test set); with `shuffle`, copies of the
 * training set that the steps read, in the order `setOrder` gathers.
 */
function residentData(
  net: CnnNet,
  data: Dataset,
  shuffle: boolean,
  upload: (label: string, data: ArrayBufferView<ArrayBuffer>, usage: number) => GPUBuffer,
) {
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const hasTest = data.testLabels.length > 0;
  const train = { images: data.trainImages, labels: data.trainLabels };
  const test = hasTest ? { images: data.testImages, labels: data.testLabels } : train;
  const images = (set: typeof train) => packImages(set, net.pixels, net.words);
  const labels = (set: typeof train) => Uint32Array.from(set.labels);
  const trainImages = upload("training images (packed bytes)", images(train), storage);
  const trainLabels = upload("training labels", labels(train), storage);
  // With shuffle, the steps read copies that setOrder gathers (until then: the order given).
  const inOrder = shuffle
    ? {
      images: upload("training images in epoch order (packed bytes)", images(train), storage),
      labels: upload("training labels in epoch order", labels(train), storage),
    }
    : undefined;
  const testImages = hasTest
    ? upload("test images (packed bytes)", images(test), storage)
    : trainImages;
  const testLabels = hasTest ? upload("test labels", labels(test), storage) : trainLabels;
  return { trainImages, trainLabels, inOrder, testImages, testLabels };
}

/** The per-batch uniform entries {start, count}, one per `UNIFORM_STRIDE` bytes. */
function batchEntries(entries: [number, number][]): Uint32Array<ArrayBuffer> {
  const batchWords = new Uint32Array(entries.length * UNIFORM_STRIDE / 4);
  entries.forEach(([start, count], e) => {
    batchWords[e * UNIFORM_STRIDE / 4] = start;
    batchWords[e * UNIFORM_STRIDE / 4 + 1] = count;
  });
  return batchWords;
}

/**
 * The images of `set` as the GPU holds them: image i at byte i · words · 4
 * (zero bytes pad an image to a whole word, so that gatherRows can move
 * images as rows of words).
 */
function packImages(
  set: { images: Uint8Array; labels: Uint8Array },
  pixels: number,
  words: number,
): Uint8Array<ArrayBuffer> {
  const n = set.labels.length;
  if (words * 4 === pixels) return set.images.slice(0, n * pixels);
  const out = new Uint8Array(n * words * 4);
  for (let i = 0; i < n; i++) {
    out.set(set.images.subarray(i * pixels, (i + 1) * pixels), i * words * 4);
  }
  return out;
}

/**
 * Throws a `UserError` when `data` is not images of the CNN's size `s`, or
 * holds fewer image bytes than its labels need, or no training image.
 */
export function checkDataset(s: CnnShape, data: Dataset) {
  if (data.height !== s.height || data.width !== s.width) {
    throw new UserError(
      `${data.source}: images are ${sizeText(data)}, the CNN takes ${sizeText(s)}`,
    );
  }
  const pixels = s.height * s.width;
  for (
    const [what, images, labels] of [
      ["training", data.trainImages, data.trainLabels],
      ["test", data.testImages, data.testLabels],
    ] as const
  ) {
    if (images.length < labels.length * pixels) {
      throw new UserError(
        `${what} set: ${labels.length} images of ${pixels} pixels need ` +
          `${labels.length * pixels} bytes, got ${images.length}`,
      );
    }
  }
  if (data.trainLabels.length === 0) throw new UserError(`${data.source}: no training images`);
}

/**
 * Throws a UsageError when a full batch's largest buffer (with `variants`:
 * an im2col variant's columns, else ∂z1 or z2) would pass the device's limits.
 */
export function checkBatchSize(
  device: GPUDevice,
  s: CnnShape,
  d: CnnDims,
  batchSize: number,
  variants: Pick<CnnNet, "conv1" | "conv2">,
) {
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const cols = (k: number, c: number, variant: string) =>
    variant === "im2col" ? Math.max(Math.ceil(k / 8) * 8, c) : c;
  const perImage = 4 * Math.max(
    s.height * s.width,
    d.h1 * d.w1 * cols(d.k1, s.c1, variants.conv1),
    d.h2 * d.w2 * cols(d.k2, s.c2, variants.conv2),
  );
  const most = Math.floor(limit / perImage);
  if (batchSize > most) {
    throw new UsageError(
      `--batch-size ${batchSize} is too large for the CNN: a batch's largest buffer would ` +
        `pass the device's ${limit / 2 ** 20} MiB per buffer (at most ${most} images)`,
    );
  }
}
