/**
 * What the fast MLP engine puts into command buffers: the recorder and
 * dispatch helpers, one training step (`encodeStep`), the epoch's end (the
 * loss sum and its copies), the test pass, the shuffle's gather and the
 * texture refreshes. Every dispatch goes through `dispatch`.
 *
 * One training step, for a batch of `rows` images x [rows, n0] (layer sizes
 * n0 → n1 → n2 → n3), is 7 dispatches at the least: the two fused forward
 * layers, the output layer fused with softmax, cross-entropy, ∂z3 and layer
 * 3's input gradient ∂z2, layer 3's weight gradient, then layer 2's input
 * gradient (the ReLU mask inside) and weight gradient and layer 1's weight
 * gradient (SGD folded into the weight gradients). Up to 4 more: layer 3's
 * weight gradient in two dispatches on GPUs (`smallKernels: "gpu"`), one list
 * dispatch before each of the layer-1 texture variants that skip blank
 * pixels (fast/mlp/blank_pixels.ts), and with momentum or Adam one optimiser
 * dispatch at the end (the weight gradients then store ∂W, ∂b). Each layer's
 * input gradient is computed before that layer's weights are updated. When a
 * variant reads an operand from a texture, the operand's buffer is copied
 * into its texture right after it is written. Dispatches share compute
 * passes: a pass ends only for such a copy, or when the profiler wants
 * timestamps around a single dispatch.
 *
 * Not here: the objects themselves (fast/mlp/buffers.ts, pipelines.ts) and
 * when command buffers are submitted (fast/mlp/engine.ts). WebGPU and plain
 * TypeScript only.
 *
 * @module
 */

import { workgroupGrid } from "../../shared/gpu/device.ts";
import type { PassTimestamps } from "../../shared/gpu/profiler.ts";
import { OPTIMIZERS } from "../../shared/model/optim.ts";
import { listDispatch } from "./blank_pixels.ts";
import {
  type BufferRange,
  type MlpBuffers,
  type MlpSetup,
  SPLIT_CHUNK,
  STEP_STRIDE,
} from "./buffers.ts";
import {
  dispatchSize,
  type KernelOptions,
  type MatmulShape,
  type Plan,
  shapeMultiplyAdds,
  type Slot,
} from "./matmul.ts";
import { type MlpBindGroups, type MlpPipelines, pipelineOf } from "./pipelines.ts";

/** Rows per workgroup of `outputLayerRows.wgsl` (its `ROWS`). */
const OUTPUT_LAYER_ROWS_PER_GROUP = 4;

/** Everything the encoders read: the engine's objects and its current plan. */
export interface StepContext {
  device: GPUDevice;
  setup: MlpSetup;
  /** The variant of each slot (`setVariant` changes it). */
  plan: Plan;
  shapes: Record<Slot, MatmulShape>;
  buffers: MlpBuffers;
  pipelines: MlpPipelines;
  groups: MlpBindGroups;
  kernelOptions: KernelOptions;
  /** Profiling: a compute pass's timestampWrites for kernel `kernel` of `flops` operations. */
  passTimestamps?: PassTimestamps;
}

// ---------------------------------------------------------------------------
// Recorder and dispatch

/** A command encoder and the compute pass it has open, if any. */
export interface Recorder {
  encoder: GPUCommandEncoder;
  pass?: GPUComputePassEncoder;
  /** Passes begun, for their labels. */
  passes: number;
}

/** A recorder for a new command buffer called `label`. */
export function record(device: GPUDevice, label: string): Recorder {
  return { encoder: device.createCommandEncoder({ label }), passes: 0 };
}

/** The encoder with its open pass ended: copies and clears may not go inside a pass. */
export function outsidePass(rec: Recorder): GPUCommandEncoder {
  rec.pass?.end();
  rec.pass = undefined;
  return rec.encoder;
}

/** Finishes `rec` and submits it. */
export function submit(device: GPUDevice, rec: Recorder): void {
  device.queue.submit([outsidePass(rec).finish()]);
}

/**
 * Encodes one dispatch of `[x, y]` workgroups, with uniform entry
 * `stepIndex` (null: the bind group has none). Consecutive dispatches share
 * one compute pass (WebGPU orders the dispatches of a pass and makes each
 * one's storage writes visible to the next: usage scopes are per dispatch),
 * which saves a pass begin and end per dispatch. A profiled dispatch gets a
 * pass of its own, since timestampWrites belong to a pass.
 */
export function dispatch(
  ctx: StepContext,
  rec: Recorder,
  kernel: string,
  pipeline: GPUComputePipeline,
  group: GPUBindGroup,
  stepIndex: number | null,
  [x, y]: [number, number],
  flops: number,
): void {
  const timestampWrites = ctx.passTimestamps?.(kernel, flops);
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
}

/**
 * Encodes the matmul of `slot` with variant `v` (default: the plan's) on
 * `rows` rows, after the list dispatch it needs to skip blank pixels (if
 * any; `test`: on the test images).
 */
export function dispatchSlot(
  ctx: StepContext,
  rec: Recorder,
  slot: Slot,
  stepIndex: number,
  rows: number,
  { v = ctx.plan[slot], group = ctx.groups[slot], test = false } = {},
): void {
  const shape = ctx.shapes[slot];
  const lists = listDispatch(shape, v, ctx.kernelOptions, ctx.groups, rows, test);
  if (lists) {
    const key = `${lists.kernel} ${v.block[0]}`;
    const pipeline = ctx.pipelines.variants.get(key);
    if (!pipeline) throw new Error(`no pipeline compiled for ${key}`);
    dispatch(ctx, rec, lists.kernel, pipeline, lists.group, stepIndex, lists.size, 0);
  }
  dispatch(
    ctx,
    rec,
    `${slot} ${v.name}`,
    pipelineOf(ctx.pipelines, slot, v),
    group,
    stepIndex,
    dispatchSize(shape, v, rows),
    2 * shapeMultiplyAdds(shape, rows),
  );
}

// ---------------------------------------------------------------------------
// Copies into textures and the uniform copy of W3

/** Copies `rows` rows of `floatsPerRow` floats from `src` into texture `dst`. */
export function copyToTexture(
  rec: Recorder,
  src: GPUBuffer | BufferRange,
  dst: GPUTexture,
  floatsPerRow: number,
  rows: number,
): void {
  outsidePass(rec).copyBufferToTexture(
    src instanceof GPUBuffer
      ? { buffer: src, bytesPerRow: floatsPerRow * 4 }
      : { buffer: src.buffer, offset: src.offset, bytesPerRow: floatsPerRow * 4 },
    { texture: dst },
    [floatsPerRow / 4, rows],
  );
}

/** Refreshes the uniform copy of W3 (CPU-shaped output layer only) after W3 changed. */
export function copyW3(ctx: StepContext, rec: Recorder): void {
  const [, , n2, n3] = ctx.setup.sizes;
  const { w3Copy, weights: [, , w3] } = ctx.buffers;
  if (w3Copy) outsidePass(rec).copyBufferToBuffer(w3.buffer, w3.offset, w3Copy, 0, n2 * n3 * 4);
}

/** Copies W1 and W2 into their textures (whatever the plan: `setVariant` may pick a texture variant). */
export function encodeWeightTextures(ctx: StepContext, rec: Recorder): void {
  const [n0, n1, n2] = ctx.setup.sizes;
  const { weights: [w1, w2], w1Tex, w2Tex } = ctx.buffers;
  copyToTexture(rec, w1, w1Tex, n1, n0);
  copyToTexture(rec, w2, w2Tex, n2, n1);
}

/** Whether `slot`'s variant reads its operands from textures. */
const usesTex = (ctx: StepContext, slot: Slot) => ctx.plan[slot].family === "texture";

/** Which textures the plan reads, so must be refreshed when their buffer changes. */
function texturesRead(ctx: StepContext) {
  const t = (slot: Slot) => usesTex(ctx, slot);
  return {
    a1: t("forward2") || t("weightGrad2"),
    dz2: t("inputGrad2") || t("weightGrad2"),
    dz1: t("weightGrad1"),
    w1: t("forward1"),
    w2: t("forward2") || t("inputGrad2"),
  };
}

// ---------------------------------------------------------------------------
// One training step

/** One training step on batch `index` (its uniform entry): forward, output layer, backward. */
export function encodeStep(ctx: StepContext, rec: Recorder, index: number): void {
  const rows = ctx.setup.batches[index][1];
  encodeForward(ctx, rec, index, rows);
  encodeOutputLayer(ctx, rec, index, rows);
  encodeBackward(ctx, rec, index, rows);
}

/** Layers 1 and 2 forward. */
function encodeForward(ctx: StepContext, rec: Recorder, index: number, rows: number): void {
  const [, n1] = ctx.setup.sizes;
  const { a1, a1Tex } = ctx.buffers;
  // a1 = relu(x·W1 + b1)     x: [rows, n0] bytes / 255, W1: [n0, n1], a1: [rows, n1]
  dispatchSlot(ctx, rec, "forward1", index, rows);
  if (texturesRead(ctx).a1) copyToTexture(rec, a1, a1Tex, n1, rows);
  // a2 = relu(a1·W2 + b2)    W2: [n1, n2], a2: [rows, n2]
  dispatchSlot(ctx, rec, "forward2", index, rows);
}

/** The output layer, its loss and gradients, and layer 3's weight gradient (and SGD update). */
function encodeOutputLayer(ctx: StepContext, rec: Recorder, index: number, rows: number): void {
  const [, , n2, n3] = ctx.setup.sizes;
  const { gpuSmall, separateUpdate } = ctx.setup;
  const p = ctx.pipelines, g = ctx.groups;
  // z3 = a2·W3 + b3, p = softmax(z3), loss[start + r] = −log p[y_r]; differentiated:
  // ∂z3 = (p − onehot(y)) / rows: [rows, n3]; ∂z2 = (∂z3·W3ᵀ) ⊙ (a2 > 0): [rows, n2]
  // (from W3 before its update).
  dispatch(
    ctx,
    rec,
    p.outputLayerKernel,
    p.outputLayer,
    g.outputLayer,
    index,
    [Math.ceil(rows / (gpuSmall ? OUTPUT_LAYER_ROWS_PER_GROUP : 64)), 1],
    4 * rows * n2 * n3,
  );
  // Layer 3's weight gradient, differentiating z3 = a2·W3 + b3:
  // ∂W3 = a2ᵀ·∂z3: [n2, n3], ∂b3 = Σ_r ∂z3; SGD: W3 −= lr·∂W3, b3 −= lr·∂b3.
  const flops = 2 * rows * n2 * n3;
  if (p.weightGrad3Split && p.weightGrad3SplitSum && g.weightGrad3Split) {
    // GPU: partial sums over chunks of SPLIT_CHUNK rows, [⌈rows / 32⌉, n2·n3 + n3], then
    // their sum in order.
    const { splitWidth } = ctx.buffers;
    const outputs = Math.ceil(splitWidth / 64);
    const chunks = Math.ceil(rows / SPLIT_CHUNK);
    const split = g.weightGrad3Split;
    dispatch(
      ctx,
      rec,
      "weightGrad3 split",
      p.weightGrad3Split,
      split,
      index,
      [outputs, chunks],
      flops,
    );
    dispatch(
      ctx,
      rec,
      "weightGrad3 split sum",
      p.weightGrad3SplitSum,
      split,
      index,
      [outputs, 1],
      splitWidth * chunks,
    );
  } else {
    // CPU adapters: one row of W3 per invocation.
    dispatch(ctx, rec, "weightGrad3 row", p.weightGrad3Row!, g.weightGrad3, index, [
      Math.ceil(n2 / 64),
      1,
    ], flops);
    if (!separateUpdate) copyW3(ctx, rec);
  }
}

/** Layers 2 and 1 backward, then (momentum, Adam) the optimiser's update of every parameter. */
function encodeBackward(ctx: StepContext, rec: Recorder, index: number, rows: number): void {
  const [n0, n1, n2] = ctx.setup.sizes;
  const { separateUpdate, optimizer } = ctx.setup;
  const b = ctx.buffers;
  const [w1, w2] = b.weights;
  const tex = texturesRead(ctx);
  if (tex.dz2) copyToTexture(rec, b.dz2, b.dz2Tex, n2, rows);
  // Differentiates a2 = relu(a1·W2 + b2) for its input, with W2 before its update:
  // ∂z1 = (∂z2·W2ᵀ) ⊙ (a1 > 0)     ∂z2: [rows, n2], W2: [n1, n2], ∂z1: [rows, n1]
  dispatchSlot(ctx, rec, "inputGrad2", index, rows);
  if (tex.dz1) copyToTexture(rec, b.dz1, b.dz1Tex, n1, rows);
  // Differentiates a2 = relu(a1·W2 + b2) for W2, b2:
  // ∂W2 = a1ᵀ·∂z2: [n1, n2], ∂b2 = Σ_r ∂z2; SGD: W2 −= lr·∂W2, b2 −= lr·∂b2
  dispatchSlot(ctx, rec, "weightGrad2", index, rows);
  if (tex.w2 && !separateUpdate) copyToTexture(rec, w2, b.w2Tex, n2, n1);
  // Differentiates a1 = relu(x·W1 + b1) for W1, b1 (layer 1 needs no input gradient):
  // ∂W1 = xᵀ·∂z1: [n0, n1], ∂b1 = Σ_r ∂z1; SGD: W1 −= lr·∂W1, b1 −= lr·∂b1
  dispatchSlot(ctx, rec, "weightGrad1", index, rows);
  const p = ctx.pipelines, g = ctx.groups;
  if (g.optimizer && p.optimizer) {
    // Momentum/Adam: every gradient is stored; now update all parameters at once,
    // θ[i] ← update(θ[i], ∂θ[i], state[i]) for each float of the packed buffer.
    const n = b.totalFloats;
    const flops = n * OPTIMIZERS[optimizer.optimizer].flops;
    dispatch(
      ctx,
      rec,
      p.optimizerKernel,
      p.optimizer,
      g.optimizer,
      index,
      workgroupGrid(n, 64, ctx.device.limits.maxComputeWorkgroupsPerDimension),
      flops,
    );
    if (tex.w2) copyToTexture(rec, w2, b.w2Tex, n2, n1);
    copyW3(ctx, rec);
  }
  if (tex.w1) copyToTexture(rec, w1, b.w1Tex, n1, n0);
}

// ---------------------------------------------------------------------------
// The epoch's end, the test pass, the shuffle's gather

/**
 * The epoch's loss sum Σ losses [nTrain] → lossTotal [1], copied into
 * epoch readback buffer `readback` (and with overlapEpochs the per-image
 * losses into their copy `readback`).
 */
export function encodeEpochEnd(ctx: StepContext, rec: Recorder, readback: number): void {
  const b = ctx.buffers;
  const { nTrain } = ctx.setup;
  dispatch(ctx, rec, "sumLosses", ctx.pipelines.sum, ctx.groups.sum, b.sumStep, [1, 1], nTrain);
  const enc = outsidePass(rec);
  enc.copyBufferToBuffer(b.lossTotal, 0, b.epochStaging[readback], 0, 4);
  const copy = b.lossCopies?.[readback];
  if (copy) enc.copyBufferToBuffer(b.losses, 0, copy, 0, nTrain * 4);
}

/**
 * The test pass, chunk by chunk: layers 1 and 2 forward, then
 * confusion[y_r, argmax_c (a2·W3 + b3)[r, c]] += 1 (confusion: [n3, n3],
 * cleared first), copied into its readback buffer.
 */
export function encodeTestPass(ctx: StepContext, rec: Recorder): void {
  const [, n1, n2, n3] = ctx.setup.sizes;
  const b = ctx.buffers, g = ctx.groups;
  outsidePass(rec).clearBuffer(b.confusion);
  ctx.setup.evalChunks.forEach(([, rows], i) => {
    const stepIndex = b.evalStep0 + i;
    dispatchSlot(ctx, rec, "forward1", stepIndex, rows, { group: g.forward1Test, test: true });
    if (usesTex(ctx, "forward2")) copyToTexture(rec, b.a1, b.a1Tex, n1, rows);
    dispatchSlot(ctx, rec, "forward2", stepIndex, rows);
    const groups: [number, number] = [Math.ceil(rows / 64), 1];
    dispatch(
      ctx,
      rec,
      "countCorrect",
      ctx.pipelines.count,
      g.count,
      stepIndex,
      groups,
      2 * rows * n2 * n3,
    );
  });
  outsidePass(rec).copyBufferToBuffer(b.confusion, 0, b.confusionStaging, 0, n3 * n3 * 4);
}

/**
 * With `shuffle`: the training images and labels in the epoch's order,
 * out[p] = src[order[p]] (images: [nTrain, n0 / 4] words, labels: [nTrain]).
 */
export function encodeGather(ctx: StepContext, rec: Recorder): void {
  const p = ctx.pipelines, g = ctx.groups;
  if (!p.gatherX || !p.gatherY || !g.gatherX || !g.gatherY) {
    throw new Error("setOrder needs the engine's shuffle option");
  }
  const { nTrain } = ctx.setup;
  const n0 = ctx.setup.sizes[0];
  // One invocation per word (images) or label, 64 per workgroup.
  const maxGroups = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  const images = workgroupGrid(nTrain * n0 / 4, 64, maxGroups);
  dispatch(ctx, rec, "gatherRows images", p.gatherX, g.gatherX, null, images, 0);
  dispatch(
    ctx,
    rec,
    "gatherRows labels",
    p.gatherY,
    g.gatherY,
    null,
    workgroupGrid(nTrain, 64, maxGroups),
    0,
  );
}
