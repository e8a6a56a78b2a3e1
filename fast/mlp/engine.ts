/**
 * The fast MLP engine: an `Engine<MlpParams>` (fast/engine.ts) that makes
 * everything once, then encodes whole epochs into few command buffers.
 * This file only wires the parts together and answers the engine's calls;
 * each part lives in a file of its own, read top to bottom, and imports
 * only the ones listed after it:
 *
 * - fast/mlp/epochs.ts: the chunked epoch loop (`ChunkedSteps`, `trainEpoch`);
 * - fast/mlp/encode.ts: recording the stages: the dispatch helpers, each
 *   stage with its variant, the copies variants read, the epoch's end, the
 *   test pass;
 * - fast/mlp/step.ts: the stages of a training step and of the test pass,
 *   each with its formula and shapes;
 * - fast/mlp/pipelines.ts: bind group layouts, pipelines (compiled in
 *   parallel), bind groups;
 * - fast/mlp/variants/blank_pixels.ts: skipping all-zero pixels in layer 1 (ink keys,
 *   row orders, the nonzeroRows / nonzeroGroups lists);
 * - fast/mlp/buffers.ts: the buffers with their shapes (dataset as packed
 *   bytes, packed parameters / gradients / optimiser state, readbacks, the
 *   uniform step table `{start, count, lr, rowOrder}` at 256-byte strides,
 *   the optimiser's table), and readbacks;
 * - fast/mlp/activations.ts: activations, their gradients, and the copies
 *   (textures, a uniform) that variants read;
 * - fast/mlp/variants/matmul.ts: the slots, their shapes and the matmul variants.
 *
 * Above the engine, using it: fast/mlp/variants/tuner.ts (choosing a variant per
 * slot: timing, the cache; `createMlpEngineTuned`) and fast/mlp/model.ts
 * (the MLP as the run loop's `Model`).
 *
 * Any MLP [n0, n1, …, nL] with at least one hidden layer. All parameters
 * live in one packed buffer (W1, b1, …, WL, bL, each at a 256-byte aligned
 * offset). SGD is folded into the weight-gradient kernels;
 * with momentum or Adam they store ∂W, ∂b and one optimiser dispatch updates
 * the whole packed buffer at the end of each step. With shuffling, a gather
 * dispatch per epoch copies the training set into the epoch's order, so every
 * batch is still a contiguous range. Nothing is allocated while training.
 * WebGPU and plain TypeScript only: no files, no Deno APIs.
 *
 * @module
 */

import { type Gpu, readMapped } from "../../shared/gpu/device.ts";
import { checkBuffer, checkMlpLimits } from "../../shared/gpu/limits.ts";
import type { PassTimestamps } from "../../shared/gpu/profiler.ts";
import { UserError } from "../../shared/io/errors.ts";
import { batchRanges, type MlpParams } from "../../shared/model/mlp.ts";
import { type Dataset, pixelsOf } from "../../shared/data/dataset.ts";
import { OPTIMIZER_DEFAULTS, type OptimizerOptions, OPTIMIZERS } from "../../shared/model/optim.ts";
import type { OptimizerState, OverlappingEngine, TestCounts } from "../engine.ts";
import {
  type BlankPixelOptions,
  type BlankPixels,
  createBlankPixels,
  writeTrainRowOrder,
} from "./variants/blank_pixels.ts";
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
  dispatchSlot,
  encodeGather,
  encodeTestPass,
  planChanged,
  recordCache,
  refreshWeightMirrors,
  stagesOf,
  type StepContext,
} from "./encode.ts";
import { dispatcher, outsidePass, Pipelines, record, submit } from "../kit.ts";
import { ChunkedSteps, trainEpoch } from "./epochs.ts";
import {
  defaultVariant,
  type MatmulShape,
  type MatmulVariant,
  outputVariant,
  type Plan,
  type Slot,
  slotShapes,
  slotsOf,
  variantByName,
  variantFits,
} from "./variants/matmul.ts";
import { createBindGroups } from "./bind_groups.ts";
import { createLayouts, createPipelines, pipelineOf } from "./pipelines.ts";

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
   * tuner's screening rows (fast/mlp/variants/tuner.ts). Default: `batchSize` only.
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
   * adapters, `"gpu"` on GPUs; see `OutputVariant` in fast/mlp/variants/matmul.ts).
   * Both fuse the last hidden layer's input gradient into the output layer's
   * kernel. `"cpu"`: one row per invocation, W_L read from a uniform copy
   * (`outputLayer`; when W_L is too large for a uniform binding, as for
   * `"gpu"`), its weight gradient one row of W_L per invocation
   * (`weightGradRow`). `"gpu"`: 16 invocations per row (`outputLayerRows`),
   * its weight gradient split over chunks of rows, then summed in order
   * (`weightGradSplit` + `weightGradSplitSum`). The output layer (×10) is
   * tiny and not tuned: on a GPU, registers-4x4 left its weight gradient to
   * ~100 invocations looping over the batch (0.8 ms a step on an H200, more
   * than all the big matmuls), and tiles still loop over the whole batch in
   * 8 workgroups (37 µs a step).
   */
  smallKernels?: "cpu" | "gpu";
  /**
   * Texture variants of layer 1 leave out work on all-zero pixels (default
   * true): the weight gradient, per block of pixels, the rows whose pixels
   * there are all zero (`nonzeroRows.wgsl`); the forward kernel, per block
   * of rows, the groups of 16 pixels that are zero in all of them
   * (`nonzeroGroups.wgsl`). Same sums bit for bit; `false` does all the work.
   * See fast/mlp/variants/blank_pixels.ts.
   */
  skipZeros?: boolean;
  /**
   * With `skipZeros`: the layer-1 weight gradient's blocks of pixels are 4 × 4
   * tiles of the (square) images rather than runs of a row (default true; see
   * `tileWidth` in fast/mlp/variants/matmul.ts). Same sums bit for bit either way.
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
  /** The tunable slots of a step, in order (`slotsOf` the layer sizes). */
  readonly slots: readonly Slot[];
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
  if (pixels % 4 !== 0) {
    // The engine packs 4 pixels per u32 word (fast/mlp/buffers.ts).
    throw new UserError(
      `${data.files?.trainImages ?? data.source}: the fast MLP packs 4 pixels per word and ` +
        `cannot take ${data.height}x${data.width} images (${pixels} pixels, not a multiple of ` +
        `4); the slow trainer takes any size`,
    );
  }
  if (sizes.length < 3 || sizes[0] !== pixels) {
    throw new UserError(
      `the fast MLP needs at least one hidden layer and ${pixels} inputs for ` +
        `${data.height}x${data.width} images, got layers ${sizes.join("→")}`,
    );
  }
  const { batchSize, lr } = opts;
  const { limits } = gpu.device;
  const L = sizes.length - 1;
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
    maxTextureRows: limits.maxTextureDimension2D,
    optimizer,
    // SGD stays folded into the weight-gradient kernels; the others store gradients.
    separateUpdate: !OPTIMIZERS[optimizer.optimizer].fusable,
    output: outputVariant(
      opts.smallKernels ?? (gpu.software ? "cpu" : "gpu"),
      sizes[L - 1] * sizes[L] * 4,
      limits.maxUniformBufferBindingSize,
    ),
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
  for (const slot of slotsOf(setup.sizes)) {
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
  const { limits } = gpu.device;
  checkMlpLimits(limits, setup.sizes, setup.maxRows);
  const images = `the training images [${setup.nTrain}, ${setup.sizes[0]}]`;
  checkBuffer(limits, images, setup.nTrain * setup.sizes[0], "use --train-limit");
  const plan = choosePlan(setup, gpu.software, opts.plan);
  const alloc = allocator(device);
  // When a part fails (a pipeline that does not compile, after every buffer
  // was made), what was made so far is freed before the error goes on.
  try {
    const blank = createBlankPixels(alloc, setup, data, opts);
    const buffers = createMlpBuffers(alloc, setup, params, data, blank.sortRows);
    const kernelOptions = { updateInPlace: !setup.separateUpdate, zeroLists: blank.zeroLists };
    const kit = new Pipelines(device);
    const layouts = createLayouts(kit, setup);
    const pipelines = await createPipelines(kit, setup, layouts, plan, kernelOptions, {
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
      groups: createBindGroups(
        device,
        layouts,
        buffers,
        blank,
        pipelines,
        OPTIMIZERS[setup.optimizer.optimizer],
      ),
      kernelOptions,
      stages: stagesOf(setup),
      mirrorsRead: new Set(),
      to: dispatcher(device, buffers.tuneStep0 + setup.tuneRows.length, opts.passTimestamps),
      made: recordCache(setup.sizes),
    };
    planChanged(ctx);
    // The weight textures start as copies of the weights, whatever the plan,
    // so that `setVariant` may switch to a texture variant at any time.
    const rec = record(ctx.to, "initial weight textures");
    refreshWeightMirrors(ctx, rec);
    submit(rec);
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
    slots: slotsOf(setup.sizes),
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
        weights: t.filter((_, i) => i % 2 === 0),
        biases: t.filter((_, i) => i % 2 === 1),
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
// Test pass, optimiser state, order, variants

/** The test pass (one submit, one readback). */
async function evaluateConfusion(ctx: StepContext): Promise<TestCounts> {
  const nL = ctx.setup.sizes[ctx.setup.sizes.length - 1];
  const rec = record(ctx.to, "test evaluation");
  encodeTestPass(ctx, rec);
  submit(rec);
  const counts = new Uint32Array(await readMapped(ctx.buffers.confusionStaging));
  const confusion = Array.from(
    { length: nL },
    (_, t) => Array.from(counts.subarray(t * nL, (t + 1) * nL)),
  );
  let correct = 0;
  for (let t = 0; t < nL; t++) correct += confusion[t][t];
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
  const rec = record(ctx.to, "gather the epoch's order");
  encodeGather(ctx, rec);
  submit(rec);
}

/** `MlpEngine.setVariant`: checks `v`, then brings the weight textures up to date for it. */
function setVariant(ctx: StepContext, slot: Slot, v: MatmulVariant): void {
  pipelineOf(ctx.pipelines, slot, v); // throws when not compiled
  const { maxRows, maxTextureRows } = ctx.setup;
  if (!variantFits(v, ctx.shapes[slot], maxRows, maxTextureRows)) {
    throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
  }
  ctx.plan[slot] = v;
  planChanged(ctx);
  const rec = record(ctx.to, "weight textures refresh");
  refreshWeightMirrors(ctx, rec);
  submit(rec);
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
  const rec = record(ctx.to, `time ${slot} ${v.name}`);
  // lr 0 in the tuning entries: a weight-gradient variant leaves the weights as they are.
  for (let r = 0; r < reps; r++) dispatchSlot(ctx, rec, slot, b.tuneStep0 + at, rows, v);
  outsidePass(rec).copyBufferToBuffer(b.lossTotal, 0, b.lossStaging, 0, 4);
  const t0 = performance.now();
  submit(rec);
  await readMapped(b.lossStaging);
  return performance.now() - t0;
}
