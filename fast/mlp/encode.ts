/**
 * How the fast MLP engine records its stages (fast/mlp/step.ts) into command
 * buffers with the kit's recorder and `dispatch` (fast/kit.ts): each kind
 * of stage with the variant the plan gives it, the copies of operands into the textures (and the uniform copy) that variants read, the
 * epoch's end (the loss sum and its copies), the test pass, and the
 * shuffle's gather.
 *
 * Not here: what the stages are (fast/mlp/step.ts), the objects
 * (fast/mlp/buffers.ts, activations.ts, pipelines.ts) and when command
 * buffers are submitted (fast/mlp/engine.ts). WebGPU and plain TypeScript
 * only.
 *
 * @module
 */

import { workgroupGrid } from "../../shared/gpu/device.ts";
import { OPTIMIZERS } from "../../shared/model/optim.ts";
import { copyMirror, SPLIT_CHUNK } from "./activations.ts";
import { type ListDispatch, listDispatch, listKernel } from "./variants/blank_pixels.ts";
import type { MlpBuffers, MlpSetup } from "./buffers.ts";
import { dispatch, type Dispatcher, outsidePass, type Recorder } from "../kit.ts";
import {
  dispatchSize,
  type KernelOptions,
  type MatmulShape,
  type MatmulVariant,
  OUTPUT_ROWS_PER_GROUP,
  type Plan,
  shapeMultiplyAdds,
  type Slot,
} from "./variants/matmul.ts";
import type { MlpBindGroups } from "./bind_groups.ts";
import { type MlpPipelines, pipelineOf } from "./pipelines.ts";
import { type MlpStage, testStages, trainStages } from "./step.ts";

/** Everything the encoders read: the engine's objects, its stages and its current plan. */
export interface StepContext {
  device: GPUDevice;
  setup: MlpSetup;
  /** The variant of each slot (`setVariant` changes it, then calls `planChanged`). */
  plan: Plan;
  shapes: Record<Slot, MatmulShape>;
  buffers: MlpBuffers;
  pipelines: MlpPipelines;
  groups: MlpBindGroups;
  kernelOptions: KernelOptions;
  /** The training step's and the test pass's stages, and the operands whose copies they read. */
  stages: { train: MlpStage[]; test: MlpStage[] };
  mirrorsRead: Set<string>;
  /** The recorders' device, profiler hook and dynamic offsets (fast/kit.ts). */
  to: Dispatcher;
  /** Labels and grids made on first use (`recordCache`), so that recording allocates nothing. */
  made: RecordCache;
}

/**
 * What recording a dispatch would otherwise allocate, made once: each
 * slot's label (the profiler's kernel name, `${slot} ${variant}`), pipeline
 * and list kernel per variant, each grid per row count, the fixed kernels'
 * labels and grids.
 */
export interface RecordCache {
  slots: Map<Slot, Map<MatmulVariant, SlotRecord>>;
  /** `[x, 1]` workgroups, by x. */
  rowGrids: Map<number, readonly [number, number]>;
  /** The split output-layer weight gradient's `[outputs, chunks]`, by chunks. */
  splitGrids: Map<number, readonly [number, number]>;
  optimizerGrid?: readonly [number, number];
  /** `weightGrad${L} row`, `… split`, `… split sum`. */
  outputGrad: { row: string; split: string; splitSum: string };
}

/** A variant of a slot as recorded: its label, pipeline, and per row count its grid and list dispatch. */
interface SlotRecord {
  label: string;
  pipeline: GPUComputePipeline;
  /** The list kernel's pipeline (`listKernel`), if the variant needs one. */
  listPipeline?: GPUComputePipeline;
  /** By row count: the matmul's grid and the list dispatch (training images, then test images). */
  rows: Map<
    number,
    { grid: readonly [number, number]; lists?: ListDispatch; testLists?: ListDispatch }
  >;
}

/** An empty cache for an engine of `sizes` (labels and grids are made on first use). */
export function recordCache(sizes: readonly number[]): RecordCache {
  const L = sizes.length - 1;
  return {
    slots: new Map(),
    rowGrids: new Map(),
    splitGrids: new Map(),
    outputGrad: {
      row: `weightGrad${L} row`,
      split: `weightGrad${L} split`,
      splitSum: `weightGrad${L} split sum`,
    },
  };
}

/** `[x, 1]`, made once per x. */
function rowGrid(ctx: StepContext, x: number): readonly [number, number] {
  let grid = ctx.made.rowGrids.get(x);
  if (!grid) {
    grid = [x, 1];
    ctx.made.rowGrids.set(x, grid);
  }
  return grid;
}

/** `slot`'s record of variant `v`, made on first use. */
function slotRecord(ctx: StepContext, slot: Slot, v: MatmulVariant): SlotRecord {
  let bySlot = ctx.made.slots.get(slot);
  if (!bySlot) {
    bySlot = new Map();
    ctx.made.slots.set(slot, bySlot);
  }
  let r = bySlot.get(v);
  if (!r) {
    const key = listKernel(ctx.shapes[slot], v, ctx.kernelOptions);
    const listPipeline = key === undefined ? undefined : ctx.pipelines.variants.get(key);
    if (key !== undefined && !listPipeline) throw new Error(`no pipeline compiled for ${key}`);
    const pipeline = pipelineOf(ctx.pipelines, slot, v);
    r = { label: `${slot} ${v.name}`, pipeline, listPipeline, rows: new Map() };
    bySlot.set(v, r);
  }
  return r;
}

/** The step context's stages for `setup` (the mirrors they read: `planChanged`). */
export function stagesOf(setup: MlpSetup): StepContext["stages"] {
  return { train: trainStages(setup.sizes, setup.separateUpdate), test: testStages(setup.sizes) };
}

// ---------------------------------------------------------------------------
// Matmul slots

/**
 * Encodes the matmul of `slot` with variant `v` (default: the plan's) on
 * `rows` rows, after the list dispatch it needs to skip blank pixels (if
 * any; `test`: forward1 on the test images). Labels, pipelines and grids
 * come from `ctx.made` (made on first use): nothing is allocated.
 */
export function dispatchSlot(
  ctx: StepContext,
  rec: Recorder,
  slot: Slot,
  stepIndex: number,
  rows: number,
  v: MatmulVariant = ctx.plan[slot],
  test = false,
): void {
  const shape = ctx.shapes[slot];
  const r = slotRecord(ctx, slot, v);
  let at = r.rows.get(rows);
  if (!at) {
    const opts = ctx.kernelOptions, g = ctx.groups;
    at = {
      grid: dispatchSize(shape, v, rows),
      lists: listDispatch(shape, v, opts, g, rows, false),
      testLists: listDispatch(shape, v, opts, g, rows, true),
    };
    r.rows.set(rows, at);
  }
  const lists = test ? at.testLists : at.lists;
  if (lists && r.listPipeline) {
    dispatch(rec, lists.kernel, r.listPipeline, lists.group, stepIndex, lists.size, 0);
  }
  const group = test ? ctx.groups.forward1Test : ctx.groups[slot];
  const flops = 2 * shapeMultiplyAdds(shape, rows);
  dispatch(rec, r.label, r.pipeline, group, stepIndex, at.grid, flops);
}

// ---------------------------------------------------------------------------
// The stages

/** One training step on batch `index` (its uniform entry): the stages of `trainStages`. */
export function encodeStep(ctx: StepContext, rec: Recorder, index: number): void {
  encodeStages(ctx, rec, ctx.stages.train, index, ctx.setup.batches[index][1]);
}

/**
 * Encodes `stages` on `rows` rows of uniform entry `index`, each followed by
 * the refresh of the copies of what it wrote that the plan reads.
 */
function encodeStages(
  ctx: StepContext,
  rec: Recorder,
  stages: readonly MlpStage[],
  index: number,
  rows: number,
): void {
  for (const stage of stages) {
    encodeStage(ctx, rec, stage, index, rows);
    for (const operand of stage.writes) {
      const mirror = ctx.mirrorsRead.has(operand) ? ctx.buffers.mirrors.get(operand) : undefined;
      if (mirror) copyMirror(outsidePass(rec), mirror, rows);
    }
  }
}

/** Whether `stage`, with the variant the plan gives it, reads its `mirrored` operands' copies. */
function readsMirrors(ctx: StepContext, stage: MlpStage): boolean {
  if (stage.kind === "matmul") return ctx.plan[stage.slot!].family === "texture";
  return stage.kind === "output" && ctx.setup.output.layer === "uniform";
}

/** Recomputes which copies the stages read, after the plan changed. */
export function planChanged(ctx: StepContext): void {
  ctx.mirrorsRead.clear();
  for (const stage of [...ctx.stages.train, ...ctx.stages.test]) {
    if (readsMirrors(ctx, stage)) { for (const m of stage.mirrored) ctx.mirrorsRead.add(m); }
  }
}

/** Copies every weight into its texture or uniform copy (whatever the plan: it may change). */
export function refreshWeightMirrors(ctx: StepContext, rec: Recorder): void {
  for (let i = 1; i < ctx.setup.sizes.length; i++) {
    const mirror = ctx.buffers.mirrors.get(`W${i}`);
    if (mirror) copyMirror(outsidePass(rec), mirror, 0);
  }
}

/** Encodes one stage with its variant. */
function encodeStage(
  ctx: StepContext,
  rec: Recorder,
  stage: MlpStage,
  index: number,
  rows: number,
): void {
  const p = ctx.pipelines, g = ctx.groups, { sizes } = ctx.setup;
  const L = sizes.length - 1, k = sizes[L - 1], n = sizes[L];
  switch (stage.kind) {
    case "matmul": {
      const slot = stage.slot!;
      return dispatchSlot(ctx, rec, slot, index, rows, ctx.plan[slot], stage.testImages ?? false);
    }
    case "output": {
      const perGroup = ctx.setup.output.layer === "rows" ? OUTPUT_ROWS_PER_GROUP : 64;
      const groups = rowGrid(ctx, Math.ceil(rows / perGroup));
      return dispatch(
        rec,
        p.outputLayerKernel,
        p.outputLayer,
        g.outputLayer,
        index,
        groups,
        4 * rows * k * n,
      );
    }
    case "outputWeightGrad":
      return encodeOutputWeightGrad(ctx, rec, index, rows);
    case "optimizer": {
      const floats = ctx.buffers.totalFloats;
      const flops = floats * OPTIMIZERS[ctx.setup.optimizer.optimizer].flops;
      const grid = ctx.made.optimizerGrid ??= workgroupGrid(
        floats,
        64,
        ctx.device.limits.maxComputeWorkgroupsPerDimension,
      );
      return dispatch(rec, p.optimizerKernel, p.optimizer!, g.optimizer!, index, grid, flops);
    }
    case "logits": {
      const groups = rowGrid(ctx, Math.ceil(rows / 64));
      return dispatch(rec, "outputLogits", p.logits, g.logits, index, groups, 2 * rows * k * n);
    }
    case "confusion": {
      const groups = rowGrid(ctx, Math.ceil(rows / 64));
      return dispatch(rec, "argmaxConfusion", p.confusion, g.confusion, index, groups, 0);
    }
  }
}

/**
 * The output layer's weight gradient, by its variant: "row", one row of W_L
 * per invocation; "split", partial sums over chunks of SPLIT_CHUNK rows,
 * [⌈rows / 32⌉, n(L−1)·nL + nL], then their sum in order.
 */
function encodeOutputWeightGrad(ctx: StepContext, rec: Recorder, index: number, rows: number) {
  const p = ctx.pipelines, g = ctx.groups, { sizes } = ctx.setup;
  const L = sizes.length - 1, k = sizes[L - 1], n = sizes[L];
  const flops = 2 * rows * k * n, labels = ctx.made.outputGrad;
  if (ctx.setup.output.weightGrad === "row") {
    const groups = rowGrid(ctx, Math.ceil(k / 64));
    dispatch(rec, labels.row, p.outputGradRow!, g.outputWeightGrad, index, groups, flops);
    return;
  }
  const { splitWidth } = ctx.buffers;
  const outputs = Math.ceil(splitWidth / 64), chunks = Math.ceil(rows / SPLIT_CHUNK);
  let grid = ctx.made.splitGrids.get(chunks);
  if (!grid) {
    grid = [outputs, chunks];
    ctx.made.splitGrids.set(chunks, grid);
  }
  const split = g.outputWeightGradSplit!;
  dispatch(rec, labels.split, p.outputGradSplit!, split, index, grid, flops);
  const sum = rowGrid(ctx, outputs);
  dispatch(rec, labels.splitSum, p.outputGradSplitSum!, split, index, sum, splitWidth * chunks);
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
  dispatch(rec, "sumLosses", ctx.pipelines.sum, ctx.groups.sum, b.sumStep, [1, 1], nTrain);
  const enc = outsidePass(rec);
  enc.copyBufferToBuffer(b.lossTotal, 0, b.epochStaging[readback], 0, 4);
  const copy = b.lossCopies?.[readback];
  if (copy) enc.copyBufferToBuffer(b.losses, 0, copy, 0, nTrain * 4);
}

/**
 * The test pass, chunk by chunk: the stages of `testStages` (the forward
 * pass, then confusion[y_r, argmax_c z_L[r, c]] += 1; confusion: [nL, nL],
 * cleared first), copied into its readback buffer.
 */
export function encodeTestPass(ctx: StepContext, rec: Recorder): void {
  const b = ctx.buffers;
  const nL = ctx.setup.sizes[ctx.setup.sizes.length - 1];
  outsidePass(rec).clearBuffer(b.confusion);
  ctx.setup.evalChunks.forEach(([, rows], i) => {
    encodeStages(ctx, rec, ctx.stages.test, b.evalStep0 + i, rows);
  });
  outsidePass(rec).copyBufferToBuffer(b.confusion, 0, b.confusionStaging, 0, nL * nL * 4);
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
  dispatch(rec, "gatherRows images", p.gatherX, g.gatherX, null, images, 0);
  dispatch(
    rec,
    "gatherRows labels",
    p.gatherY,
    g.gatherY,
    null,
    workgroupGrid(nTrain, 64, maxGroups),
    0,
  );
}
