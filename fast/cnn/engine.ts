/**
 * The fast trainer's convolutional network (`--model cnn`): the CNN of
 * `shared/model/cnn.ts` trained entirely on the GPU with SGD, momentum or
 * Adam, as an `Engine<CnnParams>` (fast/engine.ts). This file makes the
 * engine (pipelines and bind groups over the buffers of fast/cnn/buffers.ts)
 * and runs it (epochs, the order, the test pass, readbacks); the stages of a
 * step are fast/cnn/step.ts; pipelines, stages, dispatches and the
 * chunked epoch loop are the kit's (fast/kit.ts). No files, flags or logs here: those are the run
 * loop's (fast/run.ts, fast/cnn/model.ts).
 *
 * How it is made fast (the same ideas as the fast MLP trainer):
 *
 * - Everything is made once, by `createCnnEngine`: shader modules (each
 *   kernel specialised to the network's shapes with `const` lines), every
 *   pipeline compiled asynchronously and in parallel, layouts shared per
 *   binding signature, buffers, bind groups. A step records 21 dispatches
 *   with the im2col variants, 19 with conv2's texture variant alone, 18 with
 *   conv1's too (the default on MNIST's shape), and allocates nothing.
 * - The dataset lives on the GPU as packed bytes (4 pixels per u32). With
 *   `shuffle`, `setOrder` copies the training images and labels into the
 *   epoch's order on the GPU (gatherRows.wgsl), so every step reads a
 *   contiguous batch. Each batch is a `{start, count}` entry of one uniform
 *   buffer at 256-byte strides, chosen by a dynamic offset, so one bind group
 *   per kernel serves every batch, the last partial one included.
 * - Many steps per submit, one compute pass each (at most two submits in
 *   flight when progress is shown or a stop may be asked for); per-image
 *   losses are summed on the GPU and read back once per epoch; the test
 *   set's confusion counts are made on the GPU and read back once.
 * - Convolutions are im2col + a register-blocked matmul (`cnnMatmulVec4`:
 *   8×8 outputs per thread, vec4 loads; `cnnMatmul`, 4×4 scalar, for shapes
 *   that are not multiples of 8); the weight gradient is a split-K matmul on the
 *   im2col columns (`cnnMatmulTransA` + `cnnSumSlices`), the input gradient
 *   of conv2 a matmul with Wᵀ (`cnnMatmulTransB`) then col2im. Biases ride
 *   as the last row of each weight matrix, so the matmuls add them and the
 *   weight gradient computes theirs. ReLU is fused into the max-pool and its
 *   mask into the max-pool's backward. im2col, col2im and the pool's backward
 *   have vec4 forms too (4 columns or channels per thread). `fast/DESIGN.md`
 *   has the measurements behind these choices.
 * - The texture variants (the default on CPU adapters where the shapes fit;
 *   bit for bit the same sums). conv2's (fast/cnn/textures.ts): a1 and ∂z2
 *   written by the pool and its backward straight into textures, [W2; b2]
 *   copied into one; the convolution, its weight gradient and its input
 *   gradient (col2im and pool1's backward included) as implicit GEMMs
 *   reading them, no im2col columns. conv1's (fast/cnn/textures_conv1.ts,
 *   with conv2's): the convolution, ReLU and pool1 in one kernel reading the
 *   image, and the weight gradient read from the image too. On llvmpipe
 *   every load costs 15 to 24 multiply-adds (bench/load_costs.ts): these
 *   kernels load each value once for many.
 * - All parameters live in one buffer (each layer's `[K + 1, N]` block at a
 *   256-byte aligned offset), gradients in another with the same layout, so
 *   the optimiser is one dispatch per step.
 *
 * @module
 */

import { type CnnDims, cnnDims, type CnnParams, type CnnShape } from "../../shared/model/cnn.ts";
import { isSoftwareAdapter, readBuffer, readMapped } from "../../shared/gpu/device.ts";
import type { PassTimestamps } from "../../shared/gpu/profiler.ts";
import {
  OPTIMIZER_UNIFORM_BYTES,
  type OptimizerOptions,
  optimizerUniform,
} from "../../shared/model/optim.ts";
import type { Engine, OptimizerState, TestCounts } from "../engine.ts";
import {
  type Dispatcher,
  dispatcher,
  encodeStages,
  outsidePass,
  Pipelines,
  record,
  runChunks,
  type Stage,
  stageBinder,
  type StageSpec,
  submit,
  UNIFORM_STRIDE,
} from "../kit.ts";
import { BATCH_BYTES } from "../../shared/kernels/sources.ts";
import { type CnnBuffers, type CnnNet, cnnStages, layerBlocks } from "./step.ts";
import { type CnnVariants, cnnVariants } from "./variants.ts";
import {
  type BufferSources,
  checkBatchSize,
  checkDataset,
  createBuffers,
  type MadeBuffers,
  type Ordered,
} from "./buffers.ts";

/** Training steps recorded into one command buffer. */
const STEPS_PER_SUBMIT = 16;

/**
 * What a CNN engine is made for: the parameters, batch size and data its
 * buffers start from (`BufferSources`, fast/cnn/buffers.ts), and how it trains.
 */
export interface CnnEngineOptions extends BufferSources {
  /** The learning rate of every step. */
  lr: number;
  optimizer: OptimizerOptions;
  /**
   * Where profiling hooks in: called for each compute pass with its name and
   * floating-point operations; returns the pass's timestampWrites. When given,
   * every dispatch gets a pass of its own.
   */
  passTimestamps?: PassTimestamps;
  /**
   * conv2's variant (fast/cnn/textures.ts); default (`cnnVariants`) "texture"
   * on a CPU adapter where `conv2TextureFits`, else "im2col". Both give bit
   * for bit the same results.
   */
  conv2?: "texture" | "im2col";
  /**
   * conv1's variant (fast/cnn/textures_conv1.ts), likewise (`conv1TextureFits`);
   * "texture" needs conv2's "texture" (its kernel writes a1 into conv2's texture).
   */
  conv1?: "texture" | "im2col";
  /** Whether the adapter runs on the CPU (default: from `device.adapterInfo`). */
  software?: boolean;
}

/** The CNN's engine: `Engine<CnnParams>` and the sizes it was made for. */
export interface CnnEngine extends Engine<CnnParams> {
  readonly shape: CnnShape;
  readonly dims: CnnDims;
  readonly batchSize: number;
  /** Training and test set sizes. */
  readonly nTrain: number;
  readonly nTest: number;
  /** The variant each convolution runs (`cnnVariants`). */
  readonly variants: CnnVariants;
}

// ---------------------------------------------------------------------------
// Creation

/**
 * Uploads the parameters and the data, makes every buffer and bind group,
 * and compiles every pipeline (in parallel); resolves when all are ready.
 * Throws a `UsageError` when a batch would not fit the device's buffers, a
 * `UserError` when the data is shorter than `n` says.
 */
export async function createCnnEngine(
  device: GPUDevice,
  opts: CnnEngineOptions,
): Promise<CnnEngine> {
  const shape = { ...opts.params.shape };
  const dims = cnnDims(shape);
  const pixels = shape.height * shape.width;
  checkDataset(shape, opts.data);
  const { layers, floats } = layerBlocks(shape);
  const adapter = {
    maxTextureDimension2D: device.limits.maxTextureDimension2D,
    software: opts.software ?? isSoftwareAdapter(device.adapterInfo),
  };
  const variants = cnnVariants(shape, opts.batchSize, adapter, opts);
  checkBatchSize(device, shape, dims, opts.batchSize, variants);
  const net: CnnNet = {
    shape,
    dims,
    layers,
    paramFloats: floats,
    pixels,
    words: Math.ceil(pixels / 4),
    nTrain: opts.data.trainLabels.length,
    optimizer: opts.optimizer.optimizer,
    ...variants,
  };
  const owned: (GPUBuffer | GPUTexture)[] = [];
  try {
    const made = createBuffers(device, net, opts, owned);
    const specs = cnnStages(net, made.buffers);
    const bind = stageBinder(device, new Pipelines(device), {
      batch: { buffer: made.batchUniform, size: BATCH_BYTES },
      step: { buffer: made.stepUniform, size: OPTIMIZER_UNIFORM_BYTES },
    });
    // All at once, so that every pipeline compiles in parallel (and every failure is handled).
    const [trainStep, testBatch, epochEnd, gather] = await Promise.all([
      Promise.all(specs.trainStep.map(bind)),
      Promise.all(specs.testBatch.map(bind)),
      bind(specs.epochEnd),
      made.ordered && gatherStages(net, made.buffers, made.ordered, bind),
    ]);
    return new GpuCnnEngine({
      device,
      net,
      batchSize: opts.batchSize,
      lr: opts.lr,
      optimizer: { ...opts.optimizer },
      nTest: opts.data.testLabels.length,
      to: dispatcher(device, made.sumEntry + 1, opts.passTimestamps),
      owned,
      made,
      trainStep,
      testBatch,
      epochEnd,
      gather,
    });
  } catch (err) {
    for (const b of owned) b.destroy();
    throw err;
  }
}

/**
 * `setOrder`'s two dispatches (gatherRows.wgsl): out[p] = src[order[p]] for
 * the images (rows of `words` u32) and the labels (rows of one u32).
 */
async function gatherStages(
  net: CnnNet,
  b: CnnBuffers,
  ordered: Ordered,
  bind: (spec: StageSpec) => Promise<Stage>,
): Promise<{ images: Stage; labels: Stage }> {
  const gather = (what: string, words: number, src: GPUBuffer, out: GPUBuffer) =>
    bind({
      name: `${what} gatherRows`,
      kernel: "gatherRows",
      constants: { ROWS: net.nTrain, WORDS: words },
      uniform: "none",
      bindings: { order: ordered.order, src, out },
      threads: () => net.nTrain * words,
      flops: () => 0,
    });
  const [images, labels] = await Promise.all([
    gather("images", net.words, ordered.images, b.trainImages),
    gather("labels", 1, ordered.labels, b.trainLabels),
  ]);
  return { images, labels };
}

// ---------------------------------------------------------------------------
// The engine

/** What `createCnnEngine` hands the engine: everything made, pipelines compiled. */
interface EngineParts {
  device: GPUDevice;
  net: CnnNet;
  batchSize: number;
  lr: number;
  optimizer: OptimizerOptions;
  nTest: number;
  /** The recorders' device, profiler hook and dynamic offsets. */
  to: Dispatcher;
  owned: (GPUBuffer | GPUTexture)[];
  made: MadeBuffers;
  trainStep: Stage[];
  testBatch: Stage[];
  epochEnd: Stage;
  gather?: { images: Stage; labels: Stage };
}

/** `CnnEngine` on its GPU objects (see the module doc). */
class GpuCnnEngine implements CnnEngine {
  readonly shape: CnnShape;
  readonly dims: CnnDims;
  readonly batchSize: number;
  readonly optimizer: OptimizerOptions;
  readonly nTrain: number;
  readonly nTest: number;
  readonly variants: CnnVariants;
  readonly #p: EngineParts;
  /** The optimiser's entries of one epoch, rewritten per epoch (its steps' t). */
  readonly #stepTable: ArrayBuffer;
  readonly #epochEnd: Stage[];
  /** Optimiser steps taken (Adam's t of the last step). */
  #stepsTaken = 0;

  constructor(parts: EngineParts) {
    this.#p = parts;
    this.shape = parts.net.shape;
    this.dims = parts.net.dims;
    this.batchSize = parts.batchSize;
    this.optimizer = parts.optimizer;
    this.nTrain = parts.net.nTrain;
    this.nTest = parts.nTest;
    this.variants = { conv1: parts.net.conv1, conv2: parts.net.conv2 };
    const { trainRanges } = parts.made;
    this.#stepTable = new ArrayBuffer(Math.max(1, trainRanges.length) * UNIFORM_STRIDE);
    this.#epochEnd = [parts.epochEnd];
  }

  /** Training steps (batches) per epoch. */
  get steps(): number {
    return this.#p.made.trainRanges.length;
  }

  /** Gathers the training images and labels into `order` on the GPU (needs the `shuffle` option). */
  setOrder(order: Uint32Array): void {
    const { device, made, gather, to } = this.#p;
    if (!gather || !made.ordered) throw new Error("setOrder needs the engine's shuffle option");
    if (order.length !== this.nTrain) {
      throw new RangeError(`an order of ${order.length} images for ${this.nTrain}`);
    }
    device.queue.writeBuffer(made.ordered.order, 0, order.slice());
    const rec = record(to, "CNN gather the epoch's order");
    encodeStages(rec, [gather.images, gather.labels], 0, 0, 0);
    submit(rec);
  }

  /**
   * One epoch: a step per batch, `STEPS_PER_SUBMIT` steps per submit; returns
   * the sum of the per-image losses (one readback). Without `onProgress` and
   * `stop` every chunk is submitted at once. With either, at most two chunks
   * are in flight (the GPU runs one while the other is waited for), and
   * `onProgress(stepsDone)` is called as each finishes; `stop` is asked
   * between chunks (not after the last): when true, the submitted steps
   * finish and `EpochInterrupted` is thrown (the parameters then hold a
   * part-epoch).
   */
  async trainEpoch(
    onProgress?: (stepsDone: number) => void,
    stop?: () => boolean,
  ): Promise<number> {
    const { device, net, made, lr } = this.#p;
    const nb = made.trainRanges.length;
    for (let b = 0; b < nb; b++) {
      const t = this.#stepsTaken + b + 1;
      optimizerUniform(net.paramFloats, t, lr, this.optimizer, this.#stepTable, b * UNIFORM_STRIDE);
    }
    device.queue.writeBuffer(made.stepUniform, 0, this.#stepTable);
    await runChunks(
      {
        device,
        steps: nb,
        stepsPerSubmit: STEPS_PER_SUBMIT,
        firstChunk: STEPS_PER_SUBMIT,
        submit: (first, count) => {
          this.#submitSteps(first, first + count);
          this.#stepsTaken += count;
        },
      },
      onProgress,
      stop,
    );
    return new Float32Array(await readMapped(made.lossReadback))[0];
  }

  /** Records and submits steps `first..last-1`; the last chunk adds the epoch's loss sum and its copy. */
  #submitSteps(first: number, last: number) {
    const { made, trainStep, to } = this.#p;
    const end = last === made.trainRanges.length;
    const rec = record(to, `CNN steps ${first + 1}–${last}`);
    for (let b = first; b < last; b++) encodeStages(rec, trainStep, b, b, made.trainRanges[b][1]);
    if (end) {
      encodeStages(rec, this.#epochEnd, made.sumEntry, 0, 0);
      outsidePass(rec).copyBufferToBuffer(made.buffers.total, 0, made.lossReadback, 0, 4);
    }
    submit(rec);
  }

  /** Per-image losses of the last epoch at positions `start..start+count-1` of its order. */
  async readLosses(start: number, count: number): Promise<Float32Array> {
    if (start < 0 || count < 0 || start + count > this.nTrain) {
      throw new RangeError(`losses ${start}..${start + count - 1} of ${this.nTrain}`);
    }
    if (count === 0) return new Float32Array(0);
    const { device, made } = this.#p;
    return new Float32Array(await readBuffer(device, made.buffers.losses, count * 4, start * 4));
  }

  /** Correct test predictions (first-maximum argmax), counted on the GPU: the confusion's trace. */
  async evaluate(): Promise<number> {
    return (await this.evaluateConfusion()).correct;
  }

  /**
   * The test pass: `confusion[true][predicted]` (first-maximum argmax of the
   * logits) counted on the GPU, read back once; `correct` is its trace.
   */
  async evaluateConfusion(): Promise<TestCounts> {
    const C = this.shape.classes;
    const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
    if (this.nTest === 0) return { correct: 0, confusion };
    const { made, testBatch, to } = this.#p;
    const rec = record(to, "CNN test set");
    outsidePass(rec).clearBuffer(made.buffers.confusion);
    const first = made.trainRanges.length;
    made.testRanges.forEach(([, count], b) => encodeStages(rec, testBatch, first + b, 0, count));
    outsidePass(rec).copyBufferToBuffer(
      made.buffers.confusion,
      0,
      made.confusionReadback,
      0,
      C * C * 4,
    );
    submit(rec);
    const counts = new Uint32Array(await readMapped(made.confusionReadback));
    let correct = 0;
    for (let t = 0; t < C; t++) {
      for (let p = 0; p < C; p++) confusion[t][p] = counts[t * C + p];
      correct += counts[t * C + t];
    }
    return { correct, confusion };
  }

  /** The current parameters, read back from the GPU. */
  async readParams(): Promise<CnnParams> {
    const { device, made } = this.#p;
    const t = this.#unpack(new Float32Array(await readBuffer(device, made.buffers.params)));
    return { shape: { ...this.shape }, weights: [t[0], t[2], t[4]], biases: [t[1], t[3], t[5]] };
  }

  /**
   * The optimiser's state: per part of it (the velocity; Adam's m, then v),
   * per tensor in the order W1, b1, W2, b2, W3, b3 (`cnnTensors`); `step`
   * the steps taken (Adam's t).
   */
  async readOptimizerState(): Promise<OptimizerState> {
    const parts: Float32Array[][] = [];
    for (const buffer of this.#p.made.buffers.state) {
      parts.push(this.#unpack(new Float32Array(await readBuffer(this.#p.device, buffer))));
    }
    return { step: this.#stepsTaken, parts };
  }

  /** Sets the optimiser's state and step count (`--resume`); shapes as `readOptimizerState`'s. */
  writeOptimizerState(state: OptimizerState): void {
    const { device, net, made } = this.#p;
    if (state.parts.length !== made.buffers.state.length) {
      throw new RangeError(
        `optimiser state has ${state.parts.length} parts, want ${made.buffers.state.length}`,
      );
    }
    state.parts.forEach((tensors, i) => {
      const packed = new Float32Array(net.paramFloats);
      net.layers.forEach(({ k, kPad, n, offset }, l) => {
        const [w, b] = [tensors[2 * l], tensors[2 * l + 1]];
        if (w?.length !== k * n || b?.length !== n) {
          throw new RangeError(`optimiser state of layer ${l + 1} has the wrong size`);
        }
        packed.set(w, offset);
        packed.set(b, offset + kPad * n);
      });
      device.queue.writeBuffer(made.buffers.state[i], 0, packed);
    });
    this.#stepsTaken = state.step;
  }

  /** Frees every buffer the engine made (the device stays open). */
  destroy(): void {
    for (const b of this.#p.owned) b.destroy();
  }

  /** The tensors W1, b1, W2, b2, W3, b3 of a buffer in the parameters' packed layout. */
  #unpack(all: Float32Array): Float32Array[] {
    return this.#p.net.layers.flatMap(({ k, kPad, n, offset }) => [
      all.slice(offset, offset + k * n),
      all.slice(offset + kPad * n, offset + (kPad + 1) * n),
    ]);
  }
}
