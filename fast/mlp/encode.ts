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
import { listDispatch } from "./variants/blank_pixels.ts";
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
 * any; `test`: on the test images).
 */
export function dispatchSlot(
  ctx: StepContext,
  rec: Recorder,
  slot: Slot,
  stepIndex: number,
  rows: number,
  { v = ctx.plan[slot], group = ctx.groups[slot], test = false }: {
    v?: MatmulVariant;
    group?: GPUBindGroup;
    test?: boolean;
  } = {},
): void {
  const shape = ctx.shapes[slot];
  const lists = listDispatch(shape, v, ctx.kernelOptions, ctx.groups, rows, test);
  if (lists) {
    const key = `${lists.kernel} ${v.block[0]}`;
    const pipeline = ctx.pipelines.variants.get(key);
    if (!pipeline) throw new Error(`no pipeline compiled for ${key}`);
    dispatch(rec, lists.kernel, pipeline, lists.group, stepIndex, lists.size, 0);
  }
  dispatch(
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
      const test = stage.testImages ?? false;
      const group = test ? g.forward1Test : g[stage.slot!];
      return dispatchSlot(ctx, rec, stage.slot!, index, rows, { group, test });
    }
    case "output": {
      const perGroup = ctx.setup.output.layer === "rows" ? OUTPUT_ROWS_PER_GROUP : 64;
      const groups: [number, number] = [Math.ceil(rows / perGroup), 1];
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
      const grid = workgroupGrid(floats, 64, ctx.device.limits.maxComputeWorkgroupsPerDimension);
      return dispatch(rec, p.optimizerKernel, p.optimizer!, g.optimizer!, index, grid, flops);
    }
    case "count": {
      const groups: [number, number] = [Math.ceil(rows / 64), 1];
      return dispatch(rec, "countCorrect", p.count, g.count, index, groups, 2 * rows * k * n);
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
  const flops = 2 * rows * k * n;
  if (ctx.setup.output.weightGrad === "row") {
    const groups: [number, number] = [Math.ceil(k / 64), 1];
    dispatch(rec, `weightGrad${L} row`, p.outputGradRow!, g.outputWeightGrad, index, groups, flops);
    return;
  }
  const { splitWidth } = ctx.buffers;
  const outputs = Math.ceil(splitWidth / 64), chunks = Math.ceil(rows / SPLIT_CHUNK);
  const split = g.outputWeightGradSplit!;
  dispatch(rec, `weightGrad${L} split`, p.outputGradSplit!, split, index, [outputs, chunks], flops);
  dispatch(
    rec,
    `weightGrad${L} split sum`,
    p.outputGradSplitSum!,
    split,
    index,
    [outputs, 1],
    splitWidth * chunks,
  );
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
