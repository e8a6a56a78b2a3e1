/**
 * The fast MLP engine: an `Engine<MlpParams>` (fast/engine.ts) that makes
 * everything once, then encodes whole epochs into few command buffers.
 * This file only wires the parts together and answers the engine's calls;
 * each part lives in a file of its own, read top to bottom, and imports
 * only the ones listed after it:
 *
 * - fast/mlp/step.ts: encoding: the dispatch helpers, one training step
 *   (`encodeStep`, each dispatch with its formula), the epoch's end, the test
 *   pass;
 * - fast/mlp/pipelines.ts: bind group layouts, pipelines (compiled in
 *   parallel), bind groups;
 * - fast/mlp/blank_pixels.ts: skipping all-zero pixels in layer 1 (ink keys,
 *   row orders, the nonzeroRows / nonzeroGroups lists);
 * - fast/mlp/buffers.ts: every buffer and texture with its shape (dataset as
 *   packed bytes, packed parameters / gradients / optimiser state,
 *   activations, readbacks, the uniform step table `{start, count, lr,
 *   rowOrder}` at 256-byte strides, the optimiser's table), and readbacks;
 * - fast/mlp/matmul.ts: the slots, their shapes and the matmul variants.
 *
 * Above the engine, using it: fast/mlp/tuner.ts (choosing a variant per
 * slot: timing, the cache; `createMlpEngineTuned`) and fast/mlp/model.ts
 * (the MLP as the run loop's `Model`).
 *
 * All parameters live in one packed buffer (W1, b1, W2, b2, W3, b3, each at
 * a 256-byte aligned offset). SGD is folded into the weight-gradient kernels;
 * with momentum or Adam they store ∂W, ∂b and one optimiser dispatch updates
 * the whole packed buffer at the end of each step. With shuffling, a gather
 * dispatch per epoch copies the training set into the epoch's order, so every
 * batch is still a contiguous range. Nothing is allocated while training.
 * WebGPU and plain TypeScript only: no files, no Deno APIs.
 *
 * @module
 */

import { type Gpu, readMapped } from "../../shared/gpu/device.ts";
import type { PassTimestamps } from "../../shared/gpu/profiler.ts";
import { batchRanges, type MlpParams } from "../../shared/model/mlp.ts";
import { type Dataset, pixelsOf } from "../../shared/data/dataset.ts";
import { OPTIMIZER_DEFAULTS, type OptimizerOptions, OPTIMIZERS } from "../../shared/model/optim.ts";
import {
  type EncodedEpoch,
  EpochInterrupted,
  type OptimizerState,
  type OverlappingEngine,
  type SubmittedEpoch,
  type TestCounts,
} from "../engine.ts";
import {
  type BlankPixelOptions,
  type BlankPixels,
  createBlankPixels,
  writeTrainRowOrder,
} from "./blank_pixels.ts";
import {
  activationRows,
  allocator,
  createMlpBuffers,
  EPOCH_READBACKS,
  type MlpSetup,
  readPacked,
  readRange,
} from "./buffers.ts";
import {
  defaultVariant,
  type MatmulShape,
  type MatmulVariant,
  type Plan,
  type Slot,
  SLOTS,
  slotShapes,
  variantByName,
  variantFits,
} from "./matmul.ts";
import { createBindGroups, createLayouts, createPipelines, pipelineOf } from "./pipelines.ts";
import {
  copyW3,
  dispatchSlot,
  encodeEpochEnd,
  encodeGather,
  encodeStep,
  encodeTestPass,
  encodeWeightTextures,
  outsidePass,
  record,
  type Recorder,
  type StepContext,
  submit,
} from "./step.ts";

// ---------------------------------------------------------------------------
// The engine's interface

/** Options of `createMlpEngine`. */
export interface MlpEngineOptions extends BlankPixelOptions {
  batchSize: number;
  lr: number;
  /** Variants per slot; missing slots get `defaultVariant`. */
  plan?: Partial<Record<Slot, string>>;
  /**
   * Also compile every variant the tuner may time in these slots (`tuneCandidates`), for
   * `timeVariant` and `setVariant`.
   */
  tuneSlots?: readonly Slot[];
  /**
   * Rows `timeVariant` can also time besides `batchSize` (capped at it): the
   * tuner's screening rows (fast/mlp/tuner.ts). Default: `batchSize` only.
   */
  screenRows?: number;
  /** Steps per command buffer (default: 32). */
  stepsPerSubmit?: number;
  /**
   * Where profiling hooks in: called for each compute pass with its kernel
   * name and floating-point operations; returns the pass's timestampWrites.
   */
  passTimestamps?: PassTimestamps;
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
   * `weightGradSplitSum`). Layer 3 (×10) is tiny and not tuned: on a GPU,
   * registers-4x4 left its weight gradient to ~100 invocations looping over
   * the batch (0.8 ms a step on an H200, more than all the big matmuls), and
   * tiles still loop over the whole batch in 8 workgroups (37 µs a step).
   */
  smallKernels?: "cpu" | "gpu";
  /**
   * Texture variants of layer 1 leave out work on all-zero pixels (default
   * true): the weight gradient, per block of pixels, the rows whose pixels
   * there are all zero (`nonzeroRows.wgsl`); the forward kernel, per block
   * of rows, the groups of 16 pixels that are zero in all of them
   * (`nonzeroGroups.wgsl`). Same sums bit for bit; `false` does all the work.
   * See fast/mlp/blank_pixels.ts.
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

/** Steps in an epoch's first command buffer: the GPU starts after a few steps are encoded. */
const FIRST_CHUNK_STEPS = 8;

/** The fast MLP engine on one device: `Engine<MlpParams>` and what the tuner and benches use. */
export interface MlpEngine extends OverlappingEngine<MlpParams> {
  /** The variant of each slot (change with `setVariant`). */
  readonly plan: Readonly<Plan>;
  /** Uses `v` for `slot` from now on; it must have been compiled (plan or `tuneSlots`). */
  setVariant(slot: Slot, v: MatmulVariant): void;
  /** The batches of an epoch, `[start, count]` (`steps` of them). */
  readonly batches: readonly [number, number][];
  /** Rows the activation buffers hold (the largest batch or test chunk). */
  readonly maxRows: number;
  /** The matmul shape of each slot. */
  readonly shapes: Record<Slot, MatmulShape>;
  /**
   * Encodes steps `first .. first+count-1` of the epoch's batches into one
   * command buffer and submits it without waiting; GPU work runs in queue
   * order. (`trainEpoch`, `evaluate` and `timeVariant` share staging buffers:
   * await one before starting another.)
   */
  runSteps(first: number, count: number): void;
  /**
   * Times `reps` dispatches of `v` in `slot` (compiled via `tuneSlots` or the
   * plan) on `rows` rows — `batchSize`, or `min(screenRows, batchSize)` —
   * in one submit, with lr 0 so the weights stay as they are. Milliseconds,
   * including one readback (`reps` 0 measures that overhead alone).
   */
  timeVariant(slot: Slot, v: MatmulVariant, rows: number, reps?: number): Promise<number>;
}

// ---------------------------------------------------------------------------
// Set-up: sizes and the plan

/** What every part is made for; throws for an MLP the engine cannot train. */
function mlpSetup(
  gpu: Gpu,
  sizes: readonly number[],
  data: Dataset,
  opts: MlpEngineOptions,
): MlpSetup {
  const pixels = pixelsOf(data);
  if (sizes.length !== 4 || sizes[0] !== pixels || pixels % 4 || sizes[1] % 4 || sizes[2] % 4) {
    throw new Error(`the fast trainer needs a ${pixels}→h→h→c MLP, got ${sizes.join("→")}`);
  }
  const { batchSize, lr } = opts;
  const nTrain = data.trainLabels.length, nTest = data.testLabels.length;
  const optimizer = opts.optimizer ?? OPTIMIZER_DEFAULTS;
  const maxRows = activationRows(batchSize, nTest);
  return {
    sizes,
    batchSize,
    lr,
    nTrain,
    nTest,
    batches: batchRanges(nTrain, batchSize),
    evalChunks: batchRanges(nTest, maxRows),
    maxRows,
    maxTextureRows: gpu.device.limits.maxTextureDimension2D,
    optimizer,
    // SGD stays folded into the weight-gradient kernels; the others store gradients.
    separateUpdate: !OPTIMIZERS[optimizer.optimizer].fusable,
    gpuSmall: (opts.smallKernels ?? (gpu.software ? "cpu" : "gpu")) === "gpu",
    shuffle: opts.shuffle ?? false,
    overlapEpochs: opts.overlapEpochs ?? false,
    tuneRows: [...new Set([Math.min(opts.screenRows ?? batchSize, batchSize), batchSize])],
  };
}

/** The variant of each slot: `names`' where given, else the adapter type's default. */
function choosePlan(
  setup: MlpSetup,
  software: boolean,
  names: Partial<Record<Slot, string>> = {},
): Plan {
  const shapes = slotShapes(setup.sizes);
  const { maxRows, maxTextureRows } = setup;
  const plan = {} as Plan;
  for (const slot of SLOTS) {
    const name = names[slot];
    const v = name
      ? variantByName(name)
      : defaultVariant(shapes[slot], software, maxRows, maxTextureRows);
    if (!variantFits(v, shapes[slot], maxRows, maxTextureRows)) {
      throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
    }
    plan[slot] = v;
  }
  return plan;
}

// ---------------------------------------------------------------------------
// The engine

/**
 * Makes the fast MLP engine for `params` (copied to the GPU) and `data`. See
 * `MlpEngine`. `opts.plan` picks variants; every other slot gets the
 * default for the adapter type.
 */
export async function createMlpEngine(
  gpu: Gpu,
  params: MlpParams,
  data: Dataset,
  opts: MlpEngineOptions,
): Promise<MlpEngine> {
  const { device } = gpu;
  const setup = mlpSetup(gpu, params.sizes, data, opts);
  const plan = choosePlan(setup, gpu.software, opts.plan);
  const alloc = allocator(device);
  // When a part fails (a pipeline that does not compile, after every buffer
  // was made), what was made so far is freed before the error goes on.
  try {
    const blank = createBlankPixels(alloc, setup, data, opts);
    const buffers = createMlpBuffers(alloc, setup, params, data, blank.sortRows);
    const kernelOptions = { updateInPlace: !setup.separateUpdate, zeroLists: blank.zeroLists };
    const layouts = createLayouts(device, setup.gpuSmall, OPTIMIZERS[setup.optimizer.optimizer]);
    const pipelines = await createPipelines(device, setup, layouts, plan, kernelOptions, {
      slots: opts.tuneSlots ?? [],
      software: gpu.software,
    });
    const ctx: StepContext = {
      device,
      setup,
      plan,
      shapes: slotShapes(setup.sizes),
      buffers,
      pipelines,
      groups: createBindGroups(device, layouts, buffers, blank, pipelines),
      kernelOptions,
      passTimestamps: opts.passTimestamps,
    };
    // The weight textures start as copies of the weights, whatever the plan,
    // so that `setVariant` may switch to a texture variant at any time.
    const rec = record(device, "initial weight textures");
    encodeWeightTextures(ctx, rec);
    copyW3(ctx, rec);
    submit(device, rec);
    return mlpEngine(ctx, blank, alloc.owned, opts);
  } catch (err) {
    for (const o of alloc.owned) o.destroy();
    throw err;
  }
}

/** The engine's calls on the parts made by `createMlpEngine`. */
function mlpEngine(
  ctx: StepContext,
  blank: BlankPixels,
  owned: (GPUBuffer | GPUTexture)[],
  opts: MlpEngineOptions,
): MlpEngine {
  const { device, setup, buffers: b } = ctx;
  const { batches } = setup;
  const chunks = new ChunkedSteps(ctx, opts.stepsPerSubmit ?? 32);
  const engine: MlpEngine = {
    steps: batches.length,
    optimizer: setup.optimizer,
    plan: ctx.plan,
    batches,
    maxRows: setup.maxRows,
    shapes: ctx.shapes,
    runSteps: (first, count) => chunks.submit(first, count),
    trainEpoch: (onProgress, stop) => trainEpoch(chunks, opts.afterSubmit, onProgress, stop),
    readbacks: EPOCH_READBACKS,
    encodeEpoch: () => chunks.encodeEpoch(),
    readLosses: (start, count) => readRange(device, b.losses, start, count),
    async evaluate() {
      return (await engine.evaluateConfusion()).correct;
    },
    evaluateConfusion: () => evaluateConfusion(ctx),
    async readParams() {
      const t = await readPacked(device, b.paramBuffer, b.packed);
      return {
        sizes: [...setup.sizes],
        weights: [0, 2, 4].map((i) => t[i]),
        biases: [1, 3, 5].map((i) => t[i]),
      };
    },
    async readOptimizerState() {
      const parts = await Promise.all(b.stateBuffers.map((s) => readPacked(device, s, b.packed)));
      return { step: chunks.stepsTaken, parts };
    },
    writeOptimizerState(state) {
      writeOptimizerState(ctx, state);
      chunks.stepsTaken = state.step;
    },
    setOrder: (order) => setOrder(ctx, blank, order),
    setVariant: (slot, v) => setVariant(ctx, slot, v),
    timeVariant: (slot, v, rows, reps) => timeVariant(ctx, slot, v, rows, reps),
    destroy() {
      for (const o of owned) o.destroy();
    },
  };
  return engine;
}

// ---------------------------------------------------------------------------
// Training: chunks of steps, epochs

/** Submits runs of training steps and keeps count of the optimiser's steps and the epochs. */
class ChunkedSteps {
  /** Optimiser steps taken (Adam's t of the last one). */
  stepsTaken = 0;
  /** Epochs begun; epoch e reads its loss back through readback e % EPOCH_READBACKS. */
  #epochsBegun = 0;
  constructor(readonly ctx: StepContext, readonly stepsPerSubmit: number) {}

  /** The readback (0 .. EPOCH_READBACKS − 1) of a new epoch. */
  epochReadback(): number {
    return this.#epochsBegun++ % EPOCH_READBACKS;
  }

  /**
   * Encodes steps `first .. first+count-1` into one command buffer, then
   * `tail` (if any) into the same one, and submits it.
   */
  submit(first: number, count: number, tail?: (rec: Recorder) => void): void {
    const { ctx } = this;
    const n = ctx.setup.batches.length;
    if (first < 0 || count < 0 || first + count > n) {
      throw new RangeError(`steps ${first}..${first + count - 1} outside 0..${n - 1}`);
    }
    ctx.buffers.optimizerTable.ensure(this.stepsTaken - first);
    const rec = record(
      ctx.device,
      `steps ${first}..${first + count - 1}${tail ? " and the loss sum" : ""}`,
    );
    for (let i = first; i < first + count; i++) encodeStep(ctx, rec, i);
    tail?.(rec);
    submit(ctx.device, rec);
    this.stepsTaken += count;
  }

  /** A whole epoch in one command buffer, not yet submitted (`MlpEngine.encodeEpoch`). */
  encodeEpoch(): EncodedEpoch {
    const { ctx } = this;
    const readback = this.epochReadback();
    const n = ctx.setup.batches.length;
    ctx.buffers.optimizerTable.ensure(this.stepsTaken);
    const rec = record(ctx.device, `epoch: steps 0..${n - 1} and the loss sum`);
    for (let i = 0; i < n; i++) encodeStep(ctx, rec, i);
    encodeEpochEnd(ctx, rec, readback);
    const commands = outsidePass(rec).finish();
    return {
      submit: () => {
        ctx.device.queue.submit([commands]);
        this.stepsTaken += n;
        return submittedEpoch(ctx, readback);
      },
    };
  }
}

/**
 * The readbacks of an epoch that ended with `encodeEpochEnd(ctx, rec, readback)`
 * and was submitted.
 */
function submittedEpoch(ctx: StepContext, readback: number): SubmittedEpoch {
  const b = ctx.buffers;
  let loss: Promise<number> | undefined;
  return {
    readLoss: () => {
      if (!loss) {
        loss = readMapped(b.epochStaging[readback]).then((bytes) => new Float32Array(bytes)[0]);
        loss.catch(() => {}); // a readback nobody awaits (the run failed) is no unhandled error
      }
      return loss;
    },
    readLosses: (start, count) =>
      readRange(ctx.device, b.lossCopies?.[readback] ?? b.losses, start, count),
  };
}

/**
 * One epoch in chunks of steps (`Engine.trainEpoch`). A short first chunk
 * starts the GPU after encoding a few steps; each next chunk is encoded while
 * the one before runs. With `onProgress` or `stop`, at most two chunks are in
 * flight: after submitting chunk i + 1, chunk i is awaited and reported; then,
 * unless chunk i + 1 was the epoch's last, `stop` is asked (between chunks: an
 * epoch whose every step was submitted is never interrupted).
 */
async function trainEpoch(
  chunks: ChunkedSteps,
  afterSubmit: (() => Promise<void>) | undefined,
  onProgress?: (stepsDone: number) => void,
  stop?: () => boolean,
): Promise<number> {
  const { ctx, stepsPerSubmit } = chunks;
  const n = ctx.setup.batches.length;
  const readback = chunks.epochReadback();
  let previous: { done: Promise<void>; steps: number } | undefined; // the chunk before the last
  const firstChunk = Math.min(stepsPerSubmit, FIRST_CHUNK_STEPS);
  for (let first = 0, count = 0; first < n; first += count) {
    count = Math.min(first === 0 ? firstChunk : stepsPerSubmit, n - first);
    // The loss sum rides in the epoch's last command buffer.
    const last = first + count === n;
    chunks.submit(first, count, last ? (rec) => encodeEpochEnd(ctx, rec, readback) : undefined);
    await afterSubmit?.();
    if (!onProgress && !stop) continue;
    // Keep the GPU fed with this chunk while waiting for the one before.
    const done = ctx.device.queue.onSubmittedWorkDone();
    if (previous) {
      await previous.done;
      onProgress?.(previous.steps);
    }
    previous = { done, steps: first + count };
    if (!last && stop?.()) {
      await done;
      throw new EpochInterrupted(first + count);
    }
  }
  if (previous && onProgress) {
    await previous.done;
    onProgress(previous.steps);
  }
  return await submittedEpoch(ctx, readback).readLoss();
}

// ---------------------------------------------------------------------------
// Test pass, optimiser state, order, variants

/** The test pass (one submit, one readback). */
async function evaluateConfusion(ctx: StepContext): Promise<TestCounts> {
  const n3 = ctx.setup.sizes[3];
  const rec = record(ctx.device, "test evaluation");
  encodeTestPass(ctx, rec);
  submit(ctx.device, rec);
  const counts = new Uint32Array(await readMapped(ctx.buffers.confusionStaging));
  const confusion = Array.from(
    { length: n3 },
    (_, t) => Array.from(counts.subarray(t * n3, (t + 1) * n3)),
  );
  let correct = 0;
  for (let t = 0; t < n3; t++) correct += confusion[t][t];
  return { correct, confusion };
}

/** Writes the optimiser's state tensors into their packed buffers (the step count is the caller's). */
function writeOptimizerState(ctx: StepContext, state: OptimizerState): void {
  const { stateBuffers, packed } = ctx.buffers;
  if (state.parts.length !== stateBuffers.length) {
    throw new Error(`optimiser state has ${state.parts.length} parts, want ${stateBuffers.length}`);
  }
  state.parts.forEach((tensors, s) => {
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
      ctx.device.queue.writeBuffer(stateBuffers[s], packed.offsets[i], data.slice());
    });
  });
}

/** `Engine.setOrder`: the order, the row orders by ink, and one gather dispatch, submitted now. */
function setOrder(ctx: StepContext, blank: BlankPixels, order: Uint32Array): void {
  const { nTrain, batches } = ctx.setup;
  const p = ctx.pipelines, g = ctx.groups;
  if (!ctx.buffers.order || !p.gatherX || !p.gatherY || !g.gatherX || !g.gatherY) {
    throw new Error("setOrder needs the engine's shuffle option");
  }
  if (order.length !== nTrain) {
    throw new RangeError(`an order of ${order.length} images for ${nTrain}`);
  }
  ctx.device.queue.writeBuffer(ctx.buffers.order, 0, order.slice());
  writeTrainRowOrder(ctx.device, blank, batches, order);
  const rec = record(ctx.device, "gather the epoch's order");
  encodeGather(ctx, rec);
  submit(ctx.device, rec);
}

/** `MlpEngine.setVariant`: checks `v`, then brings the weight textures up to date for it. */
function setVariant(ctx: StepContext, slot: Slot, v: MatmulVariant): void {
  pipelineOf(ctx.pipelines, slot, v); // throws when not compiled
  const { maxRows, maxTextureRows } = ctx.setup;
  if (!variantFits(v, ctx.shapes[slot], maxRows, maxTextureRows)) {
    throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
  }
  ctx.plan[slot] = v;
  const rec = record(ctx.device, "weight textures refresh");
  encodeWeightTextures(ctx, rec);
  submit(ctx.device, rec);
}

/** `MlpEngine.timeVariant`: `reps` dispatches on a tuning entry (lr 0), and one readback. */
async function timeVariant(
  ctx: StepContext,
  slot: Slot,
  v: MatmulVariant,
  rows: number,
  reps = 1,
): Promise<number> {
  const { tuneRows } = ctx.setup;
  const b = ctx.buffers;
  const at = tuneRows.indexOf(rows);
  if (at < 0) throw new RangeError(`can time ${tuneRows.join(" or ")} rows, not ${rows}`);
  const rec = record(ctx.device, `time ${slot} ${v.name}`);
  // lr 0 in the tuning entries: a weight-gradient variant leaves the weights as they are.
  for (let r = 0; r < reps; r++) dispatchSlot(ctx, rec, slot, b.tuneStep0 + at, rows, { v });
  outsidePass(rec).copyBufferToBuffer(b.lossTotal, 0, b.lossStaging, 0, 4);
  const t0 = performance.now();
  submit(ctx.device, rec);
  await readMapped(b.lossStaging);
  return performance.now() - t0;
}
