/**
 * Every buffer and texture of the fast MLP engine, made once when the engine
 * is created and sized for the largest batch (or test chunk): nothing is
 * allocated while training. Each has its shape in its label and a comment.
 *
 * In order: the dataset (packed bytes, 4 pixels per u32, and u32 labels),
 * the packed parameters (and with momentum or Adam the gradients and the
 * optimiser's state, in the same layout), the readback buffers, the uniform
 * step table (one `struct Batch {start, count, lr, rowOrder}` per batch, test
 * chunk, loss sum and tuning run), the optimiser's table; then the readback
 * helpers. The activations, their gradients and the operands' textures are
 * fast/mlp/activations.ts's; the blank-pixel lists and row order
 * fast/mlp/variants/blank_pixels.ts's.
 *
 * Not here: what reads or writes them (fast/mlp/step.ts, encode.ts) and how they are
 * bound (fast/mlp/bind_groups.ts). WebGPU and plain TypeScript only.
 *
 * @module
 */

import { readBuffer } from "../../shared/gpu/device.ts";
import type { MlpParams } from "../../shared/model/mlp.ts";
import type { Dataset } from "../../shared/data/dataset.ts";
import { type OptimizerOptions, OPTIMIZERS, optimizerUniform } from "../../shared/model/optim.ts";
import {
  type ActivationBuffers,
  activationBuffers,
  createMirrors,
  type Mirrors,
} from "./activations.ts";
import type { OutputVariant } from "./variants/matmul.ts";

// ---------------------------------------------------------------------------
// What the buffers are sized by

/** The sizes and choices every part of the engine is made for (decided in `createMlpEngine`). */
export interface MlpSetup {
  /** Layer sizes [n0, n1, …, nL]: pixels, the hidden layers, classes. */
  sizes: readonly number[];
  batchSize: number;
  lr: number;
  /** Training and test images used. */
  nTrain: number;
  nTest: number;
  /** The batches of an epoch, `[start, count]`. */
  batches: [number, number][];
  /** The test set in chunks of at most `maxRows` images, `[start, count]`. */
  evalChunks: [number, number][];
  /** Rows the activation buffers hold (the largest batch or test chunk). */
  maxRows: number;
  /** The device's largest texture side. */
  maxTextureRows: number;
  optimizer: OptimizerOptions;
  /**
   * An optimiser that is not `fusable` (shared/model/optim.ts: all but SGD): gradients are
   * stored and one dispatch of its kernel updates.
   */
  separateUpdate: boolean;
  /** How the output layer's kernels are shaped (`smallKernels`, the device's limits). */
  output: OutputVariant;
  /** Make what `setOrder` needs. */
  shuffle: boolean;
  /** Make what `encodeEpoch` needs (copies of the per-image losses). */
  overlapEpochs: boolean;
  /** The row counts `timeVariant` can time (one step entry each). */
  tuneRows: number[];
}

/**
 * Rows the activation buffers hold for `batchSize` and `nTest` test images:
 * the batch size, or more so that the test set goes through in chunks of at
 * least 1024 images.
 */
export function activationRows(batchSize: number, nTest: number): number {
  return Math.max(batchSize, Math.min(nTest, 1024));
}

// ---------------------------------------------------------------------------
// Allocation

/** Makes buffers and textures and remembers them, for `destroy`. */
export interface Allocator {
  device: GPUDevice;
  /** Everything made, in order. */
  owned: (GPUBuffer | GPUTexture)[];
  /** A buffer of at least 16 bytes, `size` rounded up to 4. */
  buffer(label: string, size: number, usage: number): GPUBuffer;
  /** A buffer holding `bytes` (padded to a multiple of 4). */
  upload(label: string, bytes: Uint8Array, usage: number): GPUBuffer;
  /** An rgba32float texture of `width` texels (4 floats each) by `height` rows. */
  texture(label: string, width: number, height: number): GPUTexture;
}

/** An allocator on `device`. */
export function allocator(device: GPUDevice): Allocator {
  const owned: (GPUBuffer | GPUTexture)[] = [];
  const buffer = (label: string, size: number, usage: number) => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
    owned.push(b);
    return b;
  };
  return {
    device,
    owned,
    buffer,
    upload(label, bytes, usage) {
      const b = buffer(label, Math.max(4, bytes.byteLength), usage | GPUBufferUsage.COPY_DST);
      device.queue.writeBuffer(b, 0, padded(bytes));
      return b;
    },
    texture(label, width, height) {
      const t = device.createTexture({
        label,
        size: [width, height],
        format: "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      owned.push(t);
      return t;
    },
  };
}

/** Bytes padded to a multiple of 4 and at least 4, for a storage buffer. */
function padded(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(4, Math.ceil(bytes.length / 4) * 4));
  out.set(bytes);
  return out;
}

/** A part of a buffer, bound as a sub-range. */
export type BufferRange = { buffer: GPUBuffer; offset: number; size: number };

// ---------------------------------------------------------------------------
// The dataset

/** The images and labels on the GPU. */
export interface DatasetBuffers {
  /** Training images, packed bytes: [nTrain, n0 / 4] u32. */
  trainX: GPUBuffer;
  /** Test images, packed bytes: [nTest, n0 / 4] u32. */
  testX: GPUBuffer;
  /** Training labels: [nTrain] u32. */
  trainY: GPUBuffer;
  /** Test labels: [nTest] u32. */
  testY: GPUBuffer;
  /** With `shuffle`: the epoch's order, a permutation of 0..nTrain-1: [nTrain] u32. */
  order?: GPUBuffer;
  /** The training images the steps read: in the epoch's order with `shuffle` (else `trainX`). */
  trainXOrdered: GPUBuffer;
  /** The training labels the steps read: in the epoch's order with `shuffle` (else `trainY`). */
  trainYOrdered: GPUBuffer;
}

function datasetBuffers(alloc: Allocator, setup: MlpSetup, data: Dataset): DatasetBuffers {
  const S = GPUBufferUsage.STORAGE, CD = GPUBufferUsage.COPY_DST;
  const { nTrain, nTest } = setup;
  const n0 = setup.sizes[0];
  const u32Bytes = (labels: Uint8Array) => new Uint8Array(Uint32Array.from(labels).buffer);
  const trainX = alloc.upload(
    "train images (packed bytes)",
    data.trainImages.subarray(0, nTrain * n0),
    S,
  );
  const testX = alloc.upload(
    "test images (packed bytes)",
    data.testImages.subarray(0, Math.max(nTest, 1) * n0),
    S,
  );
  const trainY = alloc.upload(
    "train labels (u32)",
    u32Bytes(data.trainLabels.subarray(0, nTrain)),
    S,
  );
  const testY = alloc.upload(
    "test labels (u32)",
    u32Bytes(data.testLabels.subarray(0, Math.max(nTest, 1))),
    S,
  );
  // Shuffling: the epoch's order and the training set gathered into it (`encodeGather`).
  const order = setup.shuffle
    ? alloc.buffer(`epoch order [${nTrain}]`, nTrain * 4, S | CD)
    : undefined;
  const trainXOrdered = setup.shuffle
    ? alloc.buffer("train images in epoch order (packed bytes)", trainX.size, S)
    : trainX;
  const trainYOrdered = setup.shuffle
    ? alloc.buffer("train labels in epoch order (u32)", trainY.size, S)
    : trainY;
  return { trainX, testX, trainY, testY, order, trainXOrdered, trainYOrdered };
}

// ---------------------------------------------------------------------------
// Packed parameters, gradients and optimiser state

/** Where each parameter tensor lies in the packed parameter buffer. */
export interface PackedLayout {
  /** Byte offset of W1, b1, …, WL, bL (multiples of `align`). */
  offsets: number[];
  /** Floats of each tensor. */
  lengths: number[];
  /** Bytes of the whole buffer. */
  bytes: number;
}

/** The packed layout of an MLP with layer sizes `sizes`, tensors aligned to `align` bytes. */
export function packedLayout(sizes: readonly number[], align = 256): PackedLayout {
  const offsets: number[] = [], lengths: number[] = [];
  let at = 0;
  for (let l = 0; l + 1 < sizes.length; l++) {
    for (const n of [sizes[l] * sizes[l + 1], sizes[l + 1]]) {
      offsets.push(at);
      lengths.push(n);
      at += Math.ceil((n * 4) / align) * align;
    }
  }
  return { offsets, lengths, bytes: at };
}

/** The parameters and what updates them, each a packed buffer W1, b1, …, WL, bL. */
export interface ParameterBuffers {
  packed: PackedLayout;
  /** Floats of a packed buffer (padding included). */
  totalFloats: number;
  /** The parameters: W_i [n(i−1), n_i] and b_i [n_i] for each layer i = 1 … L. */
  paramBuffer: GPUBuffer;
  /** W1 … WL and b1 … bL as sub-ranges of `paramBuffer` (index i − 1: layer i). */
  weights: BufferRange[];
  biases: BufferRange[];
  /** Momentum/Adam(W): ∂W1 ∂b1 … ∂WL ∂bL (padding stays zero). */
  gradBuffer?: GPUBuffer;
  /** One buffer per part of the optimiser's `state` (momentum's velocity; Adam's m, v); none for SGD. */
  stateBuffers: GPUBuffer[];
  /**
   * Where the weight-gradient kernels write ∂W_i and ∂b_i: the parameters
   * themselves (SGD, updated in place) or the gradients.
   */
  gradWeights: BufferRange[];
  gradBiases: BufferRange[];
}

function parameterBuffers(alloc: Allocator, setup: MlpSetup, params: MlpParams): ParameterBuffers {
  const S = GPUBufferUsage.STORAGE, CS = GPUBufferUsage.COPY_SRC, CD = GPUBufferUsage.COPY_DST;
  const { device } = alloc;
  const packed = packedLayout(
    setup.sizes,
    Math.max(256, device.limits.minStorageBufferOffsetAlignment),
  );
  const packedBuffer = (label: string, usage: number) => alloc.buffer(label, packed.bytes, usage);
  const ranges = (b: GPUBuffer): BufferRange[] =>
    packed.offsets.map((offset, t) => ({ buffer: b, offset, size: packed.lengths[t] * 4 }));
  const tensors = (d: string) =>
    setup.sizes.slice(1).map((_, l) => `${d}W${l + 1} ${d}b${l + 1}`).join(" ");
  const paramBuffer = packedBuffer(`parameters ${tensors("")} (packed)`, S | CS | CD);
  const paramRanges = ranges(paramBuffer);
  const weights = paramRanges.filter((_, t) => t % 2 === 0);
  const biases = paramRanges.filter((_, t) => t % 2 === 1);
  for (let l = 0; l < weights.length; l++) {
    device.queue.writeBuffer(paramBuffer, weights[l].offset, params.weights[l].slice());
    device.queue.writeBuffer(paramBuffer, biases[l].offset, params.biases[l].slice());
  }
  const gradBuffer = setup.separateUpdate
    ? packedBuffer(`gradients ${tensors("∂")} (packed)`, S)
    : undefined;
  const stateBuffers = OPTIMIZERS[setup.optimizer.optimizer].state.map((part) =>
    packedBuffer(`${part.label} (packed)`, S | CS | CD)
  );
  const gradRanges = gradBuffer ? ranges(gradBuffer) : paramRanges;
  return {
    packed,
    totalFloats: packed.bytes / 4,
    paramBuffer,
    weights,
    biases,
    gradBuffer,
    stateBuffers,
    gradWeights: gradRanges.filter((_, t) => t % 2 === 0),
    gradBiases: gradRanges.filter((_, t) => t % 2 === 1),
  };
}

// ---------------------------------------------------------------------------
// Readback buffers

/**
 * Epoch readback buffers (and, with `overlapEpochs`, copies of the per-image
 * losses) in rotation: up to two epochs may be submitted while an earlier
 * one's loss is still being read.
 */
export const EPOCH_READBACKS = 3;

/** Where results are copied to be mapped and read. */
export interface ReadbackBuffers {
  /** `timeVariant`'s readback: [1]. */
  lossStaging: GPUBuffer;
  /** Epoch e's loss sum is read through epochStaging[e % EPOCH_READBACKS]: [1] each. */
  epochStaging: GPUBuffer[];
  /** With `overlapEpochs`: epoch e's per-image losses, copied: [nTrain] each. */
  lossCopies?: GPUBuffer[];
  /** The test pass's confusion counts: [nL, nL] u32. */
  confusionStaging: GPUBuffer;
}

function readbackBuffers(alloc: Allocator, setup: MlpSetup): ReadbackBuffers {
  const MR = GPUBufferUsage.MAP_READ, CS = GPUBufferUsage.COPY_SRC, CD = GPUBufferUsage.COPY_DST;
  const { nTrain } = setup;
  const nL = setup.sizes[setup.sizes.length - 1];
  const readbacks = [...Array(EPOCH_READBACKS).keys()];
  return {
    lossStaging: alloc.buffer("tuning readback", 4, MR | CD),
    epochStaging: readbacks.map((i) => alloc.buffer(`epoch loss readback ${i}`, 4, MR | CD)),
    lossCopies: setup.overlapEpochs
      ? readbacks.map((i) =>
        alloc.buffer(`per-image losses of an epoch, copy ${i} [${nTrain}]`, nTrain * 4, CS | CD)
      )
      : undefined,
    confusionStaging: alloc.buffer("test confusion readback", nL * nL * 4, MR | CD),
  };
}

// ---------------------------------------------------------------------------
// The step table: one uniform `Batch` per dispatch's batch

/** Bytes between uniform entries (minUniformBufferOffsetAlignment is at most 256). */
export const STEP_STRIDE = 256;
/** `Step.rowOrder` of a uniform entry without a row order (nonzeroGroups.wgsl's NO_ORDER). */
const NO_ORDER = 0xffffffff;

/** The uniform entries and where each kind starts. */
export interface StepTable {
  /** Entries {start, count, lr, rowOrder} at STEP_STRIDE bytes, bound with a dynamic offset. */
  steps: GPUBuffer;
  /** Entry of test chunk 0 (training batch i is entry i). */
  evalStep0: number;
  /** Entry of the epoch's loss sum. */
  sumStep: number;
  /** Entry of `tuneRows[0]` rows for `timeVariant`. */
  tuneStep0: number;
}

/**
 * Uniform entries: train batches, test chunks, the epoch sum, then tuning
 * steps (lr 0, so timing a weight-gradient variant leaves the weights be).
 * `rowOrder` is where the entry's layer-1 row order starts (with `sortRows`),
 * else NO_ORDER.
 */
function stepTable(alloc: Allocator, setup: MlpSetup, sortRows: boolean): StepTable {
  const { batches, evalChunks, lr, nTrain, tuneRows } = setup;
  type Entry = [start: number, count: number, lr: number, rowOrder: number];
  const ordered = (at: number) => sortRows ? at : NO_ORDER;
  const entries: Entry[] = [
    ...batches.map(([s, c]): Entry => [s, c, lr, ordered(s)]),
    ...evalChunks.map(([s, c]): Entry => [s, c, 0, ordered(nTrain + s)]),
    [0, nTrain, 0, NO_ORDER],
    // A full batch is timed in batch 0's order (the first batch is a full one).
    ...tuneRows.map((c): Entry => [0, c, 0, c === batches[0][1] ? ordered(0) : NO_ORDER]),
  ];
  const data = new ArrayBuffer(entries.length * STEP_STRIDE);
  entries.forEach(([s, c, r, o], i) => {
    const u = new Uint32Array(data, i * STEP_STRIDE, 4);
    u[0] = s;
    u[1] = c;
    new Float32Array(data, i * STEP_STRIDE, 4)[2] = r;
    u[3] = o;
  });
  const steps = alloc.buffer(
    "steps {start, count, lr, rowOrder} (256-byte strides)",
    data.byteLength,
    GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  );
  alloc.device.queue.writeBuffer(steps, 0, data);
  const evalStep0 = batches.length;
  const sumStep = evalStep0 + evalChunks.length;
  return { steps, evalStep0, sumStep, tuneStep0: sumStep + 1 };
}

// ---------------------------------------------------------------------------
// The optimiser's uniforms (momentum, Adam: any optimiser with a kernel of its own)

/** One `OptimizerStep` uniform per batch of an epoch, at STEP_STRIDE bytes. */
export interface OptimizerTable {
  /** {count, t, lr, …} per batch (shared/model/optim.ts's `optimizerUniform`); none for SGD. */
  buffer?: GPUBuffer;
  /**
   * Makes entry i hold step t = base + i + 1 (Adam's bias corrections depend
   * on t); rewritten only when a run of steps starts at another t (an epoch).
   */
  ensure(base: number): void;
}

function optimizerTable(alloc: Allocator, setup: MlpSetup, totalFloats: number): OptimizerTable {
  const { batches, lr, optimizer } = setup;
  const buffer = setup.separateUpdate
    ? alloc.buffer(
      "optimiser steps {count, t, lr, …} (256-byte strides)",
      batches.length * STEP_STRIDE,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    )
    : undefined;
  let written = -1; // the base the table holds
  return {
    buffer,
    ensure(base) {
      if (!buffer || base === written) return;
      const table = new ArrayBuffer(batches.length * STEP_STRIDE);
      for (let i = 0; i < batches.length; i++) {
        optimizerUniform(totalFloats, base + i + 1, lr, optimizer, table, i * STEP_STRIDE);
      }
      alloc.device.queue.writeBuffer(buffer, 0, table);
      written = base;
    },
  };
}

// ---------------------------------------------------------------------------
// All of them

/** Every buffer and texture of the engine but the blank-pixel ones. */
export type MlpBuffers =
  & DatasetBuffers
  & ParameterBuffers
  & ActivationBuffers
  & ReadbackBuffers
  & StepTable
  & Mirrors
  & {
    optimizerTable: OptimizerTable;
    /** A 16-byte storage buffer for a binding a kernel does not use. */
    dummyStorage: GPUBuffer;
  };

/**
 * Makes the buffers and textures for `setup`, uploads `data` and `params`,
 * writes the step table (`sortRows`: its entries point into the row order).
 */
export function createMlpBuffers(
  alloc: Allocator,
  setup: MlpSetup,
  params: MlpParams,
  data: Dataset,
  sortRows: boolean,
): MlpBuffers {
  const parameters = parameterBuffers(alloc, setup, params);
  const activations = activationBuffers(alloc, setup);
  return {
    ...datasetBuffers(alloc, setup, data),
    ...parameters,
    ...activations,
    ...readbackBuffers(alloc, setup),
    ...stepTable(alloc, setup, sortRows),
    ...createMirrors(alloc, setup, parameters, activations),
    optimizerTable: optimizerTable(alloc, setup, parameters.totalFloats),
    dummyStorage: alloc.buffer("unused storage binding", 16, GPUBufferUsage.STORAGE),
  };
}

// ---------------------------------------------------------------------------
// Readbacks

/**
 * Floats `start..start+count-1` of `b` (per-image losses), read back
 * (outside training; `readBuffer` in shared/gpu/device.ts).
 */
export async function readRange(
  device: GPUDevice,
  b: GPUBuffer,
  start: number,
  count: number,
): Promise<Float32Array> {
  if (count === 0) return new Float32Array(0);
  return new Float32Array(await readBuffer(device, b, count * 4, start * 4));
}

/** A packed buffer read back and cut into its tensors W1, b1, …, WL, bL. */
export async function readPacked(
  device: GPUDevice,
  b: GPUBuffer,
  packed: PackedLayout,
): Promise<Float32Array[]> {
  const all = new Float32Array(await readBuffer(device, b));
  return packed.offsets.map((o, t) => all.slice(o / 4, o / 4 + packed.lengths[t]));
}
