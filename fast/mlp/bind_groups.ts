/**
 * The fast MLP engine's bind groups, made once when the engine is created:
 * one per tunable slot (forward_i, inputGrad_i, weightGrad_i of each hidden
 * layer, and forward1 on the test images), the list kernels', the output
 * layer's and its weight gradient's, the test count's, the loss sum's, the
 * optimiser's and the gathers'. Each lists its bindings in the order the
 * kernels declare them (the layouts: fast/mlp/pipelines.ts).
 *
 * Not here: the buffers (fast/mlp/buffers.ts, activations.ts) and which
 * dispatch uses which group (fast/mlp/encode.ts). WebGPU and plain
 * TypeScript only.
 *
 * @module
 */

import { OPTIMIZER_UNIFORM_BYTES } from "../../shared/model/optim.ts";
import { type BlankPixels, type ListBindGroups, listBindGroups } from "./variants/blank_pixels.ts";
import { BATCH_BYTES } from "../../shared/kernels/sources.ts";
import type { BufferRange, MlpBuffers } from "./buffers.ts";
import type { Slot } from "./variants/matmul.ts";
import type { MlpLayouts, MlpPipelines } from "./pipelines.ts";

/** Every bind group a dispatch of the engine uses, by what it binds for. */
export interface MlpBindGroups extends ListBindGroups, Record<Slot, GPUBindGroup> {
  forward1Test: GPUBindGroup;
  outputLayer: GPUBindGroup;
  outputWeightGrad: GPUBindGroup;
  outputWeightGradSplit?: GPUBindGroup;
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
  uniformSize = BATCH_BYTES,
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
 * the texture of each operand, and the unused one is a dummy. Layer i's
 * input a_(i−1) is the images for i = 1.
 */
function slotBindGroups(
  group: MakeGroup,
  layouts: MlpLayouts,
  b: MlpBuffers,
  blank: BlankPixels,
): Record<Slot | "forward1Test", GPUBindGroup> {
  const { steps, dummyStorage: none, acts, dz, tex } = b;
  const { product, weightGrad } = layouts;
  const L = b.weights.length;
  const groups = {} as Record<Slot | "forward1Test", GPUBindGroup>;
  for (let i = 1; i < L; i++) {
    const [w, bias, a] = [b.weights[i - 1], b.biases[i - 1], acts[i]];
    const x = i === 1 ? b.trainXOrdered : acts[i - 1], xTex = tex(`a${i - 1}`);
    // forward, inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out, group lists
    const forward = (input: GPUBuffer): Resource[] => [
      steps,
      input,
      xTex,
      w,
      tex(`W${i}`),
      bias,
      a,
      i === 1 ? blank.groupLists : none,
    ];
    groups[`forward${i}`] = group(`forward${i} bind group`, product, forward(x));
    if (i === 1) groups.forward1Test = group("forward1 test bind group", product, forward(b.testX));
    if (i >= 2) {
      groups[`inputGrad${i}`] = group(`inputGrad${i} bind group`, product, [
        steps,
        dz[i],
        tex(`dz${i}`),
        w,
        tex(`W${i}`),
        acts[i - 1],
        dz[i - 1],
        none,
      ]);
    }
    // weightGrad: step, A words, A texture, G, G texture, ∂W (or W), ∂b (or b), row lists
    groups[`weightGrad${i}`] = group(`weightGrad${i} bind group`, weightGrad, [
      steps,
      x,
      xTex,
      dz[i],
      tex(`dz${i}`),
      b.gradWeights[i - 1],
      b.gradBiases[i - 1],
      i === 1 ? blank.rowLists : none,
    ]);
  }
  return groups;
}

/** The output layer's and its gradient's, the test count's, the loss sum's, the optimiser's, the gathers'. */
function otherBindGroups(
  device: GPUDevice,
  group: MakeGroup,
  layouts: MlpLayouts,
  b: MlpBuffers,
  p: MlpPipelines,
): Omit<MlpBindGroups, Slot | "forward1Test" | keyof ListBindGroups> {
  const { steps, dummyTex, dummyStorage: none, acts, dz } = b;
  const L = b.weights.length;
  const [w, bias, gw, gb] = [b.weights, b.biases, b.gradWeights, b.gradBiases].map((t) => t[L - 1]);
  const gather = (label: string, src: GPUBuffer, out: GPUBuffer, order: GPUBuffer) =>
    bindGroup(device, label, layouts.gather, [order, src, out], 0);
  return {
    // step, act, W (outputLayer: its uniform copy), b, labels, losses, ∂z_L, ∂z_(L−1)
    outputLayer: group(`${p.outputLayerKernel} bind group`, layouts.outputLayer, [
      steps,
      acts[L - 1],
      b.mirrors.get(`W${L}`)?.uniform ?? w,
      bias,
      b.trainYOrdered,
      b.losses,
      dz[L],
      dz[L - 1],
    ]),
    outputWeightGrad: group(`weightGrad${L} bind group`, layouts.weightGrad, [
      steps,
      acts[L - 1],
      dummyTex,
      dz[L],
      dummyTex,
      gw,
      gb,
      none,
    ]),
    outputWeightGradSplit: b.splitPartials
      ? group(`weightGrad${L} split bind group`, layouts.splitGrad, [
        steps,
        acts[L - 1],
        dz[L],
        b.splitPartials,
        gw,
        gb,
      ])
      : undefined,
    count: group("countCorrect bind group", layouts.count, [
      steps,
      acts[L - 1],
      w,
      bias,
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
