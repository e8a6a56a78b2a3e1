/**
 * The fast MLP engine's bind groups, made once when the engine is created:
 * one per tunable slot (forward_i, inputGrad_i, weightGrad_i of each hidden
 * layer, and forward1 on the test images), the list kernels', the output
 * layer's and its weight gradient's, the test pass's (logits, confusion), the loss sum's, the
 * optimiser's and the gathers'. Each binds its buffers by the names its
 * kernels declare (`bindGroupByName`, fast/bindings.ts: checked against
 * every kernel the group serves, fast/mlp/pipelines.ts's `MlpGroup`); the
 * binding numbers are only in the WGSL.
 *
 * Not here: the buffers (fast/mlp/buffers.ts, activations.ts) and which
 * dispatch uses which group (fast/mlp/encode.ts). WebGPU and plain
 * TypeScript only.
 *
 * @module
 */

import { type Optimizer, OPTIMIZER_UNIFORM_BYTES } from "../../shared/model/optim.ts";
import { bindGroupByName, optimizerBindings, type Resource } from "../kit.ts";
import { type BlankPixels, type ListBindGroups, listBindGroups } from "./variants/blank_pixels.ts";
import { BATCH_BYTES } from "../../shared/kernels/sources.ts";
import type { MlpBuffers } from "./buffers.ts";
import type { Slot } from "./variants/matmul.ts";
import type { MlpGroup, MlpLayouts, MlpPipelines } from "./pipelines.ts";

/** Every bind group a dispatch of the engine uses, by what it binds for. */
export interface MlpBindGroups extends ListBindGroups, Record<Slot, GPUBindGroup> {
  forward1Test: GPUBindGroup;
  outputLayer: GPUBindGroup;
  outputWeightGrad: GPUBindGroup;
  outputWeightGradSplit?: GPUBindGroup;
  logits: GPUBindGroup;
  confusion: GPUBindGroup;
  sum: GPUBindGroup;
  optimizer?: GPUBindGroup;
  gatherX?: GPUBindGroup;
  gatherY?: GPUBindGroup;
}

/** A bind group of kind `group` (its layout) binding `resources` by the names its kernels declare. */
type MakeGroup = (
  label: string,
  group: MlpGroup,
  resources: Record<string, Resource>,
) => GPUBindGroup;

/** The bind groups of an engine with buffers `b` and blank-pixel buffers `blank`. */
export function createBindGroups(
  device: GPUDevice,
  layouts: MlpLayouts,
  b: MlpBuffers,
  blank: BlankPixels,
  p: MlpPipelines,
  optimizer: Optimizer,
): MlpBindGroups {
  const group: MakeGroup = (label, kind, resources) =>
    bindGroupByName(device, label, layouts[kind].bindGroup, layouts[kind].kernels, resources);
  // The per-batch uniform: one `Batch` entry of the table, chosen by a dynamic offset.
  const step = { buffer: b.steps, size: BATCH_BYTES };
  return {
    ...slotBindGroups(group, step, b, blank),
    ...listBindGroups(group, step, b.trainXOrdered, b.testX, blank),
    ...otherBindGroups(group, step, b, p, optimizer),
  };
}

/**
 * The tunable matmuls' bind groups (and forward1's on the test images). One
 * group serves every variant family of an op: a variant reads either the
 * buffer or the texture of each operand (`aWords` or `aVec` and `aTex`, `w`
 * or `wTex`, …), so each group binds both, the texture a dummy where the
 * operand has no copy. Layer i's input a_(i−1) is the images for i = 1.
 */
function slotBindGroups(
  group: MakeGroup,
  step: GPUBufferBinding,
  b: MlpBuffers,
  blank: BlankPixels,
): Record<Slot | "forward1Test", GPUBindGroup> {
  const { dummyStorage: none, acts, dz, tex } = b;
  const L = b.weights.length;
  const groups = {} as Record<Slot | "forward1Test", GPUBindGroup>;
  for (let i = 1; i < L; i++) {
    const [w, bias, a] = [b.weights[i - 1], b.biases[i - 1], acts[i]];
    const x = i === 1 ? b.trainXOrdered : acts[i - 1], xTex = tex(`a${i - 1}`);
    // a_i = relu(a_(i−1) · W_i + b_i); layer 1's texture variant reads its lists of groups
    const forward = (input: GPUBuffer) => ({
      step,
      aWords: input,
      aVec: input,
      aTex: xTex,
      w,
      wTex: tex(`W${i}`),
      bias,
      outAct: a,
      groupList: i === 1 ? blank.groupLists : none,
    });
    groups[`forward${i}`] = group(`forward${i} bind group`, "forward", forward(x));
    if (i === 1) {
      groups.forward1Test = group("forward1 test bind group", "forward", forward(b.testX));
    }
    if (i >= 2) {
      // ∂z_(i−1) = (∂z_i · W_iᵀ) ⊙ [a_(i−1) > 0]
      groups[`inputGrad${i}`] = group(`inputGrad${i} bind group`, "inputGrad", {
        step,
        g: dz[i],
        gTex: tex(`dz${i}`),
        w,
        wTex: tex(`W${i}`),
        act: acts[i - 1],
        dz: dz[i - 1],
      });
    }
    // ∂W_i = a_(i−1)ᵀ · ∂z_i, ∂b_i = Σ_r ∂z_i (or W_i, b_i updated in place); layer 1's row lists
    groups[`weightGrad${i}`] = group(`weightGrad${i} bind group`, "weightGrad", {
      step,
      aWords: x,
      aVec: x,
      aTex: xTex,
      g: dz[i],
      gTex: tex(`dz${i}`),
      w: b.gradWeights[i - 1],
      bias: b.gradBiases[i - 1],
      rowList: i === 1 ? blank.rowLists : none,
    });
  }
  return groups;
}

/** The output layer's and its gradient's, the test count's, the loss sum's, the optimiser's, the gathers'. */
function otherBindGroups(
  group: MakeGroup,
  step: GPUBufferBinding,
  b: MlpBuffers,
  p: MlpPipelines,
  optimizer: Optimizer,
): Omit<MlpBindGroups, Slot | "forward1Test" | keyof ListBindGroups> {
  const { acts, dz } = b;
  const L = b.weights.length;
  const [w, bias, gw, gb] = [b.weights, b.biases, b.gradWeights, b.gradBiases].map((t) => t[L - 1]);
  const gather = (label: string, src: GPUBuffer, out: GPUBuffer, order: GPUBuffer) =>
    group(label, "gather", { order, src, out });
  const { optimizerTable: table, gradBuffer } = b;
  return {
    outputLayer: group(`${p.outputLayerKernel} bind group`, "outputLayer", {
      step,
      act: acts[L - 1],
      w: b.mirrors.get(`W${L}`)?.uniform ?? w, // outputLayer: W_L's uniform copy
      bias,
      labels: b.trainYOrdered,
      losses: b.losses,
      dz: dz[L],
      dAct: dz[L - 1],
    }),
    outputWeightGrad: group(`weightGrad${L} bind group`, "outputWeightGrad", {
      step,
      a: acts[L - 1],
      g: dz[L],
      w: gw,
      bias: gb,
    }),
    outputWeightGradSplit: b.splitPartials
      ? group(`weightGrad${L} split bind group`, "splitGrad", {
        step,
        a: acts[L - 1],
        g: dz[L],
        partial: b.splitPartials,
        w: gw,
        bias: gb,
      })
      : undefined,
    logits: group("outputLogits bind group", "logits", {
      step,
      act: acts[L - 1],
      w,
      bias,
      logits: b.testLogits,
    }),
    confusion: group("argmaxConfusion bind group", "confusion", {
      batch: step,
      logits: b.testLogits,
      labels: b.testY,
      confusion: b.confusion,
    }),
    sum: group("sumLosses bind group", "sum", {
      batch: step,
      losses: b.losses,
      total: b.lossTotal,
    }),
    optimizer: table.buffer && gradBuffer
      ? group(`${p.optimizerKernel} bind group`, "optimizer", {
        hp: { buffer: table.buffer, size: OPTIMIZER_UNIFORM_BYTES },
        ...optimizerBindings(optimizer, b.paramBuffer, gradBuffer, b.stateBuffers),
      })
      : undefined,
    gatherX: b.order
      ? gather("gatherRows images bind group", b.trainX, b.trainXOrdered, b.order)
      : undefined,
    gatherY: b.order
      ? gather("gatherRows labels bind group", b.trainY, b.trainYOrdered, b.order)
      : undefined,
  };
}
