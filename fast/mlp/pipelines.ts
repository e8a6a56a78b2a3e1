/**
 * The fast MLP engine's bind group layouts, compute pipelines and bind
 * groups, all made once when the engine is created (webgpu-samples style: a
 * label on each). Pipelines are compiled asynchronously, all in parallel:
 * the plan's matmul variants (and any the tuner may time), the list kernels
 * of blank-pixel skipping (fast/mlp/blank_pixels.ts), and the fixed kernels
 * (output layer, layer-3 weight gradient, test counts, loss sum, optimiser,
 * gather).
 *
 * Not here: the buffers (fast/mlp/buffers.ts) and when each pipeline runs
 * (fast/mlp/step.ts). WebGPU and plain TypeScript only.
 *
 * @module
 */

import {
  type Optimizer,
  OPTIMIZER_UNIFORM_BYTES,
  type OptimizerKernel,
  OPTIMIZERS,
} from "../../shared/model/optim.ts";
import { kernelSource, specialize, unrollLoops } from "../../shared/kernels/sources.ts";
import { type BlankPixels, type ListBindGroups, listBindGroups } from "./blank_pixels.ts";
import { listKernel, listKernelSource } from "./blank_pixels.ts";
import {
  type BufferRange,
  type MlpBuffers,
  type MlpSetup,
  SPLIT_CHUNK,
  STEP_SIZE,
} from "./buffers.ts";
import {
  type KernelOptions,
  type MatmulVariant,
  type Plan,
  type Slot,
  SLOTS,
  slotShapes,
  tuneCandidates,
  variantSource,
} from "./matmul.ts";

// ---------------------------------------------------------------------------
// Bind group layouts

/**
 * A binding's kind: the Step entry (dynamic offset), the optimiser's entry
 * (dynamic offset), a plain uniform buffer, a storage buffer read or
 * read-write, a float texture.
 */
type BindingKind = "uniform" | "optimUniform" | "ubo" | "read" | "rw" | "tex";

/** The engine's bind group layouts (bindings in order, as each kernel declares them). */
export interface MlpLayouts {
  product: GPUBindGroupLayout;
  weightGrad: GPUBindGroupLayout;
  nonzero: GPUBindGroupLayout;
  outputLayer: GPUBindGroupLayout;
  splitGrad: GPUBindGroupLayout;
  count: GPUBindGroupLayout;
  sum: GPUBindGroupLayout;
  optimizer: GPUBindGroupLayout;
  gather: GPUBindGroupLayout;
}

function layout(device: GPUDevice, label: string, kinds: BindingKind[]): GPUBindGroupLayout {
  return device.createBindGroupLayout({
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
}

/**
 * The layouts (`gpuSmall`: the GPU-shaped output layer, which reads W3 from
 * storage; `optimizer`: the optimiser, whose kernel binds one buffer per part of its state).
 */
export function createLayouts(
  device: GPUDevice,
  gpuSmall: boolean,
  optimizer: Optimizer,
): MlpLayouts {
  const outputLayerKernel = gpuSmall ? "outputLayerRows" : "outputLayer";
  const L = (label: string, kinds: BindingKind[]) => layout(device, label, kinds);
  return {
    // forward and inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out,
    // lists of groups of pixels (nonzeroGroups)
    product: L("forward/inputGrad layout", [
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
    weightGrad: L("weightGrad layout", [
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
    nonzero: L("nonzeroRows/nonzeroGroups layout", ["uniform", "read", "rw", "read"]),
    // outputLayer(Rows): step, act, W (CPU-shaped: a uniform copy), b, labels, losses, ∂z, ∂act
    outputLayer: L(`${outputLayerKernel} layout`, [
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
    splitGrad: L("weightGradSplit layout", ["uniform", "read", "read", "rw", "rw", "rw"]),
    count: L("countCorrect layout", ["uniform", "read", "read", "read", "read", "rw"]),
    sum: L("sumLosses layout", ["uniform", "read", "rw"]),
    // the optimiser's kernel: its uniform, θ, ∂θ, then each part of its state
    optimizer: L(`${optimizer.kernel} layout`, [
      "optimUniform",
      "rw",
      "read",
      ...optimizer.state.map((): BindingKind => "rw"),
    ]),
    gather: L("gatherRows layout", ["read", "read", "rw"]),
  };
}

// ---------------------------------------------------------------------------
// Pipelines

/** The compiled pipelines. */
export interface MlpPipelines {
  /** Matmul variants by `pipelineKey(slot, v)`, list kernels by `listKernel`'s key. */
  variants: Map<string, GPUComputePipeline>;
  /** The output layer + softmax + cross-entropy + ∂z3 + ∂z2 kernel, and its file's name. */
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
  /** Layer 3's weight gradient: one row of W3 per invocation (CPU-shaped)… */
  weightGrad3Row?: GPUComputePipeline;
  /** …or partial sums over chunks of rows, then their sum in order (GPU-shaped). */
  weightGrad3Split?: GPUComputePipeline;
  weightGrad3SplitSum?: GPUComputePipeline;
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

/** Compiles `code` (entry point `main`) for bind group layout `bgl`, asynchronously. */
function compiler(device: GPUDevice) {
  const pipelineLayouts = new Map<GPUBindGroupLayout, GPUPipelineLayout>();
  return (label: string, code: string, bgl: GPUBindGroupLayout) => {
    let layout = pipelineLayouts.get(bgl);
    if (!layout) {
      layout = device.createPipelineLayout({
        label: `${bgl.label} pipeline layout`,
        bindGroupLayouts: [bgl],
      });
      pipelineLayouts.set(bgl, layout);
    }
    return device.createComputePipelineAsync({
      label: `${label} pipeline`,
      layout,
      compute: {
        module: device.createShaderModule({ label: `${label} module`, code }),
        entryPoint: "main",
      },
    });
  };
}

/**
 * Compiles every pipeline the engine needs, in parallel: the `plan`'s
 * variants, every tuner candidate of `tuneSlots`, the list kernels they
 * need, and the fixed kernels.
 */
export async function createPipelines(
  device: GPUDevice,
  setup: MlpSetup,
  layouts: MlpLayouts,
  plan: Plan,
  kernelOptions: KernelOptions,
  tune: { slots: readonly Slot[]; software: boolean },
): Promise<MlpPipelines> {
  const compile = compiler(device);
  const shapes = slotShapes(setup.sizes);
  // Pipelines per slot and variant: the plan's, plus any asked for (tuning).
  const variants = new Map<string, Promise<GPUComputePipeline>>();
  const want = (slot: Slot, v: MatmulVariant) => {
    const shape = shapes[slot];
    const key = pipelineKey(slot, v);
    const bgl = shape.op === "weightGrad" ? layouts.weightGrad : layouts.product;
    if (!variants.has(key)) {
      variants.set(key, compile(`${slot} ${v.name}`, variantSource(shape, v, kernelOptions), bgl));
    }
    // nonzeroRows/nonzeroGroups per block size, for the variants that skip zeros.
    const lists = listKernel(shape, v, kernelOptions);
    if (lists && !variants.has(lists)) {
      const source = listKernelSource(shape, v, kernelOptions, setup.maxRows);
      variants.set(lists, compile(lists, source, layouts.nonzero));
    }
  };
  for (const slot of SLOTS) {
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
    compileFixed(compile, setup, layouts),
    ...[...variants].map(async ([key, p]) => compiled.set(key, await p)),
  ]);
  return { variants: compiled, ...fixed };
}

/** The kernels every engine of `setup` runs, whatever the plan. */
async function compileFixed(
  compile: ReturnType<typeof compiler>,
  setup: MlpSetup,
  layouts: MlpLayouts,
): Promise<Omit<MlpPipelines, "variants">> {
  const [n0, , n2, n3] = setup.sizes;
  const { gpuSmall, separateUpdate, shuffle, nTrain } = setup;
  const outputLayerKernel = gpuSmall ? "outputLayerRows" : "outputLayer";
  const outputLayerConsts = { K: n2, C: n3 };
  const splitConsts = { K: n2, N: n3, CHUNK: SPLIT_CHUNK };
  const optimizerKernel = OPTIMIZERS[setup.optimizer.optimizer].kernel;
  const gatherSource = (words: number) =>
    specialize(kernelSource("gatherRows"), { ROWS: nTrain, WORDS: words });
  const update = { UPDATE_IN_PLACE: !separateUpdate };
  const [outputLayer, count, sum, optimizer, gatherX, gatherY, row, split, splitSum] = await Promise
    .all([
      compile(
        outputLayerKernel,
        unrollLoops(specialize(kernelSource(outputLayerKernel), outputLayerConsts)),
        layouts.outputLayer,
      ),
      compile(
        "countCorrect",
        specialize(kernelSource("countCorrect"), outputLayerConsts),
        layouts.count,
      ),
      compile("sumLosses", kernelSource("sumLosses"), layouts.sum),
      separateUpdate
        ? compile(optimizerKernel, kernelSource(optimizerKernel), layouts.optimizer)
        : undefined,
      shuffle ? compile("gatherRows images", gatherSource(n0 / 4), layouts.gather) : undefined,
      shuffle ? compile("gatherRows labels", gatherSource(1), layouts.gather) : undefined,
      gpuSmall ? undefined : compile(
        "weightGrad3 row",
        unrollLoops(specialize(kernelSource("weightGradRow"), { K: n2, N: n3, ...update })),
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
          specialize(kernelSource("weightGradSplitSum"), { ...splitConsts, ...update }),
          layouts.splitGrad,
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
    weightGrad3Row: row,
    weightGrad3Split: split,
    weightGrad3SplitSum: splitSum,
  };
}

// ---------------------------------------------------------------------------
// Bind groups

/** Every bind group a dispatch of the engine uses, by what it binds for. */
export interface MlpBindGroups extends ListBindGroups, Record<Slot, GPUBindGroup> {
  forward1Test: GPUBindGroup;
  outputLayer: GPUBindGroup;
  weightGrad3: GPUBindGroup;
  weightGrad3Split?: GPUBindGroup;
  count: GPUBindGroup;
  sum: GPUBindGroup;
  optimizer?: GPUBindGroup;
  gatherX?: GPUBindGroup;
  gatherY?: GPUBindGroup;
}

type Resource = GPUBuffer | GPUTexture | BufferRange;

/**
 * A bind group of `resources` at bindings 0, 1, …; a whole buffer at
 * binding 0 is the uniform entry, bound `uniformSize` bytes at a time (0:
 * no uniform).
 */
function bindGroup(
  device: GPUDevice,
  label: string,
  bgl: GPUBindGroupLayout,
  resources: Resource[],
  uniformSize = STEP_SIZE,
): GPUBindGroup {
  return device.createBindGroup({
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
}

/** The bind groups of an engine with buffers `b` and blank-pixel buffers `blank`. */
export function createBindGroups(
  device: GPUDevice,
  layouts: MlpLayouts,
  b: MlpBuffers,
  blank: BlankPixels,
  p: MlpPipelines,
): MlpBindGroups {
  const group = (label: string, bgl: GPUBindGroupLayout, resources: Resource[]) =>
    bindGroup(device, label, bgl, resources);
  return {
    ...slotBindGroups(group, layouts, b, blank),
    ...listBindGroups(
      (label, resources) => group(label, layouts.nonzero, resources),
      b.steps,
      b.trainXOrdered,
      b.testX,
      blank,
    ),
    ...otherBindGroups(device, group, layouts, b, p),
  };
}

/** A bind group of `resources` for layout `bgl` (Step entry at binding 0). */
type MakeGroup = (label: string, bgl: GPUBindGroupLayout, resources: Resource[]) => GPUBindGroup;

/**
 * The tunable matmuls' bind groups (and forward1's on the test images). One
 * layout serves every variant of an op: a variant reads either the buffer or
 * the texture of each operand, and the unused one is a dummy.
 */
function slotBindGroups(
  group: MakeGroup,
  layouts: MlpLayouts,
  b: MlpBuffers,
  blank: BlankPixels,
): Record<Slot | "forward1Test", GPUBindGroup> {
  const { steps, dummyTex, dummyStorage: none, a1, a2, dz1, dz2 } = b;
  const [w1, w2] = b.weights;
  const [b1, b2] = b.biases;
  const [gw1, gw2] = b.gradWeights;
  const [gb1, gb2] = b.gradBiases;
  const { product, weightGrad } = layouts;
  // forward, inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out, group lists
  // weightGrad: step, A words, A texture, G, G texture, ∂W (or W), ∂b (or b), row lists
  const forward1 = (
    x: GPUBuffer,
  ): Resource[] => [steps, x, dummyTex, w1, b.w1Tex, b1, a1, blank.groupLists];
  return {
    forward1: group("forward1 bind group", product, forward1(b.trainXOrdered)),
    forward1Test: group("forward1 test bind group", product, forward1(b.testX)),
    forward2: group("forward2 bind group", product, [
      steps,
      a1,
      b.a1Tex,
      w2,
      b.w2Tex,
      b2,
      a2,
      none,
    ]),
    inputGrad2: group("inputGrad2 bind group", product, [
      steps,
      dz2,
      b.dz2Tex,
      w2,
      b.w2Tex,
      a1,
      dz1,
      none,
    ]),
    weightGrad2: group("weightGrad2 bind group", weightGrad, [
      steps,
      a1,
      b.a1Tex,
      dz2,
      b.dz2Tex,
      gw2,
      gb2,
      none,
    ]),
    weightGrad1: group("weightGrad1 bind group", weightGrad, [
      steps,
      b.trainXOrdered,
      dummyTex,
      dz1,
      b.dz1Tex,
      gw1,
      gb1,
      blank.rowLists,
    ]),
  };
}

/** The output layer's, layer 3's, the test count's, the loss sum's, the optimiser's, the gathers'. */
function otherBindGroups(
  device: GPUDevice,
  group: MakeGroup,
  layouts: MlpLayouts,
  b: MlpBuffers,
  p: MlpPipelines,
): Omit<MlpBindGroups, Slot | "forward1Test" | keyof ListBindGroups> {
  const { steps, dummyTex, dummyStorage: none, a2, dz2, dz3 } = b;
  const [, , w3] = b.weights;
  const [, , b3] = b.biases;
  const [, , gw3] = b.gradWeights;
  const [, , gb3] = b.gradBiases;
  const gather = (label: string, src: GPUBuffer, out: GPUBuffer, order: GPUBuffer) =>
    bindGroup(device, label, layouts.gather, [order, src, out], 0);
  return {
    // step, act, W (CPU-shaped kernel: its uniform copy), b, labels, losses, ∂z3, ∂z2
    outputLayer: group(`${p.outputLayerKernel} bind group`, layouts.outputLayer, [
      steps,
      a2,
      b.w3Copy ?? w3,
      b3,
      b.trainYOrdered,
      b.losses,
      dz3,
      dz2,
    ]),
    weightGrad3: group("weightGrad3 bind group", layouts.weightGrad, [
      steps,
      a2,
      dummyTex,
      dz3,
      dummyTex,
      gw3,
      gb3,
      none,
    ]),
    weightGrad3Split: b.splitPartials
      ? group("weightGrad3 split bind group", layouts.splitGrad, [
        steps,
        a2,
        dz3,
        b.splitPartials,
        gw3,
        gb3,
      ])
      : undefined,
    count: group("countCorrect bind group", layouts.count, [
      steps,
      a2,
      w3,
      b3,
      b.testY,
      b.confusion,
    ]),
    sum: group("sumLosses bind group", layouts.sum, [steps, b.losses, b.lossTotal]),
    optimizer: b.optimizerTable.buffer && b.gradBuffer
      ? bindGroup(
        device,
        `${p.optimizerKernel} bind group`,
        layouts.optimizer,
        [b.optimizerTable.buffer, b.paramBuffer, b.gradBuffer, ...b.stateBuffers],
        OPTIMIZER_UNIFORM_BYTES,
      )
      : undefined,
    gatherX: b.order
      ? gather("gatherRows images bind group", b.trainX, b.trainXOrdered, b.order)
      : undefined,
    gatherY: b.order
      ? gather("gatherRows labels bind group", b.trainY, b.trainYOrdered, b.order)
      : undefined,
  };
}
