/**
 * The fast MLP engine's bind group layouts and compute pipelines, all made
 * once when the engine is created (webgpu-samples style: a label on each).
 * A layout is what its kernels declare (read from their WGSL: fast/bindings.ts),
 * never a list kept by hand. Pipelines are compiled asynchronously, all in
 * parallel: the plan's matmul variants (and any the tuner may time), the list
 * kernels of blank-pixel skipping (fast/mlp/variants/blank_pixels.ts), and the
 * fixed kernels (output layer and its weight gradient, the test pass's logits
 * and confusion counts, loss sum, optimiser, gather).
 *
 * Not here: the bind groups (fast/mlp/bind_groups.ts), the buffers
 * (fast/mlp/buffers.ts, activations.ts) and when each pipeline runs
 * (fast/mlp/step.ts, encode.ts). WebGPU and plain TypeScript
 * only.
 *
 * @module
 */

import { type OptimizerKernel, OPTIMIZERS } from "../../shared/model/optim.ts";
import { kernelSource, specialize, unrollLoops } from "../../shared/kernels/sources.ts";
import {
  declaredBindings,
  type KernelBindings,
  type Pipelines,
  type Signature,
  signatureOf,
} from "../kit.ts";
import { listKernel, listKernelSource } from "./variants/blank_pixels.ts";
import { SPLIT_CHUNK } from "./activations.ts";
import type { MlpSetup } from "./buffers.ts";
import {
  type KernelOptions,
  type MatmulVariant,
  opKernels,
  OUTPUT_ROWS_PER_GROUP,
  type Plan,
  skipsZeroRows,
  type Slot,
  slotShapes,
  slotsOf,
  tuneCandidates,
  variantSource,
} from "./variants/matmul.ts";

// ---------------------------------------------------------------------------
// Bind group layouts

/**
 * The engine's kinds of bind group, each for the kernels that use it: a
 * slot's group serves every variant family of its op (the tuner may switch
 * at any time), the split output-layer weight gradient's both its passes.
 */
export type MlpGroup =
  | "forward"
  | "inputGrad"
  | "weightGrad"
  | "nonzeroRows"
  | "nonzeroGroups"
  | "outputLayer"
  | "outputWeightGrad"
  | "splitGrad"
  | "logits"
  | "confusion"
  | "sum"
  | "optimizer"
  | "gather";

/** The kernel files each `MlpGroup` serves for an engine of `setup`. */
function groupKernels(setup: MlpSetup): Record<MlpGroup, string[]> {
  return {
    forward: opKernels("forward"),
    inputGrad: opKernels("inputGrad"),
    weightGrad: opKernels("weightGrad"),
    nonzeroRows: ["nonzeroRows"],
    nonzeroGroups: ["nonzeroGroups"],
    outputLayer: [setup.output.layer === "rows" ? "outputLayerRows" : "outputLayer"],
    outputWeightGrad: ["weightGradRow"],
    splitGrad: ["weightGradSplit", "weightGradSplitSum"],
    logits: ["outputLogits"],
    confusion: ["argmaxConfusion"],
    sum: ["sumLosses"],
    optimizer: [OPTIMIZERS[setup.optimizer.optimizer].kernel],
    gather: ["gatherRows"],
  };
}

/**
 * A kind of bind group: the bindings its kernels declare (read from their
 * WGSL; specialisation sets `const` lines only, never a declaration), the
 * layout's signature (their union) and the layout.
 */
export interface MlpLayout {
  kernels: KernelBindings[];
  kinds: Signature;
  bindGroup: GPUBindGroupLayout;
}

/** The engine's bind group layouts. */
export type MlpLayouts = Record<MlpGroup, MlpLayout>;

/** The layouts of an engine of `setup`, shared through `pipelines` with every kernel of the same signature. */
export function createLayouts(pipelines: Pipelines, setup: MlpSetup): MlpLayouts {
  const layouts = Object.entries(groupKernels(setup)).map(([group, files]) => {
    const kernels = files.map((k) => declaredBindings(k, kernelSource(k)));
    const kinds = signatureOf(kernels);
    return [group, { kernels, kinds, bindGroup: pipelines.layout(kinds).bindGroup }];
  });
  return Object.fromEntries(layouts) as MlpLayouts;
}

// ---------------------------------------------------------------------------
// Pipelines

/** The compiled pipelines. */
export interface MlpPipelines {
  /** Matmul variants by `pipelineKey(slot, v)`, list kernels by `listKernel`'s key. */
  variants: Map<string, GPUComputePipeline>;
  /** The output layer + softmax + cross-entropy + ∂z_L + ∂z_(L−1) kernel, and its file's name. */
  outputLayer: GPUComputePipeline;
  outputLayerKernel: "outputLayer" | "outputLayerRows";
  /** The test pass: logits = act · W_L + b_L, then confusion[y, argmax] += 1 (common). */
  logits: GPUComputePipeline;
  confusion: GPUComputePipeline;
  sum: GPUComputePipeline;
  /** Momentum, Adam (`separateUpdate`): the update of the whole packed buffer, and its kernel's name. */
  optimizer?: GPUComputePipeline;
  optimizerKernel: OptimizerKernel;
  /** With `shuffle`: the gathers of images (n0 / 4 words a row) and labels (1). */
  gatherX?: GPUComputePipeline;
  gatherY?: GPUComputePipeline;
  /** The output layer's weight gradient: one row of W_L per invocation ("row")… */
  outputGradRow?: GPUComputePipeline;
  /** …or partial sums over chunks of rows, then their sum in order ("split"). */
  outputGradSplit?: GPUComputePipeline;
  outputGradSplitSum?: GPUComputePipeline;
}

/** The key of `v`'s pipeline in `slot`. */
function pipelineKey(slot: string, v: MatmulVariant): string {
  return `${slot}/${v.name}`;
}

/** The pipeline of `v` in `slot`; throws when it was not compiled. */
export function pipelineOf(p: MlpPipelines, slot: string, v: MatmulVariant): GPUComputePipeline {
  const pipeline = p.variants.get(pipelineKey(slot, v));
  if (!pipeline) throw new Error(`no pipeline compiled for ${slot} ${v.name}`);
  return pipeline;
}

/**
 * Compiles `code` (entry point `main`) for `layouts[group]`, asynchronously
 * (not awaited), after checking that each binding `code` declares is in the
 * layout as the same kind.
 */
function compiler(pipelines: Pipelines, layouts: MlpLayouts) {
  return (label: string, code: string, group: MlpGroup) => {
    const { kinds } = layouts[group];
    for (const { binding, name, kind } of declaredBindings(label, code).bindings) {
      if (kinds[binding] !== kind) {
        throw new Error(
          `kernel ${label}: binding ${binding} (${name}, ${kind}) is not in the ${group} layout`,
        );
      }
    }
    return pipelines.compile(label, code, kinds);
  };
}

/**
 * Compiles every pipeline the engine needs, in parallel: the `plan`'s
 * variants, every tuner candidate of `tuneSlots`, the list kernels they
 * need, and the fixed kernels.
 */
export async function createPipelines(
  kit: Pipelines,
  setup: MlpSetup,
  layouts: MlpLayouts,
  plan: Plan,
  kernelOptions: KernelOptions,
  tune: { slots: readonly Slot[]; software: boolean },
): Promise<MlpPipelines> {
  const compile = compiler(kit, layouts);
  const shapes = slotShapes(setup.sizes);
  // Pipelines per slot and variant: the plan's, plus any asked for (tuning).
  const variants = new Map<string, Promise<GPUComputePipeline>>();
  const want = (slot: Slot, v: MatmulVariant) => {
    const shape = shapes[slot];
    const key = pipelineKey(slot, v);
    if (!variants.has(key)) {
      variants.set(
        key,
        compile(`${slot} ${v.name}`, variantSource(shape, v, kernelOptions), shape.op),
      );
    }
    // nonzeroRows/nonzeroGroups per block size, for the variants that skip zeros.
    const lists = listKernel(shape, v, kernelOptions);
    if (lists && !variants.has(lists)) {
      const source = listKernelSource(shape, v, kernelOptions, setup.maxRows);
      variants.set(
        lists,
        compile(
          lists,
          source,
          skipsZeroRows(shape, v, kernelOptions) ? "nonzeroRows" : "nonzeroGroups",
        ),
      );
    }
  };
  for (const slot of slotsOf(setup.sizes)) {
    want(slot, plan[slot]);
    if (!tune.slots.includes(slot)) continue;
    const { maxRows, maxTextureRows } = setup;
    for (const v of tuneCandidates(shapes[slot], tune.software, maxRows, maxTextureRows)) {
      want(slot, v);
    }
  }
  const compiled = new Map<string, GPUComputePipeline>();
  // Awaited all at once, so that a failed compile is an error of this call
  // (the caller frees what was made), never a rejection nobody awaits.
  const [fixed] = await Promise.all([
    compileFixed(compile, setup),
    ...[...variants].map(async ([key, p]) => compiled.set(key, await p)),
  ]);
  return { variants: compiled, ...fixed };
}

/** The kernels every engine of `setup` runs, whatever the plan. */
async function compileFixed(
  compile: ReturnType<typeof compiler>,
  setup: MlpSetup,
): Promise<Omit<MlpPipelines, "variants">> {
  const { sizes, output, separateUpdate, shuffle, nTrain } = setup;
  const L = sizes.length - 1, n0 = sizes[0];
  // The output layer: K = n(L−1) inputs, C = nL classes.
  const outputConsts = { K: sizes[L - 1], C: sizes[L] };
  const splitConsts = { K: sizes[L - 1], N: sizes[L], CHUNK: SPLIT_CHUNK };
  const rows = output.layer === "rows", split = output.weightGrad === "split";
  const outputLayerKernel = rows ? "outputLayerRows" : "outputLayer";
  const optimizerKernel = OPTIMIZERS[setup.optimizer.optimizer].kernel;
  const gatherSource = (words: number) =>
    specialize(kernelSource("gatherRows"), { ROWS: nTrain, WORDS: words });
  const update = { UPDATE_IN_PLACE: !separateUpdate };
  const source = (kernel: string, consts: Record<string, number | boolean>) =>
    specialize(kernelSource(kernel), consts);
  const [outputLayer, logits, confusion, sum, optimizer, gatherX, gatherY, row, splitA, splitB] =
    await Promise
      .all([
        compile(
          outputLayerKernel,
          unrollLoops(
            source(
              outputLayerKernel,
              rows ? { ...outputConsts, ROWS: OUTPUT_ROWS_PER_GROUP } : outputConsts,
            ),
          ),
          "outputLayer",
        ),
        compile("outputLogits", source("outputLogits", outputConsts), "logits"),
        compile("argmaxConfusion", source("argmaxConfusion", { CLASSES: sizes[L] }), "confusion"),
        compile("sumLosses", kernelSource("sumLosses"), "sum"),
        separateUpdate
          ? compile(optimizerKernel, kernelSource(optimizerKernel), "optimizer")
          : undefined,
        shuffle ? compile("gatherRows images", gatherSource(n0 / 4), "gather") : undefined,
        shuffle ? compile("gatherRows labels", gatherSource(1), "gather") : undefined,
        split ? undefined : compile(
          `weightGrad${L} row`,
          unrollLoops(source("weightGradRow", { K: sizes[L - 1], N: sizes[L], ...update })),
          "outputWeightGrad",
        ),
        split
          ? compile(`weightGrad${L} split`, source("weightGradSplit", splitConsts), "splitGrad")
          : undefined,
        split
          ? compile(
            `weightGrad${L} split sum`,
            source("weightGradSplitSum", { ...splitConsts, ...update }),
            "splitGrad",
          )
          : undefined,
      ]);
  return {
    outputLayer,
    outputLayerKernel,
    logits,
    confusion,
    sum,
    optimizer,
    optimizerKernel,
    gatherX,
    gatherY,
    outputGradRow: row,
    outputGradSplit: splitA,
    outputGradSplitSum: splitB,
  };
}
