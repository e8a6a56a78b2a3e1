/**
 * The fast trainer's convolutional network (`--model cnn`): the CNN of
 * `shared/model/cnn.ts` trained entirely on the GPU with SGD, momentum or Adam.
 *
 * How it is made fast (the same ideas as the fast MLP trainer):
 *
 * - Everything is made once: shader modules, pipelines (shapes are WGSL
 *   `override` constants), buffers, bind groups. A step records 21
 *   dispatches and allocates nothing.
 * - The dataset lives on the GPU as packed bytes (4 pixels per u32), read
 *   through an index buffer of image ids (the epoch's order, so `--shuffle`
 *   never copies images). Each batch is a `{start, count}` entry of one
 *   uniform buffer at 256-byte strides, chosen by a dynamic offset, so one
 *   bind group per kernel serves every batch, the last partial one included.
 * - Many steps per submit, one compute pass each; per-image losses are summed
 *   on the GPU and read back once per epoch; the test accuracy is counted on
 *   the GPU and read back once.
 * - Convolutions are im2col + a register-blocked matmul (`cnnMatmulVec4`:
 *   8×8 outputs per thread, vec4 loads; `cnnMatmul`, 4×4 scalar, for shapes
 *   that are not multiples of 8); the weight gradient is a split-K matmul on the
 *   im2col columns (`cnnMatmulTransA` + `cnnSumSlices`), the input gradient
 *   of conv2 a matmul with Wᵀ (`cnnMatmulTransB`) then col2im. Biases ride
 *   as the last row of each weight matrix, so the matmuls add them and the
 *   weight gradient computes theirs. ReLU is fused into the max-pool and its
 *   mask into the max-pool's backward. im2col, col2im and the pool's backward
 *   have vec4 forms too (4 columns or channels per thread). `fast/CNN.md`
 *   has the measurements behind these choices.
 * - All parameters live in one buffer (each layer's `[K + 1, N]` block at a
 *   256-byte aligned offset), gradients in another with the same layout, so
 *   the optimiser is one dispatch per step.
 *
 * @module
 */

import {
  type CnnDims,
  cnnDims,
  cnnLayerSizes,
  type CnnParams,
  type CnnShape,
} from "../../shared/model/cnn.ts";
import { UsageError, UserError } from "../../shared/io/errors.ts";
import { bufferFrom, readBuffer } from "../../shared/gpu/device.ts";
import { batchRanges } from "../../shared/model/mlp.ts";
import {
  OPTIMIZER_UNIFORM_BYTES,
  type OptimizerOptions,
  optimizerUniform,
} from "../../shared/model/optim.ts";
import { EpochInterrupted } from "../engine.ts";
import { kernelSource } from "../../shared/kernels/sources.ts";

/** Threads per workgroup of every CNN kernel (but cnnTotalLoss, one workgroup of 256). */
export const CNN_WORKGROUP = 64;
/** Rows of the batch each split-K slice of the weight gradient sums. */
export const SLICE_ROWS = 256;
/** Stride of the per-batch and per-step uniform entries (WebGPU's dynamic-offset alignment). */
export const UNIFORM_STRIDE = 256;
/** Training steps recorded into one command buffer. */
export const STEPS_PER_SUBMIT = 16;
/** Names of the three layers, for labels and the profile. */
const LAYER_NAMES = ["conv1", "conv2", "linear"];
/** WebGPU's default cap on workgroups in one dimension of a dispatch. */
const MAX_GROUPS_PER_DIMENSION = 65535;

/**
 * What a binding of a CNN kernel is: the per-batch `{start, count}` uniform
 * (or the per-step optimiser uniform), both at a dynamic offset; a plain
 * uniform; read-only storage; writable storage.
 */
export type Slot = "dynamic" | "uniform" | "read" | "write";

/**
 * Workgroups for `threads` threads of 64: x up to 65535, the rest in y. The
 * kernels rebuild the index as `(group.y · groups.x + group.x) · 64 + local`.
 */
export function workgroupsFor(threads: number): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / CNN_WORKGROUP));
  const x = Math.min(groups, MAX_GROUPS_PER_DIMENSION);
  return [x, Math.ceil(groups / x)];
}

/** A compute pipeline of `shared/kernels/<kernel>.wgsl` with an explicit layout of `slots`. */
export function kernelPipeline(
  device: GPUDevice,
  kernel: string,
  slots: readonly Slot[],
  constants: Record<string, number> = {},
  module?: GPUShaderModule,
): GPUComputePipeline {
  const what = Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(" ");
  const layout = device.createBindGroupLayout({
    label: `${kernel} bind group layout`,
    entries: slots.map((slot, binding) => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      ...(slot === "dynamic" || slot === "uniform"
        ? { buffer: { type: "uniform" as const, hasDynamicOffset: slot === "dynamic" } }
        : {
          buffer: { type: slot === "read" ? "read-only-storage" as const : "storage" as const },
        }),
    })),
  });
  return device.createComputePipeline({
    label: `${kernel} pipeline${what ? ` (${what})` : ""}`,
    layout: device.createPipelineLayout({
      label: `${kernel} pipeline layout`,
      bindGroupLayouts: [layout],
    }),
    compute: {
      module: module ??
        device.createShaderModule({ label: `${kernel} module`, code: kernelSource(kernel) }),
      entryPoint: "main",
      constants,
    },
  });
}

/** Images (bytes, `PIXELS` each) and their labels. */
export interface LabeledImages {
  images: Uint8Array;
  labels: Uint8Array;
  /** How many of them to use (the first n). */
  n: number;
}

/** The optimiser state of a `CnnEngine`, per tensor W1, b1, W2, b2, W3, b3. */
export interface CnnEngineState {
  /** Steps taken (Adam's t of the last step). */
  step: number;
  /** Momentum's velocity or Adam's m; empty for SGD. */
  first: Float32Array[];
  /** Adam's v; empty otherwise. */
  second: Float32Array[];
}

/** What a `CnnEngine` is made for. */
export interface CnnEngineOptions {
  /** Starting parameters (their `shape` is the network's). */
  params: CnnParams;
  /** Images per step (the last batch of an epoch may be smaller). */
  batchSize: number;
  optimizer: OptimizerOptions;
  train: LabeledImages;
  test?: LabeledImages;
  /**
   * Where profiling hooks in: called for each compute pass with its name and
   * floating-point operations; returns the pass's timestampWrites. When given,
   * every dispatch gets a pass of its own.
   */
  passTimestamps?: (kernel: string, flops: number) => GPUComputePassTimestampWrites | undefined;
}

/** One recorded dispatch: which pipeline, which bindings, how many threads for a batch. */
interface Stage {
  /** What the profiler calls it: layer and kernel, e.g. "conv2 cnnMatmulTransB". */
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Which dynamic offset binding 0 takes, if any. */
  offset: "batch" | "step" | "none";
  threads: (count: number) => number;
  /** Floating-point operations for a batch of `count` (0 where not worth counting). */
  flops: (count: number) => number;
}

/** Where a layer's `[K + 1, N]` block (weights, then the bias row) sits in the parameter buffer. */
interface LayerBlock {
  k: number;
  /** K as the kernels see it: k, or for a conv layer using the vec4 kernels k rounded up to 8. */
  kPad: number;
  n: number;
  /** Whether the layer uses the vec4 (8×8 block) matmul kernels. */
  vec4: boolean;
  /** Offset in floats, a multiple of 64 (256 bytes, the storage-offset alignment). */
  offset: number;
}

/**
 * The CNN on the GPU: parameters, optimiser state, activations, the resident
 * dataset, and every pipeline and bind group, made once. `trainEpoch` runs an
 * epoch of steps; `evaluate` counts correct test predictions.
 */
export class CnnEngine {
  readonly device: GPUDevice;
  readonly shape: CnnShape;
  readonly dims: CnnDims;
  readonly batchSize: number;
  readonly optimizer: OptimizerOptions;
  /** Training and test set sizes. */
  readonly nTrain: number;
  readonly nTest: number;
  readonly #owned: GPUBuffer[] = [];
  readonly #modules = new Map<string, GPUShaderModule>();
  readonly #layers: LayerBlock[];
  readonly #paramFloats: number;
  readonly #params: GPUBuffer;
  readonly #order: GPUBuffer;
  readonly #batchUniform: GPUBuffer;
  readonly #stepUniform: GPUBuffer;
  readonly #trainRanges: [number, number][];
  readonly #testRanges: [number, number][];
  readonly #trainStep: Stage[];
  readonly #testStep: Stage[];
  readonly #totalLossStage: Stage;
  readonly #passTimestamps: CnnEngineOptions["passTimestamps"];
  readonly #total: GPUBuffer;
  readonly #correct: GPUBuffer;
  readonly #readback: GPUBuffer;
  /** Optimiser state buffers: none (SGD), the velocity, or Adam's m and v. */
  readonly #state: GPUBuffer[];
  readonly #losses: GPUBuffer;
  readonly #logits: GPUBuffer;
  /** Every test image's logits `[nTest, classes]`, for the confusion matrix. */
  readonly #testLogits: GPUBuffer;
  /** The test step without its scoring: input, forward pass. */
  readonly #testForward: Stage[];
  readonly #testLabels: Uint8Array;
  /** Optimiser steps taken (Adam's t of the last step). */
  #steps = 0;

  /** Uploads parameters and data and builds every pipeline and bind group. */
  constructor(device: GPUDevice, opts: CnnEngineOptions) {
    this.device = device;
    this.shape = { ...opts.params.shape };
    this.dims = cnnDims(this.shape);
    this.batchSize = opts.batchSize;
    this.optimizer = { ...opts.optimizer };
    this.nTrain = opts.train.n;
    this.nTest = opts.test?.n ?? 0;
    this.#passTimestamps = opts.passTimestamps;
    const s = this.shape, d = this.dims, B = this.batchSize;
    const pixels = s.height * s.width;
    this.#checkBatchSize(pixels);

    // Parameters: one buffer, layer l's [K + 1, N] block at a 64-float aligned offset.
    let offset = 0;
    // A layer whose N is a multiple of 8 uses the vec4 kernels; a conv layer's K (its
    // im2col columns) is then padded to a multiple of 8 with zero rows of W.
    this.#layers = cnnLayerSizes(s).map(([k, n], l) => {
      const conv = l < 2;
      const vec4 = n % 8 === 0 && (conv || k % 8 === 0);
      const kPad = vec4 && conv ? Math.ceil(k / 8) * 8 : k;
      const block = { k, kPad, n, vec4, offset };
      offset += Math.ceil((kPad + 1) * n / 64) * 64;
      return block;
    });
    this.#paramFloats = offset;
    const packed = new Float32Array(offset);
    this.#layers.forEach(({ kPad, n, offset }, l) => {
      packed.set(opts.params.weights[l], offset);
      packed.set(opts.params.biases[l], offset + kPad * n);
    });
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.#params = this.#own(
      bufferFrom(device, "CNN parameters [W1|b1, W2|b2, W3|b3]", packed, storage),
    );
    const grads = this.#floats("CNN gradients (layout of the parameters)", offset);
    const state1 = opts.optimizer.optimizer === "sgd" ? undefined : this.#floats(
      opts.optimizer.optimizer === "adam" ? "Adam first moment m" : "momentum velocity v",
      offset,
    );
    const state2 = opts.optimizer.optimizer === "adam"
      ? this.#floats("Adam second moment v", offset)
      : undefined;

    // The dataset, resident as packed bytes, and the order the epoch visits it in.
    const train = this.#dataset("training", opts.train, pixels);
    this.#order = train.order;
    const test = opts.test ? this.#dataset("test", opts.test, pixels) : train;
    this.#testLabels = opts.test ? opts.test.labels.slice(0, this.nTest) : new Uint8Array(0);
    const losses = this.#floats("per-image losses of the epoch", Math.max(1, this.nTrain));
    this.#losses = losses;

    // Per-batch {start, count} entries: training batches, then test batches.
    this.#trainRanges = batchRanges(this.nTrain, B);
    this.#testRanges = batchRanges(this.nTest, B);
    const entries = [...this.#trainRanges, ...this.#testRanges];
    const batchBytes = new Uint32Array(entries.length * UNIFORM_STRIDE / 4);
    entries.forEach(([start, count], e) => {
      batchBytes[e * UNIFORM_STRIDE / 4] = start;
      batchBytes[e * UNIFORM_STRIDE / 4 + 1] = count;
    });
    this.#batchUniform = this.#own(
      bufferFrom(device, "CNN batch {start, count} entries", batchBytes, GPUBufferUsage.UNIFORM),
    );
    this.#stepUniform = this.#own(device.createBuffer({
      label: "CNN optimiser step entries",
      size: Math.max(1, this.#trainRanges.length) * UNIFORM_STRIDE,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    }));

    // Activations and their gradients, for a full batch.
    const m1 = d.h1 * d.w1, m2 = d.h2 * d.w2, p1 = d.p1h * d.p1w;
    const x = this.#floats("x [B, H, W, 1]", B * pixels);
    const [K1, K2] = [this.#layers[0].kPad, this.#layers[1].kPad];
    const cols1 = this.#floats("conv1 im2col columns [B·h1·w1, k·k (padded)]", B * m1 * K1);
    const z1 = this.#floats("conv1 z1 [B, h1, w1, C1]", B * m1 * s.c1);
    const pool1 = this.#floats("pool1 a1 [B, h1/2, w1/2, C1]", B * p1 * s.c1);
    const arg1 = this.#floats("pool1 argmax", B * p1 * s.c1);
    const cols2 = this.#floats("conv2 im2col columns [B·h2·w2, k·k·C1 (padded)]", B * m2 * K2);
    const z2 = this.#floats("conv2 z2 [B, h2, w2, C2]", B * m2 * s.c2);
    const pool2 = this.#floats("pool2 a2 [B, F]", B * d.features);
    const arg2 = this.#floats("pool2 argmax", B * d.features);
    const logits = this.#floats("logits [B, classes]", B * s.classes);
    this.#logits = logits;
    this.#testLogits = this.#floats("test logits [nTest, classes]", this.nTest * s.classes);
    const gLogits = this.#floats("∂logits [B, classes]", B * s.classes);
    const gPool2 = this.#floats("∂a2 [B, F]", B * d.features);
    const gZ2 = this.#floats("∂z2 [B, h2, w2, C2]", B * m2 * s.c2);
    const gCols2 = this.#floats("∂cols2 [B·h2·w2, k·k·C1 (padded)]", B * m2 * K2);
    const gPool1 = this.#floats("∂a1 [B, h1/2, w1/2, C1]", B * p1 * s.c1);
    const gZ1 = this.#floats("∂z1 [B, h1, w1, C1]", B * m1 * s.c1);
    const rowsPerImage = [m1, m2, 1];
    const partialFloats = Math.max(
      ...this.#layers.map(({ kPad, n }, l) =>
        Math.ceil(B * rowsPerImage[l] / SLICE_ROWS) * (kPad + 1) * n
      ),
    );
    const partial = this.#floats("split-K partial weight gradients", partialFloats);

    const W = this.#layers.map(({ kPad, n, offset }) => ({
      buffer: this.#params,
      offset: offset * 4,
      size: (kPad + 1) * n * 4,
    }));
    const dW = this.#layers.map(({ kPad, n, offset }) => ({
      buffer: grads,
      offset: offset * 4,
      size: (kPad + 1) * n * 4,
    }));

    const blocks = (a: number, b: number, side: number) =>
      Math.ceil(a / side) * Math.ceil(b / side);
    // The three matmuls of layer l, each as its vec4 (8×8) or scalar (4×4) kernel.
    const matmul = (l: number, a: GPUBuffer, z: GPUBuffer): Stage => {
      const { k, kPad, n, vec4 } = this.#layers[l], rows = rowsPerImage[l];
      return this.#stage(
        LAYER_NAMES[l],
        vec4 ? "cnnMatmulVec4" : "cnnMatmul",
        { K: kPad, N: n, ROWS_PER_IMAGE: rows },
        [a, W[l], z],
        (c) => blocks(c * rows, n, vec4 ? 8 : 4),
        1,
        (c) => 2 * c * rows * k * n,
      );
    };
    const weightGrad = (l: number, a: GPUBuffer, g: GPUBuffer): Stage[] => {
      const { k, kPad, n, vec4 } = this.#layers[l], rows = rowsPerImage[l];
      const side = vec4 ? 8 : 4;
      return [
        this.#stage(
          LAYER_NAMES[l],
          vec4 ? "cnnMatmulTransAVec4" : "cnnMatmulTransA",
          { K: kPad, N: n, ROWS_PER_IMAGE: rows, SLICE_ROWS },
          [a, g, partial],
          (c) => Math.ceil(c * rows / SLICE_ROWS) * blocks(kPad + 1, n, side),
          1,
          (c) => 2 * c * rows * (k + 1) * n,
        ),
        this.#stage(
          LAYER_NAMES[l],
          "cnnSumSlices",
          { LEN: (kPad + 1) * n, ROWS_PER_IMAGE: rows, SLICE_ROWS },
          [partial, dW[l]],
          () => (kPad + 1) * n,
        ),
      ];
    };
    const inputGrad = (l: number, g: GPUBuffer, ga: GPUBuffer): Stage => {
      const { k, kPad, n, vec4 } = this.#layers[l], rows = rowsPerImage[l];
      return this.#stage(
        LAYER_NAMES[l],
        vec4 ? "cnnMatmulTransBVec4" : "cnnMatmulTransB",
        { K: kPad, N: n, ROWS_PER_IMAGE: rows },
        [g, W[l], ga],
        (c) => blocks(c * rows, kPad, vec4 ? 8 : 4),
        1,
        (c) => 2 * c * rows * k * n,
      );
    };
    // im2col, col2im and the pool's backward have vec4 forms, 4 columns or channels per thread.
    const im2colStage = (
      layer: string,
      input: { H: number; W: number; C: number },
      from: GPUBuffer,
      cols: GPUBuffer,
      rows: number,
      stride: number,
    ) => {
      const vec4 = stride % 4 === 0;
      return this.#stage(
        layer,
        vec4 ? "im2colVec4" : "im2col",
        { ...input, K: s.kernel, COLS: stride },
        [from, cols],
        (c) => c * rows * (vec4 ? stride / 4 : stride),
      );
    };
    const poolBackward = (
      layer: string,
      input: { H: number; W: number; C: number },
      buffers: GPUBuffer[],
    ) => {
      const vec4 = input.C % 4 === 0;
      return this.#stage(
        layer,
        vec4 ? "maxPoolBackwardVec4" : "maxPoolBackward",
        input,
        buffers,
        (c) => c * input.H * input.W * (vec4 ? input.C / 4 : input.C),
      );
    };
    const load = (set: typeof train) =>
      this.#stage(
        "input",
        "cnnLoadBatch",
        { PIXELS: pixels },
        [set.images, set.order, x],
        (c) => c * pixels,
      );
    const forward = [
      im2colStage("conv1", { H: s.height, W: s.width, C: 1 }, x, cols1, m1, K1),
      matmul(0, cols1, z1),
      this.#stage(
        "pool1",
        "maxPool",
        { H: d.h1, W: d.w1, C: s.c1 },
        [z1, pool1, arg1],
        (c) => c * p1 * s.c1,
        2,
      ),
      im2colStage("conv2", { H: d.p1h, W: d.p1w, C: s.c1 }, pool1, cols2, m2, K2),
      matmul(1, cols2, z2),
      this.#stage(
        "pool2",
        "maxPool",
        { H: d.h2, W: d.w2, C: s.c2 },
        [z2, pool2, arg2],
        (c) => c * d.features,
        2,
      ),
      matmul(2, pool2, logits),
    ];
    const optimizerKernel = `${opts.optimizer.optimizer}Step`;
    const state = [state1, state2].filter((b) => b !== undefined);
    this.#state = state;
    const optimizerPipeline = this.#pipeline(
      optimizerKernel,
      ["dynamic", "write", "read", ...state.map((): Slot => "write")],
      {},
    );
    const optimizerStage: Stage = {
      name: `params ${optimizerKernel}`,
      pipeline: optimizerPipeline,
      bindGroup: this.#bindGroup(
        optimizerKernel,
        optimizerPipeline,
        { buffer: this.#stepUniform, size: OPTIMIZER_UNIFORM_BYTES },
        [this.#params, grads, ...state],
      ),
      offset: "step",
      threads: () => this.#paramFloats,
      flops: () => 0,
    };
    this.#trainStep = [
      load(train),
      ...forward,
      this.#stage(
        "loss",
        "cnnLossGrad",
        { N: s.classes },
        [logits, train.labels, train.order, losses, gLogits],
        (c) => c,
        2,
      ),
      ...weightGrad(2, pool2, gLogits),
      inputGrad(2, gLogits, gPool2),
      poolBackward("pool2", { H: d.h2, W: d.w2, C: s.c2 }, [gPool2, arg2, z2, gZ2]),
      ...weightGrad(1, cols2, gZ2),
      inputGrad(1, gZ2, gCols2),
      this.#stage(
        "conv2",
        s.c1 % 4 === 0 && K2 % 4 === 0 ? "col2imVec4" : "col2im",
        { H: d.p1h, W: d.p1w, C: s.c1, K: s.kernel, COLS: K2 },
        [gCols2, gPool1],
        (c) => c * p1 * (s.c1 % 4 === 0 && K2 % 4 === 0 ? s.c1 / 4 : s.c1),
      ),
      poolBackward("pool1", { H: d.h1, W: d.w1, C: s.c1 }, [gPool1, arg1, z1, gZ1]),
      ...weightGrad(0, cols1, gZ1),
      optimizerStage,
    ];

    this.#correct = this.#own(device.createBuffer({
      label: "CNN correct test predictions",
      size: 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }));
    this.#testForward = [load(test), ...forward];
    this.#testStep = [
      ...this.#testForward,
      this.#stage(
        "test",
        "cnnScoreTest",
        { N: s.classes },
        [logits, test.labels, test.order, this.#correct],
        (c) => c,
      ),
    ];

    this.#total = this.#floats("epoch's summed loss", 1);
    const totalLoss = this.#pipeline("cnnTotalLoss", ["read", "write"], {
      COUNT: Math.max(1, this.nTrain),
    });
    this.#totalLossStage = {
      name: "loss cnnTotalLoss",
      pipeline: totalLoss,
      bindGroup: this.#bindGroup("cnnTotalLoss", totalLoss, undefined, [losses, this.#total]),
      offset: "none",
      threads: () => 1, // one workgroup (of 256)
      flops: () => 0,
    };
    this.#readback = this.#own(device.createBuffer({
      label: "CNN readback (loss or correct count)",
      size: 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    }));
  }

  /** Optimiser steps taken so far. */
  get steps(): number {
    return this.#steps;
  }

  /**
   * One epoch: a step per batch of `batchRanges(nTrain, batchSize)`, visiting
   * images in `order` (image ids; identity for no shuffle). Submits
   * `STEPS_PER_SUBMIT` steps at a time, calling `afterSubmit(stepsDone)`
   * after each (awaited, e.g. for progress). Returns the mean per-image loss,
   * read back once (NaN or ±∞ when a step's loss was not finite; `readLosses`
   * then says which).
   *
   * With `stop`, at most two submits are in flight, and before each submit
   * `stop()` is asked: when true, the submitted steps finish and
   * `EpochInterrupted` is thrown (the parameters then hold a part-epoch).
   */
  async trainEpoch(
    order: Uint32Array,
    lr: number,
    afterSubmit?: (done: number) => void | Promise<void>,
    stop?: () => boolean,
  ): Promise<number> {
    if (order.length !== this.nTrain) {
      throw new RangeError(`order has ${order.length} ids, the training set ${this.nTrain}`);
    }
    const { device } = this;
    device.queue.writeBuffer(this.#order, 0, Uint32Array.from(order));
    const nb = this.#trainRanges.length;
    const steps = new ArrayBuffer(nb * UNIFORM_STRIDE);
    for (let b = 0; b < nb; b++) {
      optimizerUniform(
        this.#paramFloats,
        this.#steps + b + 1,
        lr,
        this.optimizer,
        steps,
        b * UNIFORM_STRIDE,
      );
    }
    device.queue.writeBuffer(this.#stepUniform, 0, steps);
    const inFlight: Promise<void>[] = [];
    for (let first = 0; first < nb; first += STEPS_PER_SUBMIT) {
      if (stop) {
        // Bounded work in flight, so that a stop takes effect within two submits.
        while (inFlight.length >= 2) await inFlight.shift();
        if (stop()) {
          await device.queue.onSubmittedWorkDone();
          throw new EpochInterrupted(first);
        }
      }
      const last = Math.min(nb, first + STEPS_PER_SUBMIT);
      const encoder = device.createCommandEncoder({ label: `CNN steps ${first + 1}–${last}` });
      const shared = this.#sharedPass(encoder, `CNN steps ${first + 1}–${last} pass`);
      for (let b = first; b < last; b++) {
        this.#encode(encoder, shared, this.#trainStep, b, b, this.#trainRanges[b][1]);
      }
      if (last === nb) this.#encode(encoder, shared, [this.#totalLossStage], 0, 0, 0);
      shared?.end();
      if (last === nb) encoder.copyBufferToBuffer(this.#total, 0, this.#readback, 0, 4);
      device.queue.submit([encoder.finish({ label: `CNN steps ${first + 1}–${last} commands` })]);
      this.#steps += last - first;
      if (stop) inFlight.push(device.queue.onSubmittedWorkDone());
      await afterSubmit?.(last);
    }
    await this.#readback.mapAsync(GPUMapMode.READ);
    const total = new Float32Array(this.#readback.getMappedRange().slice(0))[0];
    this.#readback.unmap();
    return total / this.nTrain;
  }

  /** Correct predictions (first-maximum argmax of the logits) on the test set, counted on the GPU. */
  async evaluate(): Promise<number> {
    const { device } = this;
    const encoder = device.createCommandEncoder({ label: "CNN test set" });
    encoder.clearBuffer(this.#correct);
    const shared = this.#sharedPass(encoder, "CNN test set pass");
    const first = this.#trainRanges.length;
    this.#testRanges.forEach(([, count], b) => {
      this.#encode(encoder, shared, this.#testStep, first + b, 0, count);
    });
    shared?.end();
    encoder.copyBufferToBuffer(this.#correct, 0, this.#readback, 0, 4);
    device.queue.submit([encoder.finish({ label: "CNN test set commands" })]);
    await this.#readback.mapAsync(GPUMapMode.READ);
    const correct = new Uint32Array(this.#readback.getMappedRange().slice(0))[0];
    this.#readback.unmap();
    return correct;
  }

  /**
   * Predictions on the test set and their confusion matrix:
   * `confusion[true][predicted]` (first-maximum argmax of the logits, as
   * `evaluate` counts); `correct` is its trace. Every batch's logits are
   * copied into one buffer, read back once.
   */
  async evaluateConfusion(): Promise<{ correct: number; confusion: number[][] }> {
    const { device } = this;
    const C = this.shape.classes;
    const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
    if (this.nTest === 0) return { correct: 0, confusion };
    const encoder = device.createCommandEncoder({ label: "CNN test logits" });
    const first = this.#trainRanges.length;
    this.#testRanges.forEach(([start, count], b) => {
      const pass = this.#sharedPass(encoder, `CNN test batch ${b + 1} pass`);
      this.#encode(encoder, pass, this.#testForward, first + b, 0, count);
      pass?.end();
      encoder.copyBufferToBuffer(this.#logits, 0, this.#testLogits, start * C * 4, count * C * 4);
    });
    device.queue.submit([encoder.finish({ label: "CNN test logits commands" })]);
    const logits = new Float32Array(
      await readBuffer(device, this.#testLogits, this.nTest * C * 4),
    );
    let correct = 0;
    for (let i = 0; i < this.nTest; i++) {
      let best = 0;
      for (let j = 1; j < C; j++) if (logits[i * C + j] > logits[i * C + best]) best = j;
      confusion[this.#testLabels[i]][best]++;
      if (best === this.#testLabels[i]) correct++;
    }
    return { correct, confusion };
  }

  /** The last epoch's per-image losses, by position in the epoch's order. */
  async readLosses(): Promise<Float32Array> {
    return new Float32Array(await readBuffer(this.device, this.#losses, this.nTrain * 4));
  }

  /**
   * The optimiser's state, per tensor in the order W1, b1, W2, b2, W3, b3
   * (`cnnTensors`): `first` the velocity or Adam's m, `second` Adam's v;
   * `step` the steps taken (Adam's t).
   */
  async readOptimizerState(): Promise<CnnEngineState> {
    const lists: Float32Array[][] = [];
    for (const buffer of this.#state) {
      const all = new Float32Array(await readBuffer(this.device, buffer));
      lists.push(this.#unpack(all));
    }
    return { step: this.#steps, first: lists[0] ?? [], second: lists[1] ?? [] };
  }

  /** Sets the optimiser's state and step count (`--resume`); shapes as `readOptimizerState`'s. */
  writeOptimizerState(state: CnnEngineState): void {
    const lists = [state.first, state.second].slice(0, this.#state.length);
    lists.forEach((tensors, i) => {
      const packed = new Float32Array(this.#paramFloats);
      this.#layers.forEach(({ k, kPad, n, offset }, l) => {
        const [w, b] = [tensors[2 * l], tensors[2 * l + 1]];
        if (w?.length !== k * n || b?.length !== n) {
          throw new RangeError(`optimiser state of layer ${l + 1} has the wrong size`);
        }
        packed.set(w, offset);
        packed.set(b, offset + kPad * n);
      });
      this.device.queue.writeBuffer(this.#state[i], 0, packed);
    });
    this.#steps = state.step;
  }

  /** The current parameters, read back from the GPU. */
  async readParams(): Promise<CnnParams> {
    const t = this.#unpack(new Float32Array(await readBuffer(this.device, this.#params)));
    return { shape: { ...this.shape }, weights: [t[0], t[2], t[4]], biases: [t[1], t[3], t[5]] };
  }

  /** The tensors W1, b1, W2, b2, W3, b3 of a buffer in the parameters' packed layout. */
  #unpack(all: Float32Array): Float32Array[] {
    return this.#layers.flatMap(({ k, kPad, n, offset }) => [
      all.slice(offset, offset + k * n),
      all.slice(offset + kPad * n, offset + (kPad + 1) * n),
    ]);
  }

  /** Frees every buffer the engine made. */
  destroy(): void {
    for (const b of this.#owned) b.destroy();
  }

  /** One compute pass for many dispatches, or none when profiling (a pass per dispatch). */
  #sharedPass(encoder: GPUCommandEncoder, label: string): GPUComputePassEncoder | undefined {
    return this.#passTimestamps ? undefined : encoder.beginComputePass({ label });
  }

  /**
   * Records `stages` for one batch (`entry` of the batch uniform, `step` of
   * the optimiser's): into `shared`, or each into a timed pass of its own.
   */
  #encode(
    encoder: GPUCommandEncoder,
    shared: GPUComputePassEncoder | undefined,
    stages: Stage[],
    entry: number,
    step: number,
    count: number,
  ) {
    for (const st of stages) {
      const pass = shared ?? encoder.beginComputePass({
        label: `${st.name} pass`,
        timestampWrites: this.#passTimestamps?.(st.name, st.flops(count)),
      });
      pass.setPipeline(st.pipeline);
      if (st.offset === "none") pass.setBindGroup(0, st.bindGroup);
      else {
        const e = st.offset === "batch" ? entry : step;
        pass.setBindGroup(0, st.bindGroup, [e * UNIFORM_STRIDE]);
      }
      const [x, y] = workgroupsFor(st.threads(count));
      pass.dispatchWorkgroups(x, y);
      if (!shared) pass.end();
    }
  }

  /** A per-batch stage of `kernel`: binding 0 the batch entry, then `buffers` in order. */
  #stage(
    layer: string,
    kernel: string,
    constants: Record<string, number>,
    buffers: (GPUBuffer | GPUBufferBinding)[],
    threads: (count: number) => number,
    writes = 1,
    flops: (count: number) => number = () => 0,
  ): Stage {
    const slots: Slot[] = [
      "dynamic",
      ...buffers.map((_, i): Slot => i >= buffers.length - writes ? "write" : "read"),
    ];
    const pipeline = this.#pipeline(kernel, slots, constants);
    const bindGroup = this.#bindGroup(
      kernel,
      pipeline,
      { buffer: this.#batchUniform, size: 8 },
      buffers,
    );
    return { name: `${layer} ${kernel}`, pipeline, bindGroup, offset: "batch", threads, flops };
  }

  #pipeline(kernel: string, slots: Slot[], constants: Record<string, number>): GPUComputePipeline {
    let module = this.#modules.get(kernel);
    if (!module) {
      module = this.device.createShaderModule({
        label: `${kernel} module`,
        code: kernelSource(kernel),
      });
      this.#modules.set(kernel, module);
    }
    return kernelPipeline(this.device, kernel, slots, constants, module);
  }

  #bindGroup(
    kernel: string,
    pipeline: GPUComputePipeline,
    uniform: GPUBufferBinding | undefined,
    buffers: (GPUBuffer | GPUBufferBinding)[],
  ): GPUBindGroup {
    const resources = [...(uniform ? [uniform] : []), ...buffers];
    return this.device.createBindGroup({
      label: `${kernel} bind group`,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((r, binding) => ({
        binding,
        resource: r instanceof GPUBuffer ? { buffer: r } : r,
      })),
    });
  }

  #dataset(what: string, set: LabeledImages, pixels: number) {
    if (set.images.length < set.n * pixels || set.labels.length < set.n) {
      throw new UserError(
        `${what} set: ${set.n} images of ${pixels} pixels need ${set.n * pixels} bytes and ` +
          `${set.n} labels, got ${set.images.length} and ${set.labels.length}`,
      );
    }
    const usage = GPUBufferUsage.STORAGE;
    const n = Math.max(1, set.n);
    const identity = new Uint32Array(n);
    for (let i = 0; i < n; i++) identity[i] = i;
    return {
      images: this.#own(
        bufferFrom(
          this.device,
          `${what} images (packed bytes)`,
          set.images.slice(0, set.n * pixels),
          usage,
        ),
      ),
      labels: this.#own(
        bufferFrom(
          this.device,
          `${what} labels`,
          Uint32Array.from(set.labels.subarray(0, n)),
          usage,
        ),
      ),
      order: this.#own(bufferFrom(this.device, `${what} image order`, identity, usage)),
    };
  }

  #floats(label: string, count: number): GPUBuffer {
    return this.#own(this.device.createBuffer({
      label,
      size: Math.max(4, count * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }));
  }

  #own(b: GPUBuffer): GPUBuffer {
    this.#owned.push(b);
    return b;
  }

  /** Throws a UsageError when a full batch's largest buffer would pass the device's limits. */
  #checkBatchSize(pixels: number) {
    const d = this.dims;
    const limit = Math.min(
      this.device.limits.maxStorageBufferBindingSize,
      this.device.limits.maxBufferSize,
    );
    const perImage = 4 * Math.max(
      pixels,
      d.h1 * d.w1 * Math.max(Math.ceil(d.k1 / 8) * 8, this.shape.c1),
      d.h2 * d.w2 * Math.max(Math.ceil(d.k2 / 8) * 8, this.shape.c2),
    );
    const most = Math.floor(limit / perImage);
    if (this.batchSize > most) {
      throw new UsageError(
        `--batch-size ${this.batchSize} is too large for the CNN: a batch's im2col buffer would ` +
          `pass the device's ${limit / 2 ** 20} MiB per buffer (at most ${most} images)`,
      );
    }
  }
}
