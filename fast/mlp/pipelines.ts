/**
 * The fast MLP engine's bind group layouts and compute pipelines, all made
 * once when the engine is created (webgpu-samples style: a label on each). Pipelines are compiled asynchronously, all in parallel:
 * the plan's matmul variants (and any the tuner may time), the list kernels
 * of blank-pixel skipping (fast/mlp/variants/blank_pixels.ts), and the fixed kernels
 * (output layer and its weight gradient, test counts, loss sum, optimiser,
 * gather).
 *
 * Not here: the bind groups (fast/mlp/bind_groups.ts), the buffers
 * (fast/mlp/buffers.ts, activations.ts) and when each pipeline runs
 * (fast/mlp/step.ts, encode.ts). WebGPU and plain TypeScript
 * only.
 *
 * @module
 */

import { type Optimizer, type OptimizerKernel, OPTIMIZERS } from "../../shared/model/optim.ts";
import { kernelSource, specialize, unrollLoops } from "../../shared/kernels/sources.ts";
import type { BindingKind, Pipelines } from "../kit.ts";
import { listKernel, listKernelSource } from "./variants/blank_pixels.ts";
import { SPLIT_CHUNK } from "./activations.ts";
import type { MlpSetup } from "./buffers.ts";
import {
  type KernelOptions,
  type MatmulVariant,
  OUTPUT_ROWS_PER_GROUP,
  type OutputVariant,
  type Plan,
  type Slot,
  slotShapes,
  slotsOf,
  tuneCandidates,
  variantSource,
} from "./variants/matmul.ts";

// ---------------------------------------------------------------------------
// Bind group layouts

/**
 * The binding kinds of each bind group layout, in order, as each kernel
 * declares them (binding 0 "dynamic": the Step entry, or the optimiser's).
 */
export interface MlpBindings {
  product: BindingKind[];
  weightGrad: BindingKind[];
  nonzero: BindingKind[];
  outputLayer: BindingKind[];
  splitGrad: BindingKind[];
  count: BindingKind[];
  sum: BindingKind[];
  optimizer: BindingKind[];
  gather: BindingKind[];
}

/** The engine's bind group layouts, one per entry of `MlpBindings`. */
export type MlpLayouts = Record<keyof MlpBindings, GPUBindGroupLayout>;

/**
 * The bindings (`output.layer` "rows": the output layer reads W_L from storage,
 * not a uniform; `optimizer`: the optimiser, whose kernel binds one buffer per
 * part of its state).
 */
export function mlpBindings(output: OutputVariant, optimizer: Optimizer): MlpBindings {
  const rows = output.layer === "rows";
  return {
    // forward and inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out,
    // lists of groups of pixels (nonzeroGroups)
    product: [
      "dynamic",
      "read",
      "texture",
      "read",
      "texture",
      "read",
      "write",
      "read",
    ],
    // weightGrad: step, A words, A texture, G, G texture, W, bias, row lists (nonzeroRows)
    weightGrad: [
      "dynamic",
      "read",
      "texture",
      "read",
      "texture",
      "write",
      "write",
      "read",
    ],
    // nonzeroRows and nonzeroGroups: step, image bytes, lists, row order
    nonzero: ["dynamic", "read", "write", "read"],
    // outputLayer(Rows): step, act, W (outputLayer: a uniform copy), b, labels, losses, ∂z, ∂act
    outputLayer: [
      "dynamic",
      "read",
      rows ? "read" : "uniform",
      "read",
      "read",
      "write",
      "write",
      "write",
    ],
    // split output-layer weight gradient: step, A, G, partial sums, W, bias
    splitGrad: ["dynamic", "read", "read", "write", "write", "write"],
    count: ["dynamic", "read", "read", "read", "read", "write"],
    sum: ["dynamic", "read", "write"],
    // the optimiser's kernel: its uniform, θ, ∂θ, then each part of its state
    optimizer: [
      "dynamic",
      "write",
      "read",
      ...optimizer.state.map((): BindingKind => "write"),
    ],
    gather: ["read", "read", "write"],
  };
}

/** The layouts of `bindings`, shared through `pipelines` with every kernel of the same signature. */
export function createLayouts(pipelines: Pipelines, bindings: MlpBindings): MlpLayouts {
  const layouts = Object.entries(bindings).map(([k, v]) => [k, pipelines.layout(v).bindGroup]);
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
  count: GPUComputePipeline;
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

/** Compiles `code` (entry point `main`) for `bindings[layout]`, asynchronously (not awaited). */
function compiler(pipelines: Pipelines, bindings: MlpBindings) {
  return (label: string, code: string, layout: keyof MlpBindings) =>
    pipelines.compile(label, code, bindings[layout]);
}

/**
 * Compiles every pipeline the engine needs, in parallel: the `plan`'s
 * variants, every tuner candidate of `tuneSlots`, the list kernels they
 * need, and the fixed kernels.
 */
export async function createPipelines(
  kit: Pipelines,
  setup: MlpSetup,
  bindings: MlpBindings,
  plan: Plan,
  kernelOptions: KernelOptions,
  tune: { slots: readonly Slot[]; software: boolean },
): Promise<MlpPipelines> {
  const compile = compiler(kit, bindings);
  const shapes = slotShapes(setup.sizes);
  // Pipelines per slot and variant: the plan's, plus any asked for (tuning).
  const variants = new Map<string, Promise<GPUComputePipeline>>();
  const want = (slot: Slot, v: MatmulVariant) => {
    const shape = shapes[slot];
    const key = pipelineKey(slot, v);
    const bgl = shape.op === "weightGrad" ? "weightGrad" : "product";
    if (!variants.has(key)) {
      variants.set(key, compile(`${slot} ${v.name}`, variantSource(shape, v, kernelOptions), bgl));
    }
    // nonzeroRows/nonzeroGroups per block size, for the variants that skip zeros.
    const lists = listKernel(shape, v, kernelOptions);
    if (lists && !variants.has(lists)) {
      const source = listKernelSource(shape, v, kernelOptions, setup.maxRows);
      variants.set(lists, compile(lists, source, "nonzero"));
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
  const [outputLayer, count, sum, optimizer, gatherX, gatherY, row, splitA, splitB] = await Promise
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
      compile("countCorrect", source("countCorrect", outputConsts), "count"),
      compile("sumLosses", kernelSource("sumLosses"), "sum"),
      separateUpdate
        ? compile(optimizerKernel, kernelSource(optimizerKernel), "optimizer")
        : undefined,
      shuffle ? compile("gatherRows images", gatherSource(n0 / 4), "gather") : undefined,
      shuffle ? compile("gatherRows labels", gatherSource(1), "gather") : undefined,
      split ? undefined : compile(
        `weightGrad${L} row`,
        unrollLoops(source("weightGradRow", { K: sizes[L - 1], N: sizes[L], ...update })),
        "weightGrad",
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
    count,
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
