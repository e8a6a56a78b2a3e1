/**
 * The fast trainer's GPU engine: everything made once, then whole epochs
 * encoded into few command buffers.
 *
 * At creation it uploads the dataset as packed bytes (4 pixels per u32) and
 * the labels, allocates every activation, gradient, texture and staging
 * buffer for the largest batch, writes one uniform entry per batch
 * (`{start, count, lr}` at 256-byte strides, bound with a dynamic offset),
 * compiles the pipelines in parallel and makes the bind groups. Nothing is
 * allocated while training.
 *
 * One training step is seven dispatches (see `encodeStep`; layer 3's
 * input gradient is computed by the output layer's kernel, and on GPUs
 * layer 3's weight gradient is split in two): two fused forward
 * layers, the fused output layer + softmax + cross-entropy + gradient, and
 * the backward pass with the ReLU masks inside the input-gradient matmuls
 * and SGD folded into the weight-gradient matmuls. Each layer's input
 * gradient is computed before that layer's weights are updated. When a
 * chosen variant reads an operand from a texture, the operand's canonical
 * buffer is copied into its texture right after it is written. Dispatches
 * share compute passes (a pass ends only for such a copy, or when the
 * profiler wants timestamps around a single dispatch).
 *
 * All parameters live in one packed buffer (W1, b1, W2, b2, W3, b3, each at
 * a 256-byte aligned offset, bound as sub-ranges). With momentum or Adam the
 * weight-gradient kernels store ∂W, ∂b into a gradient buffer of the same
 * layout instead of updating, and one optimiser dispatch (`momentumStep` or
 * `adamStep`) updates the whole packed buffer at the end of the step; its
 * uniform (step t, bias corrections) is one entry per batch, written before
 * the epoch's first submit. With shuffling, a gather dispatch per epoch
 * copies the training images and labels into the epoch's order, so every
 * batch is still a contiguous range.
 *
 * @module
 */

import type { Gpu } from "../../shared/gpu/device.ts";

import { batchRanges, type MlpParams, PIXELS } from "../../shared/model/mlp.ts";
import {
  OPTIMIZER_DEFAULTS,
  OPTIMIZER_UNIFORM_BYTES,
  type OptimizerOptions,
  optimizerUniform,
} from "../../shared/model/optim.ts";
import {
  defaultVariant,
  dispatchSize,
  type MatmulShape,
  type MatmulVariant,
  shapeMultiplyAdds,
  skipsZeroGroups,
  skipsZeroRows,
  tileWidth,
  tuneCandidates,
  variantByName,
  variantFits,
  VARIANTS,
  variantSource,
} from "./matmul.ts";
import { kernelSource, specialize, unrollLoops } from "../../shared/kernels/sources.ts";

/** The tunable matmul slots of one training step. */
export type Slot = "forward1" | "forward2" | "inputGrad2" | "weightGrad2" | "weightGrad1";

/** All tunable slots, in step order. */
export const SLOTS: readonly Slot[] = [
  "forward1",
  "forward2",
  "inputGrad2",
  "weightGrad2",
  "weightGrad1",
];

/** The variant chosen for each tunable slot. */
export type Plan = Record<Slot, MatmulVariant>;

/** Images and labels the engine trains and tests on. */
export interface EngineData {
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
  testImages: Uint8Array;
  testLabels: Uint8Array;
  /** Training images used (a prefix of trainImages). */
  nTrain: number;
  /** Test images used (a prefix of testImages). */
  nTest: number;
}

/** Options of `createFastTrainer`. */
export interface FastTrainerOptions {
  batchSize: number;
  lr: number;
  /** Variants per slot; missing slots get `defaultVariant`. */
  plan?: Partial<Record<Slot, string>>;
  /**
   * Also compile every variant the tuner may time in these slots (`tuneCandidates`), for
   * `timeVariant` and `setVariant`.
   */
  tuneSlots?: readonly Slot[];
  /** Steps per command buffer (default: 32). */
  stepsPerSubmit?: number;
  /**
   * Where profiling hooks in: called for each compute pass with its kernel
   * name and floating-point operations; returns the pass's timestampWrites.
   */
  passTimestamps?: (kernel: string, flops: number) => GPUComputePassTimestampWrites | undefined;
  /** Awaited after each submitted chunk of an epoch (e.g. a profiler's `collect`). */
  afterSubmit?: () => Promise<void>;
  /** The optimiser (default: plain SGD, folded into the weight-gradient kernels). */
  optimizer?: OptimizerOptions;
  /** Allocate what `setOrder` needs (a shuffled copy of the training set). */
  shuffle?: boolean;
  /**
   * Allocate what overlapping epochs needs (`encodeEpoch`): copies of the
   * per-image losses, so that `SubmittedEpoch.readLosses` of an epoch still
   * answers after the next two epochs were submitted.
   */
  overlapEpochs?: boolean;
  /**
   * How the small output-layer kernels are shaped (default: `"cpu"` on CPU
   * adapters, `"gpu"` on GPUs). Both fuse layer 3's input gradient into the
   * output layer's kernel. `"cpu"`: one row per invocation, W3 read from a
   * uniform copy (`outputLayer`), layer 3's weight gradient one
   * row of W3 per invocation (`weightGradRow`). `"gpu"`: 16 invocations per row
   * (`outputLayerRows`), layer 3's weight gradient split over
   * chunks of rows, then summed in order (`weightGradSplit` +
   * `weightGradSplitSum`).
   */
  smallKernels?: "cpu" | "gpu";
  /**
   * Texture variants of layer 1 leave out work on all-zero pixels (default
   * true): the weight gradient, per block of pixels, the rows whose pixels
   * there are all zero (`nonzeroRows.wgsl`); the forward kernel, per block
   * of rows, the groups of 16 pixels that are zero in all of them
   * (`nonzeroGroups.wgsl`). Same sums bit for bit; `false` does all the work.
   */
  skipZeros?: boolean;
  /**
   * With `skipZeros`: the layer-1 weight gradient's blocks of pixels are 4 × 4
   * tiles of the (square) images rather than runs of a row (default true; see
   * `tileWidth` in fast/mlp/matmul.ts). Same sums bit for bit either way.
   */
  imageTiles?: boolean;
  /**
   * With `skipZeros`: the layer-1 forward kernel takes each batch's rows in
   * blocks of rows whose digits start and end in the same groups of 16 pixels
   * (`rowOrderByInk`), so that more groups are blank in all of them (default
   * true). Rows are independent in the forward pass: same sums bit for bit.
   */
  sortRows?: boolean;
}

/** `step.rowOrder` of a uniform entry without a row order (nonzeroGroups.wgsl). */
const NO_ORDER = 0xffffffff;

/**
 * Where each image's ink is, as a sort key: G × (its first group of 16
 * pixels with a nonzero pixel) + its last one, G the groups in an image
 * (0 for a blank image).
 */
export function inkKeys(images: Uint8Array, count: number, pixels: number): Uint32Array {
  const keys = new Uint32Array(count);
  const groups = Math.ceil(pixels / 16);
  for (let r = 0; r < count; r++) {
    const row = images.subarray(r * pixels, (r + 1) * pixels);
    let first = -1, last = -1;
    for (let g = 0; g < groups; g++) {
      if (row.subarray(16 * g, 16 * g + 16).some((x) => x !== 0)) {
        if (first < 0) first = g;
        last = g;
      }
    }
    keys[r] = first < 0 ? 0 : groups * first + last;
  }
  return keys;
}

/**
 * For each range `[start, count]` of positions, the positions' order by the
 * ink key of the image there (`keyAt(position)`; ties keep their order), as
 * offsets from `start`: `out[start + i]` is the i-th position of the range.
 */
export function rowOrderByInk(
  ranges: [number, number][],
  total: number,
  keyAt: (position: number) => number,
): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(total);
  for (const [start, count] of ranges) {
    // key · count + offset: one number per position, sorted numerically (a typed
    // array's sort), gives the order by key with ties by offset.
    const sorted = new Float64Array(count);
    for (let i = 0; i < count; i++) sorted[i] = keyAt(start + i) * count + i;
    sorted.sort();
    for (let i = 0; i < count; i++) out[start + i] = sorted[i] % count;
  }
  return out;
}

/** The side of a square image of `pixels` pixels, or undefined when it is not one. */
function imageWidth(pixels: number): number | undefined {
  const side = Math.round(Math.sqrt(pixels));
  return side * side === pixels ? side : undefined;
}

/** Thrown by `runEpoch` when its `stop` callback asked to stop. */
export class EpochInterrupted extends Error {
  /** Steps of the epoch that ran. */
  readonly stepsDone: number;
  constructor(stepsDone: number) {
    super(`epoch interrupted after ${stepsDone} steps`);
    this.name = "EpochInterrupted";
    this.stepsDone = stepsDone;
  }
}

/**
 * An optimiser's state per parameter tensor, in the order W1, b1, W2, b2,
 * W3, b3: momentum's velocity (`first`), or Adam's m (`first`) and v
 * (`second`); `step` is the number of steps taken (Adam's t of the last one).
 */
export interface EngineOptimizerState {
  step: number;
  first: Float32Array[];
  second: Float32Array[];
}

/** Where each parameter tensor lies in the packed parameter buffer. */
export interface PackedLayout {
  /** Byte offset of W1, b1, W2, b2, W3, b3 (multiples of `align`). */
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

const STEP_STRIDE = 256; // minUniformBufferOffsetAlignment is at most 256
const STEP_SIZE = 16; // struct Step { start, count, lr, _pad }
/** Steps in an epoch's first command buffer (without a progress line). */
const FIRST_CHUNK_STEPS = 8;
/**
 * Epoch readback buffers (and, with `overlapEpochs`, copies of the per-image
 * losses) in rotation: up to two epochs may be submitted while an earlier
 * one's loss is still being read.
 */
export const EPOCH_READBACKS = 3;
/** Rows per chunk of the split layer-3 weight gradient (`weightGradSplit.wgsl`). */
const SPLIT_CHUNK = 32;
/** Rows per workgroup of `outputLayerRows.wgsl` (its `ROWS`). */
const HEAD_ROWS_PER_GROUP = 4;

/**
 * Rows the tuner screens every variant on (or the batch size, if smaller):
 * the largest block of rows a variant computes (texture-32x16), so that no
 * variant is timed on rows it computes for nothing (on 16 rows, texture-32x16
 * did twice its share of work and was at times screened out on llvmpipe,
 * where it is the fastest on 500).
 */
export const TUNE_SCREEN_ROWS = 32;

/** The fast trainer on one device; see the module doc. */
export interface FastTrainer {
  /** The variant of each slot (change with `setVariant`). */
  readonly plan: Readonly<Plan>;
  /** Uses `v` for `slot` from now on; it must have been compiled (plan or `tuneSlots`). */
  setVariant(slot: Slot, v: MatmulVariant): void;
  /** The batches of an epoch, `[start, count]`. */
  readonly batches: readonly [number, number][];
  /** Rows the activation buffers hold (the largest batch or test chunk). */
  readonly maxRows: number;
  /** The matmul shape of each slot. */
  readonly shapes: Record<Slot, MatmulShape>;
  /**
   * Encodes steps `first .. first+count-1` of the epoch's batches into one
   * command buffer and submits it without waiting; GPU work runs in queue
   * order. (`runEpoch`, `evaluate` and `timeVariant` share staging buffers:
   * await one before starting another.)
   */
  runSteps(first: number, count: number): void;
  /**
   * Runs a whole epoch and returns the sum over its images of −log p_y
   * (one readback). `onProgress(stepsDone)` is called after each submitted
   * chunk has finished on the GPU; without it nothing waits until the end.
   * With `stop`, at most two chunks are in flight, and when `stop()` is true
   * after a chunk the epoch is abandoned once the submitted work has run:
   * `EpochInterrupted` is thrown.
   */
  runEpoch(onProgress?: (stepsDone: number) => void, stop?: () => boolean): Promise<number>;
  /**
   * Encodes a whole epoch into one command buffer (its steps, then the loss
   * sum and its copy into a readback buffer, and with `overlapEpochs` a copy
   * of the per-image losses) without submitting it, so that it can be
   * encoded while the previous epoch runs. Submit with `submit()`; start the
   * loss readback with `readLoss()` of the result, after the next epoch is
   * encoded. The readback buffers rotate among `EPOCH_READBACKS` epochs:
   * epoch e's loss must have been read (settled) before epoch e + 3 is
   * submitted.
   */
  encodeEpoch(): EncodedEpoch;
  /**
   * Per-image losses at positions `start..start+count-1` of the epoch's order
   * (the images themselves without shuffling), from the last steps that saw them.
   */
  readLosses(start: number, count: number): Promise<Float32Array>;
  /** Test images (of the first nTest) whose argmax equals the label (one readback). */
  evaluate(): Promise<number>;
  /**
   * The test pass with its confusion counts: `confusion[t][p]` images of
   * class t predicted as p, counted on the GPU (one readback); `correct` is the trace.
   */
  evaluateConfusion(): Promise<{ correct: number; confusion: number[][] }>;
  /** The current parameters, read back from the GPU. */
  readParams(): Promise<MlpParams>;
  /** The optimiser and its settings. */
  readonly optimizer: OptimizerOptions;
  /** The optimiser's state (empty lists for SGD), read back from the GPU. */
  readOptimizerState(): Promise<EngineOptimizerState>;
  /** Sets the optimiser's state (e.g. from a checkpoint) before the next step. */
  writeOptimizerState(state: EngineOptimizerState): void;
  /**
   * Visits the training images in `order` (a permutation of 0..nTrain-1)
   * from the next step on: one gather dispatch, submitted now. Needs the
   * `shuffle` option.
   */
  setOrder(order: Uint32Array): void;
  /**
   * Times `reps` dispatches of `v` in `slot` (compiled via `tuneSlots` or the
   * plan) on `rows` rows — `min(TUNE_SCREEN_ROWS, batchSize)` or `batchSize` —
   * in one submit, with lr 0 so the weights stay as they are. Milliseconds,
   * including one readback (`reps` 0 measures that overhead alone).
   */
  timeVariant(slot: Slot, v: MatmulVariant, rows: number, reps?: number): Promise<number>;
  /** Frees the GPU objects (the device stays open). */
  destroy(): void;
}

/** An epoch that `encodeEpoch` encoded. */
export interface EncodedEpoch {
  /** Submits the epoch's command buffer. */
  submit(): SubmittedEpoch;
}

/** An epoch that `EncodedEpoch.submit` submitted. */
export interface SubmittedEpoch {
  /**
   * Starts the loss readback (once; later calls return the same promise)
   * and gives the sum over the epoch's images of −log p_y. In Deno the
   * `mapAsync` under it returns only once the GPU has run everything
   * submitted (a blocking device poll), then resolves ~10 ms later (its
   * polling sleep): call it after submitting the next epoch's work, or
   * just before, as `trainFast` does.
   */
  readLoss(): Promise<number>;
  /**
   * Per-image losses of this epoch at positions `start..start+count-1`. With
   * the `overlapEpochs` option, from a copy made at the epoch's end: valid
   * until epoch e + 3 is submitted; without it, from the live per-image
   * losses: valid until the next epoch is submitted.
   */
  readLosses(start: number, count: number): Promise<Float32Array>;
}

/** The matmul shape of each tunable slot for layer sizes `sizes`. */
export function slotShapes(sizes: readonly number[]): Record<Slot, MatmulShape> {
  const [n0, n1, n2] = sizes;
  return {
    forward1: { op: "forward", k: n0, n: n1, aBytes: true },
    forward2: { op: "forward", k: n1, n: n2, aBytes: false },
    inputGrad2: { op: "inputGrad", k: n2, n: n1, aBytes: false },
    weightGrad2: { op: "weightGrad", k: n1, n: n2, aBytes: false },
    weightGrad1: { op: "weightGrad", k: n0, n: n1, aBytes: true },
  };
}

/** The small layer-3 weight-gradient shape (for its multiply-add count). */
function smallShapes(sizes: number[]): { weightGrad3: MatmulShape } {
  const [, , n2, n3] = sizes;
  return { weightGrad3: { op: "weightGrad", k: n2, n: n3, aBytes: false } };
}

/**
 * Rows the activation buffers hold: the batch size, or more so that the test
 * set goes through in chunks of at least 1024 images.
 */
export function fastTrainerRows(batchSize: number, nTest: number): number {
  return Math.max(batchSize, Math.min(nTest, 1024));
}

/** Bytes padded to a multiple of 4 and at least 4, for a storage buffer. */
function padded(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(4, Math.ceil(bytes.length / 4) * 4));
  out.set(bytes);
  return out;
}

/**
 * Makes the fast trainer for `params` (copied to the GPU) and `data`. See
 * `FastTrainer`. `opts.plan` picks variants; every other slot gets the
 * default for the adapter type.
 */
export async function createFastTrainer(
  gpu: Gpu,
  params: MlpParams,
  data: EngineData,
  opts: FastTrainerOptions,
): Promise<FastTrainer> {
  const { device } = gpu;
  const sizes = params.sizes;
  if (sizes.length !== 4 || sizes[0] !== PIXELS || sizes[1] % 4 || sizes[2] % 4) {
    throw new Error(`the fast trainer needs a ${PIXELS}→h→h→c MLP, got ${sizes.join("→")}`);
  }
  const [n0, n1, n2, n3] = sizes;
  const { batchSize, lr } = opts;
  const optimizer = opts.optimizer ?? OPTIMIZER_DEFAULTS;
  // SGD stays folded into the weight-gradient kernels; the others store gradients.
  const separateUpdate = optimizer.optimizer !== "sgd";
  const { nTrain, nTest } = data;
  const batches = batchRanges(nTrain, batchSize);
  const maxRows = fastTrainerRows(batchSize, nTest);
  const evalRows = maxRows;
  const evalChunks = batchRanges(nTest, evalRows);
  const maxTextureRows = device.limits.maxTextureDimension2D;
  const texturesOk = maxRows <= maxTextureRows;
  const shapes = slotShapes(sizes);
  const small = smallShapes(sizes);
  // Layer 3 (×10) is tiny; not tuned. On a GPU, registers-4x4 leaves its
  // weight gradient to ~100 invocations looping over the batch (0.8 ms a
  // step on an H200, more than all the big matmuls); tiles use 1280 but
  // still loop over the whole batch in 8 workgroups (37 µs a step), so GPUs
  // split that reduction over chunks of rows; CPU adapters give each of the
  // 128 rows of W3 to one invocation (see `smallKernels`).
  const gpuSmall = (opts.smallKernels ?? (gpu.software ? "cpu" : "gpu")) === "gpu";

  const plan = {} as Plan;
  for (const slot of SLOTS) {
    const name = opts.plan?.[slot];
    const v = name
      ? variantByName(name)
      : defaultVariant(shapes[slot], gpu.software, maxRows, maxTextureRows);
    if (!variantFits(v, shapes[slot], maxRows, maxTextureRows)) {
      throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
    }
    plan[slot] = v;
  }

  // ---- buffers -----------------------------------------------------------
  const S = GPUBufferUsage.STORAGE, CS = GPUBufferUsage.COPY_SRC, CD = GPUBufferUsage.COPY_DST;
  const owned: (GPUBuffer | GPUTexture)[] = [];
  type Range = { buffer: GPUBuffer; offset: number; size: number };
  const buffer = (label: string, size: number, usage: number): GPUBuffer => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
    owned.push(b);
    return b;
  };
  const upload = (label: string, bytes: Uint8Array, usage: number): GPUBuffer => {
    const b = buffer(label, Math.max(4, bytes.byteLength), usage | CD);
    device.queue.writeBuffer(b, 0, padded(bytes));
    return b;
  };
  const trainX = upload(
    "train images (packed bytes)",
    data.trainImages.subarray(0, nTrain * n0),
    S,
  );
  const testX = upload(
    "test images (packed bytes)",
    data.testImages.subarray(0, Math.max(nTest, 1) * n0),
    S,
  );
  const trainY = upload(
    "train labels (u32)",
    new Uint8Array(Uint32Array.from(data.trainLabels.subarray(0, nTrain)).buffer),
    S,
  );
  const testY = upload(
    "test labels (u32)",
    new Uint8Array(Uint32Array.from(data.testLabels.subarray(0, Math.max(nTest, 1))).buffer),
    S,
  );
  // Parameters (and gradients, optimiser state) packed: W1, b1, W2, b2, W3, b3.
  const packed = packedLayout(sizes, Math.max(256, device.limits.minStorageBufferOffsetAlignment));
  const totalFloats = packed.bytes / 4;
  const packedBuffer = (label: string, usage: number) => buffer(label, packed.bytes, usage);
  const paramBuffer = packedBuffer("parameters W1 b1 W2 b2 W3 b3 (packed)", S | CS | CD);
  const ranges = (b: GPUBuffer): Range[] =>
    packed.offsets.map((offset, t) => ({ buffer: b, offset, size: packed.lengths[t] * 4 }));
  const paramRanges = ranges(paramBuffer);
  const weights = [0, 2, 4].map((t) => paramRanges[t]);
  const biases = [1, 3, 5].map((t) => paramRanges[t]);
  for (let l = 0; l < 3; l++) {
    device.queue.writeBuffer(paramBuffer, weights[l].offset, params.weights[l].slice());
    device.queue.writeBuffer(paramBuffer, biases[l].offset, params.biases[l].slice());
  }
  // Momentum/Adam: gradients (padding stays zero) and the optimiser's state.
  const gradBuffer = separateUpdate
    ? packedBuffer("gradients ∂W1 ∂b1 ∂W2 ∂b2 ∂W3 ∂b3 (packed)", S)
    : undefined;
  const stateNames = optimizer.optimizer === "momentum"
    ? ["momentum velocity"]
    : optimizer.optimizer === "adam"
    ? ["Adam first moment m", "Adam second moment v"]
    : [];
  const stateBuffers = stateNames.map((n) => packedBuffer(`${n} (packed)`, S | CS | CD));
  const gradRanges = gradBuffer ? ranges(gradBuffer) : paramRanges;
  // Where the weight-gradient kernels write: the parameters (SGD) or the gradients.
  const wgW = [0, 2, 4].map((t) => gradRanges[t]);
  const wgB = [1, 3, 5].map((t) => gradRanges[t]);
  const a1 = buffer(`a1 [${maxRows}, ${n1}]`, maxRows * n1 * 4, S | CS);
  const a2 = buffer(`a2 [${maxRows}, ${n2}]`, maxRows * n2 * 4, S | CS);
  const dz3 = buffer(`dz3 [${maxRows}, ${n3}]`, maxRows * n3 * 4, S | CS);
  const dz2 = buffer(`dz2 [${maxRows}, ${n2}]`, maxRows * n2 * 4, S | CS);
  const dz1 = buffer(`dz1 [${maxRows}, ${n1}]`, maxRows * n1 * 4, S | CS);
  const losses = buffer(`per-image losses [${nTrain}]`, nTrain * 4, S | CS);
  const lossTotal = buffer("epoch loss total", 4, S | CS);
  // Split layer-3 weight gradient: one row of partial sums per chunk of rows.
  const splitWidth = n2 * n3 + n3;
  const splitPartials = gpuSmall
    ? buffer(
      `layer-3 gradient partial sums [${Math.ceil(maxRows / SPLIT_CHUNK)}, ${splitWidth}]`,
      Math.ceil(maxRows / SPLIT_CHUNK) * splitWidth * 4,
      S,
    )
    : undefined;
  const confusion = buffer(`test confusion counts [${n3}, ${n3}]`, n3 * n3 * 4, S | CS | CD);
  const lossStaging = buffer("tuning readback", 4, GPUBufferUsage.MAP_READ | CD);
  // Epoch e's loss sum is read back through epochStaging[e % EPOCH_READBACKS] (and with
  // overlapEpochs its per-image losses copied into lossCopies[e % EPOCH_READBACKS]), so that
  // later epochs can be submitted while epoch e's readback is pending.
  const epochSlots = [...Array(EPOCH_READBACKS).keys()];
  const epochStaging = epochSlots.map((i) =>
    buffer(`epoch loss readback ${i}`, 4, GPUBufferUsage.MAP_READ | CD)
  );
  const lossCopies = opts.overlapEpochs
    ? epochSlots.map((i) =>
      buffer(`per-image losses of an epoch, copy ${i} [${nTrain}]`, nTrain * 4, CS | CD)
    )
    : undefined;
  const confusionStaging = buffer(
    "test confusion readback",
    n3 * n3 * 4,
    GPUBufferUsage.MAP_READ | CD,
  );
  // Shuffling: the epoch's order and the training set copied into it.
  const order = opts.shuffle ? buffer(`epoch order [${nTrain}]`, nTrain * 4, S | CD) : undefined;
  const trainXOrdered = opts.shuffle
    ? buffer("train images in epoch order (packed bytes)", trainX.size, S)
    : trainX;
  const trainYOrdered = opts.shuffle
    ? buffer("train labels in epoch order (u32)", trainY.size, S)
    : trainY;

  // Row orders for layer 1's forward pass (nonzeroGroups.wgsl): each batch's
  // positions by where their digit's ink is, then each test chunk's. With
  // --shuffle the training part is rewritten for each epoch's order.
  const sortRows = opts.skipZeros !== false && opts.sortRows !== false;
  const trainKeys = sortRows ? inkKeys(data.trainImages, nTrain, n0) : new Uint32Array(0);
  const rowOrder = buffer(
    `layer-1 row order [${nTrain} + ${nTest}]`,
    (nTrain + nTest + 1) * 4,
    S | CD,
  );
  if (sortRows) {
    const testKeys = inkKeys(data.testImages, nTest, n0);
    device.queue.writeBuffer(rowOrder, 0, rowOrderByInk(batches, nTrain, (p) => trainKeys[p]));
    device.queue.writeBuffer(
      rowOrder,
      nTrain * 4,
      rowOrderByInk(evalChunks, nTest, (p) => testKeys[p]),
    );
  }

  // Uniform entries: train batches, test chunks, the epoch sum, then tuning
  // steps (lr 0, so timing a weight-gradient variant leaves the weights be).
  // Each is {start, count, lr, rowOrder}: where its row order starts, or NO_ORDER.
  const tuneRows = [...new Set([Math.min(TUNE_SCREEN_ROWS, batchSize), batchSize])];
  const ordered = (at: number) => sortRows ? at : NO_ORDER;
  const stepEntries: [number, number, number, number][] = [
    ...batches.map(([s, c]) => [s, c, lr, ordered(s)] as [number, number, number, number]),
    ...evalChunks.map(([s, c]) =>
      [s, c, 0, ordered(nTrain + s)] as [number, number, number, number]
    ),
    [0, nTrain, 0, NO_ORDER],
    // A full batch is timed in batch 0's order (the first batch is a full one).
    ...tuneRows.map((c) =>
      [0, c, 0, c === batches[0][1] ? ordered(0) : NO_ORDER] as [number, number, number, number]
    ),
  ];
  const stepData = new ArrayBuffer(stepEntries.length * STEP_STRIDE);
  stepEntries.forEach(([s, c, r, o], i) => {
    const u = new Uint32Array(stepData, i * STEP_STRIDE, 4);
    u[0] = s;
    u[1] = c;
    new Float32Array(stepData, i * STEP_STRIDE, 4)[2] = r;
    u[3] = o;
  });
  const steps = buffer(
    "steps {start, count, lr, rowOrder} (256-byte strides)",
    stepData.byteLength,
    GPUBufferUsage.UNIFORM | CD,
  );
  device.queue.writeBuffer(steps, 0, stepData);
  // Optimiser uniforms: one OptimizerStep per batch (t = base + index + 1),
  // rewritten only when a run of steps starts at another t (an epoch).
  const optimSteps = separateUpdate
    ? buffer(
      "optimiser steps {count, t, lr, …} (256-byte strides)",
      batches.length * STEP_STRIDE,
      GPUBufferUsage.UNIFORM | CD,
    )
    : undefined;
  let stepsTaken = 0;
  let tableBase = -1;
  const ensureOptimTable = (first: number) => {
    const base = stepsTaken - first;
    if (!optimSteps || base === tableBase) return;
    const table = new ArrayBuffer(batches.length * STEP_STRIDE);
    for (let i = 0; i < batches.length; i++) {
      optimizerUniform(totalFloats, base + i + 1, lr, optimizer, table, i * STEP_STRIDE);
    }
    device.queue.writeBuffer(optimSteps, 0, table);
    tableBase = base;
  };
  const evalStep0 = batches.length;
  const sumStep = evalStep0 + evalChunks.length;
  const tuneStep0 = sumStep + 1;

  // ---- textures (rgba32float, 4 floats per texel along a row) ------------
  const texture = (label: string, width: number, height: number): GPUTexture => {
    const t = device.createTexture({
      label,
      size: [width, height],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
    });
    owned.push(t);
    return t;
  };
  const dummyTex = texture("unused texture slot", 1, 1);
  const texRows = texturesOk ? maxRows : 1;
  const w1Tex = texture(`W1 texture [${n0}][${n1 / 4}]`, n1 / 4, n0);
  const w2Tex = texture(`W2 texture [${n1}][${n2 / 4}]`, n2 / 4, n1);
  const a1Tex = texture(`a1 texture [${texRows}][${n1 / 4}]`, n1 / 4, texRows);
  const dz2Tex = texture(`dz2 texture [${texRows}][${n2 / 4}]`, n2 / 4, texRows);
  const dz1Tex = texture(`dz1 texture [${texRows}][${n1 / 4}]`, n1 / 4, texRows);

  const headKernel = gpuSmall ? "outputLayerRows" : "outputLayer";
  const usesTex = (slot: Slot) => plan[slot].family === "texture";
  const needA1Tex = () => usesTex("forward2") || usesTex("weightGrad2");
  const needDz2Tex = () => usesTex("inputGrad2") || usesTex("weightGrad2");
  const needDz1Tex = () => usesTex("weightGrad1");
  const needW1Tex = () => usesTex("forward1");
  const needW2Tex = () => usesTex("forward2") || usesTex("inputGrad2");

  // ---- layouts, pipelines, bind groups -----------------------------------
  type Kind = "uniform" | "optimUniform" | "ubo" | "read" | "rw" | "tex";
  const layout = (label: string, kinds: Kind[]): GPUBindGroupLayout =>
    device.createBindGroupLayout({
      label,
      entries: kinds.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        ...(kind === "uniform" || kind === "optimUniform"
          ? {
            buffer: {
              type: "uniform",
              hasDynamicOffset: true,
              minBindingSize: kind === "uniform" ? STEP_SIZE : OPTIMIZER_UNIFORM_BYTES,
            },
          }
          : kind === "ubo"
          ? { buffer: { type: "uniform" } }
          : kind === "tex"
          ? { texture: { sampleType: "unfilterable-float" } }
          : { buffer: { type: kind === "read" ? "read-only-storage" : "storage" } }),
      })) as GPUBindGroupLayoutEntry[],
    });
  const layouts = {
    // forward and inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out,
    // lists of groups of pixels (nonzeroGroups)
    product: layout("forward/inputGrad layout", [
      "uniform",
      "read",
      "tex",
      "read",
      "tex",
      "read",
      "rw",
      "read",
    ]),
    // weightGrad: step, A words, A texture, G, G texture, W, bias, row lists (nonzeroRows)
    weightGrad: layout("weightGrad layout", [
      "uniform",
      "read",
      "tex",
      "read",
      "tex",
      "rw",
      "rw",
      "read",
    ]),
    // nonzeroRows and nonzeroGroups: step, image bytes, lists, row order
    nonzero: layout("nonzeroRows/nonzeroGroups layout", ["uniform", "read", "rw", "read"]),
    // head: step, act, W (CPU-shaped kernel: a uniform copy), b, labels, losses, ∂z, ∂act
    head: layout(`${headKernel} layout`, [
      "uniform",
      "read",
      gpuSmall ? "read" : "ubo",
      "read",
      "read",
      "rw",
      "rw",
      "rw",
    ]),
    // split layer-3 weight gradient: step, A, G, partial sums, W, bias
    splitGrad: layout("weightGradSplit layout", ["uniform", "read", "read", "rw", "rw", "rw"]),
    count: layout("countCorrect layout", ["uniform", "read", "read", "read", "read", "rw"]),
    sum: layout("sumLosses layout", ["uniform", "read", "rw"]),
    momentum: layout("momentumStep layout", ["optimUniform", "rw", "read", "rw"]),
    adam: layout("adamStep layout", ["optimUniform", "rw", "read", "rw", "rw"]),
    gather: layout("gatherRows layout", ["read", "read", "rw"]),
  };
  const pipelineLayouts = new Map<GPUBindGroupLayout, GPUPipelineLayout>();
  const pipelineLayout = (bgl: GPUBindGroupLayout) => {
    let pl = pipelineLayouts.get(bgl);
    if (!pl) {
      pl = device.createPipelineLayout({
        label: `${bgl.label} pipeline layout`,
        bindGroupLayouts: [bgl],
      });
      pipelineLayouts.set(bgl, pl);
    }
    return pl;
  };
  const compile = (label: string, code: string, bgl: GPUBindGroupLayout) =>
    device.createComputePipelineAsync({
      label: `${label} pipeline`,
      layout: pipelineLayout(bgl),
      compute: {
        module: device.createShaderModule({ label: `${label} module`, code }),
        entryPoint: "main",
      },
    });
  const opLayout = (s: MatmulShape) => s.op === "weightGrad" ? layouts.weightGrad : layouts.product;
  const kernelOptions = {
    updateInPlace: !separateUpdate,
    zeroLists: opts.skipZeros === false
      ? undefined
      : { maxRows, imageWidth: opts.imageTiles === false ? undefined : imageWidth(n0) },
  };

  // Pipelines per slot and variant: the plan's, plus any asked for (tuning).
  const variantPipelines = new Map<string, Promise<GPUComputePipeline>>();
  const pipelineKey = (slot: string, v: MatmulVariant) => `${slot}/${v.name}`;
  // nonzeroRows/nonzeroGroups per block size, for the variants that skip zeros.
  const listKernel = (shape: MatmulShape, v: MatmulVariant) =>
    skipsZeroRows(shape, v, kernelOptions)
      ? `nonzeroRows ${v.block[0]}`
      : skipsZeroGroups(shape, v, kernelOptions)
      ? `nonzeroGroups ${v.block[0]}`
      : undefined;
  const want = (slot: string, shape: MatmulShape, v: MatmulVariant) => {
    const key = pipelineKey(slot, v);
    if (!variantPipelines.has(key)) {
      variantPipelines.set(
        key,
        compile(`${slot} ${v.name}`, variantSource(shape, v, kernelOptions), opLayout(shape)),
      );
    }
    const lists = listKernel(shape, v);
    if (lists && !variantPipelines.has(lists)) {
      const consts: Record<string, number> = skipsZeroRows(shape, v, kernelOptions)
        ? {
          K: shape.k,
          BLOCK: v.block[0],
          MAX_ROWS: maxRows,
          IMAGE_WIDTH: tileWidth(shape, v, kernelOptions),
        }
        : { K: shape.k, ROWS: v.block[0] };
      const name = lists.split(" ")[0];
      variantPipelines.set(
        lists,
        compile(lists, specialize(kernelSource(name), consts), layouts.nonzero),
      );
    }
  };
  for (const slot of SLOTS) {
    want(slot, shapes[slot], plan[slot]);
    if (!opts.tuneSlots?.includes(slot)) continue;
    for (const v of tuneCandidates(shapes[slot], gpu.software, maxRows, maxTextureRows)) {
      want(slot, shapes[slot], v);
    }
  }
  const headConsts = { K: n2, C: n3 };
  const splitConsts = { K: n2, N: n3, CHUNK: SPLIT_CHUNK };
  const optimizerKernel = optimizer.optimizer === "adam" ? "adamStep" : "momentumStep";
  const gatherSource = (words: number) =>
    specialize(kernelSource("gatherRows"), { ROWS: nTrain, WORDS: words });
  const fixed = await Promise.all([
    compile(
      headKernel,
      unrollLoops(specialize(kernelSource(headKernel), headConsts)),
      layouts.head,
    ),
    compile("countCorrect", specialize(kernelSource("countCorrect"), headConsts), layouts.count),
    compile("sumLosses", kernelSource("sumLosses"), layouts.sum),
    separateUpdate
      ? compile(
        optimizerKernel,
        kernelSource(optimizerKernel),
        optimizer.optimizer === "adam" ? layouts.adam : layouts.momentum,
      )
      : undefined,
    opts.shuffle ? compile("gatherRows images", gatherSource(n0 / 4), layouts.gather) : undefined,
    opts.shuffle ? compile("gatherRows labels", gatherSource(1), layouts.gather) : undefined,
    gpuSmall ? undefined : compile(
      "weightGrad3 row",
      unrollLoops(
        specialize(kernelSource("weightGradRow"), {
          K: n2,
          N: n3,
          UPDATE_IN_PLACE: !separateUpdate,
        }),
      ),
      layouts.weightGrad,
    ),
    gpuSmall
      ? compile(
        "weightGrad3 split",
        specialize(kernelSource("weightGradSplit"), splitConsts),
        layouts.splitGrad,
      )
      : undefined,
    gpuSmall
      ? compile(
        "weightGrad3 split sum",
        specialize(kernelSource("weightGradSplitSum"), {
          ...splitConsts,
          UPDATE_IN_PLACE: !separateUpdate,
        }),
        layouts.splitGrad,
      )
      : undefined,
  ]);
  const [
    headPipeline,
    countPipeline,
    sumPipeline,
    optimPipeline,
    gatherX,
    gatherY,
    rowGradPipeline,
    splitPipeline,
    splitSumPipeline,
  ] = fixed;
  const compiled = new Map<string, GPUComputePipeline>();
  await Promise.all(
    [...variantPipelines].map(async ([key, p]) => compiled.set(key, await p)),
  );
  const pipelineOf = (slot: string, v: MatmulVariant): GPUComputePipeline => {
    const p = compiled.get(pipelineKey(slot, v));
    if (!p) throw new Error(`no pipeline compiled for ${slot} ${v.name}`);
    return p;
  };

  const bindGroup = (
    label: string,
    bgl: GPUBindGroupLayout,
    resources: (GPUBuffer | GPUTexture | Range)[],
    uniformSize = STEP_SIZE,
  ) =>
    device.createBindGroup({
      label,
      layout: bgl,
      entries: resources.map((r, binding) => ({
        binding,
        resource: r instanceof GPUTexture
          ? r.createView({ label: `${r.label} view` })
          : r instanceof GPUBuffer
          ? binding === 0 && uniformSize ? { buffer: r, size: uniformSize } : { buffer: r }
          : r,
      })),
    });
  const [w1, w2, w3] = weights;
  // Per block of 4 or more pixels, a count and up to maxRows rows (nonzeroRows.wgsl).
  const rowLists = buffer(
    `layer-1 rows with nonzero pixels [${Math.ceil(n0 / 4)}][1 + ${maxRows}]`,
    Math.ceil(n0 / 4) * (maxRows + 1) * 4,
    S,
  );
  // Per block of R rows (a texture variant's block rows), a count, up to n0/16
  // groups and the block's R rows (nonzeroGroups.wgsl).
  const groupListWords = Math.max(
    ...VARIANTS.filter((v) => v.family === "texture").map((v) =>
      Math.ceil(maxRows / v.block[0]) * (1 + Math.floor(n0 / 16) + v.block[0])
    ),
  );
  const groupLists = buffer(
    `layer-1 groups of 16 pixels not all zero, rows [${groupListWords}]`,
    groupListWords * 4,
    S,
  );
  const dummyStorage = buffer("unused storage slot", 16, S);
  // The CPU-shaped head kernel reads W3 from a uniform copy, refreshed after each update of W3.
  const w3Copy = gpuSmall ? undefined : buffer(
    `W3 uniform copy [${n2}][${n3}]`,
    Math.ceil((n2 * n3) / 4) * 16,
    GPUBufferUsage.UNIFORM | CD,
  );
  const [b1, b2, b3] = biases;
  const [gw1, gw2, gw3] = wgW;
  const [gb1, gb2, gb3] = wgB;
  const groups = {
    forward1: bindGroup("forward1 bind group", layouts.product, [
      steps,
      trainXOrdered,
      dummyTex,
      w1,
      w1Tex,
      b1,
      a1,
      groupLists,
    ]),
    forward1Test: bindGroup("forward1 test bind group", layouts.product, [
      steps,
      testX,
      dummyTex,
      w1,
      w1Tex,
      b1,
      a1,
      groupLists,
    ]),
    forward2: bindGroup("forward2 bind group", layouts.product, [
      steps,
      a1,
      a1Tex,
      w2,
      w2Tex,
      b2,
      a2,
      dummyStorage,
    ]),
    head: bindGroup("head bind group", layouts.head, [
      steps,
      a2,
      w3Copy ?? w3,
      b3,
      trainYOrdered,
      losses,
      dz3,
      dz2,
    ]),
    weightGrad3: bindGroup("weightGrad3 bind group", layouts.weightGrad, [
      steps,
      a2,
      dummyTex,
      dz3,
      dummyTex,
      gw3,
      gb3,
      dummyStorage,
    ]),
    inputGrad2: bindGroup("inputGrad2 bind group", layouts.product, [
      steps,
      dz2,
      dz2Tex,
      w2,
      w2Tex,
      a1,
      dz1,
      dummyStorage,
    ]),
    weightGrad2: bindGroup("weightGrad2 bind group", layouts.weightGrad, [
      steps,
      a1,
      a1Tex,
      dz2,
      dz2Tex,
      gw2,
      gb2,
      dummyStorage,
    ]),
    weightGrad1: bindGroup("weightGrad1 bind group", layouts.weightGrad, [
      steps,
      trainXOrdered,
      dummyTex,
      dz1,
      dz1Tex,
      gw1,
      gb1,
      rowLists,
    ]),
    nonzeroRows: bindGroup("nonzeroRows bind group", layouts.nonzero, [
      steps,
      trainXOrdered,
      rowLists,
      rowOrder,
    ]),
    nonzeroGroups: bindGroup("nonzeroGroups bind group", layouts.nonzero, [
      steps,
      trainXOrdered,
      groupLists,
      rowOrder,
    ]),
    nonzeroGroupsTest: bindGroup("nonzeroGroups test bind group", layouts.nonzero, [
      steps,
      testX,
      groupLists,
      rowOrder,
    ]),
    weightGrad3Split: splitPartials
      ? bindGroup("weightGrad3 split bind group", layouts.splitGrad, [
        steps,
        a2,
        dz3,
        splitPartials,
        gw3,
        gb3,
      ])
      : undefined,
    count: bindGroup("countCorrect bind group", layouts.count, [
      steps,
      a2,
      w3,
      b3,
      testY,
      confusion,
    ]),
    sum: bindGroup("sumLosses bind group", layouts.sum, [steps, losses, lossTotal]),
    optimizer: optimSteps && gradBuffer
      ? bindGroup(
        `${optimizerKernel} bind group`,
        optimizer.optimizer === "adam" ? layouts.adam : layouts.momentum,
        [optimSteps, paramBuffer, gradBuffer, ...stateBuffers],
        OPTIMIZER_UNIFORM_BYTES,
      )
      : undefined,
    gatherX: order
      ? bindGroup("gatherRows images bind group", layouts.gather, [order, trainX, trainXOrdered], 0)
      : undefined,
    gatherY: order
      ? bindGroup("gatherRows labels bind group", layouts.gather, [order, trainY, trainYOrdered], 0)
      : undefined,
  };

  // ---- encoding: every dispatch goes through `dispatch` -------------------
  /** A command encoder and the compute pass it has open, if any. */
  type Recorder = { encoder: GPUCommandEncoder; pass?: GPUComputePassEncoder; passes: number };
  const record = (label: string): Recorder => ({
    encoder: device.createCommandEncoder({ label }),
    passes: 0,
  });
  /** The encoder with its open pass ended: copies and clears may not go inside a pass. */
  const outsidePass = (rec: Recorder): GPUCommandEncoder => {
    rec.pass?.end();
    rec.pass = undefined;
    return rec.encoder;
  };
  const submit = (rec: Recorder) => device.queue.submit([outsidePass(rec).finish()]);
  /**
   * Encodes one dispatch. Consecutive dispatches share one compute pass
   * (WebGPU orders the dispatches of a pass and makes each one's storage
   * writes visible to the next: usage scopes are per dispatch), which saves
   * a pass begin and end per dispatch. A profiled dispatch gets a pass of its
   * own, since timestampWrites belong to a pass.
   */
  const dispatch = (
    rec: Recorder,
    kernel: string,
    pipeline: GPUComputePipeline,
    group: GPUBindGroup,
    stepIndex: number | null,
    [x, y]: [number, number],
    flops: number,
  ) => {
    const timestampWrites = opts.passTimestamps?.(kernel, flops);
    let pass: GPUComputePassEncoder;
    if (timestampWrites) {
      pass = outsidePass(rec).beginComputePass({ label: `${kernel} pass`, timestampWrites });
    } else {
      pass = rec.pass ??= rec.encoder.beginComputePass({
        label: `${rec.encoder.label} pass ${++rec.passes}`,
      });
    }
    pass.setPipeline(pipeline);
    if (stepIndex === null) pass.setBindGroup(0, group);
    else pass.setBindGroup(0, group, [stepIndex * STEP_STRIDE]);
    pass.dispatchWorkgroups(x, y);
    if (timestampWrites) pass.end();
  };
  const dispatchSlot = (
    rec: Recorder,
    slot: string,
    shape: MatmulShape,
    v: MatmulVariant,
    group: GPUBindGroup,
    stepIndex: number,
    rows: number,
    test = false,
  ) => {
    const lists = listKernel(shape, v);
    if (lists) {
      // Where the pixels are not all zero: rows per block of k (weight gradient), groups of 16
      // pixels per block of rows (forward), for the kernel that follows.
      const pipeline = compiled.get(lists);
      if (!pipeline) throw new Error(`no pipeline compiled for ${lists}`);
      const [kernel, group, blocks] = skipsZeroRows(shape, v, kernelOptions)
        ? ["nonzeroRows", groups.nonzeroRows, Math.ceil(shape.k / v.block[0])]
        : [
          "nonzeroGroups",
          test ? groups.nonzeroGroupsTest : groups.nonzeroGroups,
          Math.ceil(rows / v.block[0]),
        ];
      dispatch(rec, kernel, pipeline, group, stepIndex, [Math.ceil(blocks / 8), 1], 0);
    }
    dispatch(
      rec,
      `${slot} ${v.name}`,
      pipelineOf(slot, v),
      group,
      stepIndex,
      dispatchSize(shape, v, rows),
      2 * shapeMultiplyAdds(shape, rows),
    );
  };
  /** Refreshes the uniform copy of W3 (CPU-shaped head kernel only) after W3 changed. */
  const copyW3 = (rec: Recorder) => {
    if (w3Copy) outsidePass(rec).copyBufferToBuffer(w3.buffer, w3.offset, w3Copy, 0, n2 * n3 * 4);
  };
  const copyToTexture = (
    rec: Recorder,
    src: GPUBuffer | Range,
    dst: GPUTexture,
    floatsPerRow: number,
    rows: number,
  ) =>
    outsidePass(rec).copyBufferToTexture(
      src instanceof GPUBuffer
        ? { buffer: src, bytesPerRow: floatsPerRow * 4 }
        : { buffer: src.buffer, offset: src.offset, bytesPerRow: floatsPerRow * 4 },
      { texture: dst },
      [floatsPerRow / 4, rows],
    );
  /** One elementwise dispatch over `n` elements, 64 per workgroup (2-D past 65,535 groups). */
  const elementwiseGroups = (n: number): [number, number] => {
    const groups = Math.max(1, Math.ceil(n / 64));
    const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x)];
  };
  {
    // The weight textures start as copies of the weights, whatever the plan,
    // so that `setVariant` may switch to a texture variant at any time.
    const rec = record("initial weight textures");
    copyToTexture(rec, w1, w1Tex, n1, n0);
    copyToTexture(rec, w2, w2Tex, n2, n1);
    copyW3(rec);
    submit(rec);
  }

  /** One SGD step on batch `index` (its uniform entry). */
  const encodeStep = (rec: Recorder, index: number) => {
    const rows = batches[index][1];
    dispatchSlot(rec, "forward1", shapes.forward1, plan.forward1, groups.forward1, index, rows);
    if (needA1Tex()) copyToTexture(rec, a1, a1Tex, n1, rows);
    dispatchSlot(rec, "forward2", shapes.forward2, plan.forward2, groups.forward2, index, rows);
    // The output layer, loss, ∂z3 and layer 3's input gradient ∂z2 (from W3 before its update).
    dispatch(
      rec,
      headKernel,
      headPipeline,
      groups.head,
      index,
      [Math.ceil(rows / (gpuSmall ? HEAD_ROWS_PER_GROUP : 64)), 1],
      4 * rows * n2 * n3,
    );
    if (splitPipeline && splitSumPipeline && groups.weightGrad3Split) {
      // Partial sums over chunks of SPLIT_CHUNK rows, then their sum in order.
      const outputs = Math.ceil(splitWidth / 64);
      dispatch(
        rec,
        "weightGrad3 split",
        splitPipeline,
        groups.weightGrad3Split,
        index,
        [outputs, Math.ceil(rows / SPLIT_CHUNK)],
        2 * shapeMultiplyAdds(small.weightGrad3, rows),
      );
      dispatch(
        rec,
        "weightGrad3 split sum",
        splitSumPipeline,
        groups.weightGrad3Split,
        index,
        [outputs, 1],
        splitWidth * Math.ceil(rows / SPLIT_CHUNK),
      );
    } else {
      dispatch(
        rec,
        "weightGrad3 row",
        rowGradPipeline!,
        groups.weightGrad3,
        index,
        [Math.ceil(n2 / 64), 1],
        2 * shapeMultiplyAdds(small.weightGrad3, rows),
      );
      if (!separateUpdate) copyW3(rec);
    }
    if (needDz2Tex()) copyToTexture(rec, dz2, dz2Tex, n2, rows);
    // Layer 2 backward: ∂z1 with W2 (and its texture) before W2's update.
    dispatchSlot(
      rec,
      "inputGrad2",
      shapes.inputGrad2,
      plan.inputGrad2,
      groups.inputGrad2,
      index,
      rows,
    );
    if (needDz1Tex()) copyToTexture(rec, dz1, dz1Tex, n1, rows);
    dispatchSlot(
      rec,
      "weightGrad2",
      shapes.weightGrad2,
      plan.weightGrad2,
      groups.weightGrad2,
      index,
      rows,
    );
    if (needW2Tex() && !separateUpdate) copyToTexture(rec, w2, w2Tex, n2, n1);
    // Layer 1: weight gradient and update only (no input gradient).
    dispatchSlot(
      rec,
      "weightGrad1",
      shapes.weightGrad1,
      plan.weightGrad1,
      groups.weightGrad1,
      index,
      rows,
    );
    if (groups.optimizer && optimPipeline) {
      // Momentum/Adam: every gradient is stored; now update all parameters at once.
      dispatch(
        rec,
        optimizerKernel,
        optimPipeline,
        groups.optimizer,
        index,
        elementwiseGroups(totalFloats),
        totalFloats * (optimizer.optimizer === "adam" ? 12 : 4),
      );
      if (needW2Tex()) copyToTexture(rec, w2, w2Tex, n2, n1);
      copyW3(rec);
    }
    if (needW1Tex()) copyToTexture(rec, w1, w1Tex, n1, n0);
  };

  const stepsPerSubmit = opts.stepsPerSubmit ?? 32;
  /**
   * Encodes steps `first .. first+count-1` into one command buffer, then
   * `tail` (if any) into the same one, and submits it.
   */
  const submitSteps = (first: number, count: number, tail?: (rec: Recorder) => void) => {
    if (first < 0 || count < 0 || first + count > batches.length) {
      throw new RangeError(`steps ${first}..${first + count - 1} outside 0..${batches.length - 1}`);
    }
    ensureOptimTable(first);
    const rec = record(`steps ${first}..${first + count - 1}${tail ? " and the loss sum" : ""}`);
    for (let i = first; i < first + count; i++) encodeStep(rec, i);
    tail?.(rec);
    submit(rec);
    stepsTaken += count;
  };
  const runSteps = (first: number, count: number) => submitSteps(first, count);

  const readStaging = async (staging: GPUBuffer): Promise<ArrayBuffer> => {
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    return out;
  };
  /** Floats `start..start+count-1` of `b` (per-image losses), read back (outside training). */
  const readRange = async (b: GPUBuffer, start: number, count: number): Promise<Float32Array> => {
    const enc = device.createCommandEncoder({ label: `${b.label} readback` });
    const staging = device.createBuffer({
      label: `${b.label} readback`,
      size: Math.max(4, count * 4),
      usage: GPUBufferUsage.MAP_READ | CD,
    });
    enc.copyBufferToBuffer(b, start * 4, staging, 0, count * 4);
    device.queue.submit([enc.finish()]);
    const out = new Float32Array(await readStaging(staging));
    staging.destroy();
    return out;
  };
  // Epochs begun; epoch e reads its loss back through epochStaging[e % EPOCH_READBACKS].
  let epochsBegun = 0;
  const epochSlot = () => epochsBegun++ % EPOCH_READBACKS;
  /** The loss sum (and with overlapEpochs the per-image losses) copied out after an epoch. */
  const encodeEpochEnd = (rec: Recorder, slot: number) => {
    dispatch(rec, "sumLosses", sumPipeline, groups.sum, sumStep, [1, 1], nTrain);
    const enc = outsidePass(rec);
    enc.copyBufferToBuffer(lossTotal, 0, epochStaging[slot], 0, 4);
    const copy = lossCopies?.[slot];
    if (copy) enc.copyBufferToBuffer(losses, 0, copy, 0, nTrain * 4);
  };
  /** The readbacks of an epoch that ended with `encodeEpochEnd(rec, slot)` and was submitted. */
  const submitted = (slot: number): SubmittedEpoch => {
    let loss: Promise<number> | undefined;
    const copy = lossCopies?.[slot];
    return {
      readLoss: () => {
        if (!loss) {
          loss = readStaging(epochStaging[slot]).then((b) => new Float32Array(b)[0]);
          loss.catch(() => {}); // a readback nobody awaits (the run failed) is no unhandled error
        }
        return loss;
      },
      readLosses: (start, count) => readRange(copy ?? losses, start, count),
    };
  };
  /** A packed buffer read back and cut into its tensors W1, b1, W2, b2, W3, b3. */
  const readPacked = async (b: GPUBuffer): Promise<Float32Array[]> => {
    const staging = device.createBuffer({
      label: `${b.label} readback`,
      size: b.size,
      usage: GPUBufferUsage.MAP_READ | CD,
    });
    const enc = device.createCommandEncoder({ label: `${b.label} readback` });
    enc.copyBufferToBuffer(b, 0, staging, 0, b.size);
    device.queue.submit([enc.finish()]);
    const all = new Float32Array(await readStaging(staging));
    staging.destroy();
    return packed.offsets.map((o, t) => all.slice(o / 4, o / 4 + packed.lengths[t]));
  };

  const trainer: FastTrainer = {
    plan,
    batches,
    maxRows,
    shapes,
    runSteps,
    async runEpoch(onProgress, stop) {
      const slot = epochSlot();
      let previous: Promise<void> | undefined; // the chunk before the last one submitted
      // A short first chunk starts the GPU after encoding a few steps, not 32;
      // the next chunk is encoded while it runs. (With a progress line every
      // chunk is awaited, so there more chunks would only add waits.)
      const firstChunk = onProgress ? stepsPerSubmit : Math.min(stepsPerSubmit, FIRST_CHUNK_STEPS);
      for (let first = 0, count = 0; first < batches.length; first += count) {
        count = Math.min(first === 0 ? firstChunk : stepsPerSubmit, batches.length - first);
        const last = first + count === batches.length;
        // The loss sum rides in the epoch's last command buffer.
        submitSteps(first, count, last ? (rec) => encodeEpochEnd(rec, slot) : undefined);
        await opts.afterSubmit?.();
        if (onProgress) {
          await device.queue.onSubmittedWorkDone();
          onProgress(first + count);
        }
        if (stop) {
          // Keep the GPU fed with the next chunk while waiting for this one,
          // but never more than two chunks ahead of a stop request.
          const done = device.queue.onSubmittedWorkDone();
          await previous;
          previous = done;
          if (stop()) {
            await done;
            throw new EpochInterrupted(first + count);
          }
        }
      }
      return await submitted(slot).readLoss();
    },
    encodeEpoch() {
      const slot = epochSlot();
      ensureOptimTable(0);
      const rec = record(`epoch: steps 0..${batches.length - 1} and the loss sum`);
      for (let i = 0; i < batches.length; i++) encodeStep(rec, i);
      encodeEpochEnd(rec, slot);
      const commands = outsidePass(rec).finish();
      return {
        submit() {
          device.queue.submit([commands]);
          stepsTaken += batches.length;
          return submitted(slot);
        },
      };
    },
    readLosses(start, count) {
      return readRange(losses, start, count);
    },
    async evaluate() {
      return (await trainer.evaluateConfusion()).correct;
    },
    async evaluateConfusion() {
      const rec = record("test evaluation");
      outsidePass(rec).clearBuffer(confusion);
      evalChunks.forEach(([, rows], i) => {
        const stepIndex = evalStep0 + i;
        dispatchSlot(
          rec,
          "forward1",
          shapes.forward1,
          plan.forward1,
          groups.forward1Test,
          stepIndex,
          rows,
          true,
        );
        if (usesTex("forward2")) copyToTexture(rec, a1, a1Tex, n1, rows);
        dispatchSlot(
          rec,
          "forward2",
          shapes.forward2,
          plan.forward2,
          groups.forward2,
          stepIndex,
          rows,
        );
        dispatch(rec, "countCorrect", countPipeline, groups.count, stepIndex, [
          Math.ceil(rows / 64),
          1,
        ], 2 * rows * n2 * n3);
      });
      outsidePass(rec).copyBufferToBuffer(confusion, 0, confusionStaging, 0, n3 * n3 * 4);
      submit(rec);
      const counts = new Uint32Array(await readStaging(confusionStaging));
      const matrix = Array.from(
        { length: n3 },
        (_, t) => Array.from(counts.subarray(t * n3, (t + 1) * n3)),
      );
      let right = 0;
      for (let t = 0; t < n3; t++) right += matrix[t][t];
      return { correct: right, confusion: matrix };
    },
    async readParams() {
      const t = await readPacked(paramBuffer);
      return {
        sizes: [...sizes],
        weights: [0, 2, 4].map((i) => t[i]),
        biases: [1, 3, 5].map((i) => t[i]),
      };
    },
    optimizer,
    async readOptimizerState() {
      const [first, second] = await Promise.all(stateBuffers.map(readPacked));
      return { step: stepsTaken, first: first ?? [], second: second ?? [] };
    },
    writeOptimizerState(state) {
      const lists = [state.first, state.second].slice(0, stateBuffers.length);
      lists.forEach((tensors, s) => {
        if (tensors.length !== packed.lengths.length) {
          throw new Error(
            `optimiser state has ${tensors.length} tensors, want ${packed.lengths.length}`,
          );
        }
        tensors.forEach((data, i) => {
          if (data.length !== packed.lengths[i]) {
            throw new Error(
              `optimiser state tensor ${i} has ${data.length} values, want ${packed.lengths[i]}`,
            );
          }
          device.queue.writeBuffer(stateBuffers[s], packed.offsets[i], data.slice());
        });
      });
      stepsTaken = state.step;
    },
    setOrder(permutation) {
      if (!order || !gatherX || !gatherY || !groups.gatherX || !groups.gatherY) {
        throw new Error("setOrder needs the engine's shuffle option");
      }
      if (permutation.length !== nTrain) {
        throw new RangeError(`an order of ${permutation.length} images for ${nTrain}`);
      }
      device.queue.writeBuffer(order, 0, permutation.slice());
      if (sortRows) {
        const rows = rowOrderByInk(batches, nTrain, (p) => trainKeys[permutation[p]]);
        device.queue.writeBuffer(rowOrder, 0, rows);
      }
      const rec = record("gather the epoch's order");
      dispatch(
        rec,
        "gatherRows images",
        gatherX,
        groups.gatherX,
        null,
        elementwiseGroups(nTrain * n0 / 4),
        0,
      );
      dispatch(
        rec,
        "gatherRows labels",
        gatherY,
        groups.gatherY,
        null,
        elementwiseGroups(nTrain),
        0,
      );
      submit(rec);
    },
    setVariant(slot, v) {
      pipelineOf(slot, v); // throws when not compiled
      if (!variantFits(v, shapes[slot], maxRows, maxTextureRows)) {
        throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
      }
      plan[slot] = v;
      // Bring the weight textures up to date for a texture variant.
      const rec = record("weight textures refresh");
      copyToTexture(rec, w1, w1Tex, n1, n0);
      copyToTexture(rec, w2, w2Tex, n2, n1);
      submit(rec);
    },
    async timeVariant(slot, v, rows, reps = 1) {
      const at = tuneRows.indexOf(rows);
      if (at < 0) throw new RangeError(`can time ${tuneRows.join(" or ")} rows, not ${rows}`);
      const rec = record(`time ${slot} ${v.name}`);
      for (let r = 0; r < reps; r++) {
        dispatchSlot(rec, slot, shapes[slot], v, groups[slot], tuneStep0 + at, rows);
      }
      outsidePass(rec).copyBufferToBuffer(lossTotal, 0, lossStaging, 0, 4);
      const t0 = performance.now();
      submit(rec);
      await readStaging(lossStaging);
      return performance.now() - t0;
    },
    destroy() {
      for (const o of owned) o.destroy();
    },
  };
  return trainer;
}
