/**
 * The fast trainer's GPU engine: everything made once, then whole epochs
 * encoded into few command buffers.
 *
 * At creation it uploads the dataset as packed bytes (4 pixels per u32) and
 * the labels, allocates every activation, gradient, texture and staging
 * buffer for the largest batch, writes one uniform entry per batch
 * (`{start, count, lr}` at 256-byte strides, bound with a dynamic offset),
 * compiles the pipelines in parallel and makes the bind groups. Nothing is
 * allocated while training.
 *
 * One training step is eight dispatches (see `encodeStep`): two fused
 * forward layers, the fused output layer + softmax + cross-entropy +
 * gradient, and the backward pass with the ReLU masks inside the
 * input-gradient matmuls and SGD folded into the weight-gradient matmuls.
 * Each layer's input gradient is computed before that layer's weights are
 * updated. When a chosen variant reads an operand from a texture, the
 * operand's canonical buffer is copied into its texture right after it is
 * written.
 *
 * @module
 */

import type { Gpu } from "../shared/gpu.ts";
import { kernelSource } from "../shared/gpu.ts";
import { batchRanges, type MlpParams, PIXELS } from "../shared/model.ts";
import {
  defaultVariant,
  dispatchSize,
  type MatmulShape,
  type MatmulVariant,
  shapeMultiplyAdds,
  specialize,
  variantByName,
  variantFits,
  VARIANTS,
  variantSource,
} from "./matmul.ts";

/** The tunable matmul slots of one training step. */
export type Slot = "forward1" | "forward2" | "inputGrad2" | "weightGrad2" | "weightGrad1";

/** All tunable slots, in step order. */
export const SLOTS: readonly Slot[] = [
  "forward1",
  "forward2",
  "inputGrad2",
  "weightGrad2",
  "weightGrad1",
];

/** The variant chosen for each tunable slot. */
export type Plan = Record<Slot, MatmulVariant>;

/** Images and labels the engine trains and tests on. */
export interface EngineData {
  trainImages: Uint8Array;
  trainLabels: Uint8Array;
  testImages: Uint8Array;
  testLabels: Uint8Array;
  /** Training images used (a prefix of trainImages). */
  nTrain: number;
  /** Test images used (a prefix of testImages). */
  nTest: number;
}

/** Options of `createFastTrainer`. */
export interface FastTrainerOptions {
  batchSize: number;
  lr: number;
  /** Variants per slot; missing slots get `defaultVariant`. */
  plan?: Partial<Record<Slot, string>>;
  /** Also compile every variant that fits these slots, for `timeVariant` and `setVariant`. */
  tuneSlots?: readonly Slot[];
  /** Steps per command buffer (default: 32). */
  stepsPerSubmit?: number;
  /**
   * Where profiling hooks in: called for each compute pass with its kernel
   * name and floating-point operations; returns the pass's timestampWrites.
   */
  passTimestamps?: (kernel: string, flops: number) => GPUComputePassTimestampWrites | undefined;
  /** Awaited after each submitted chunk of an epoch (e.g. a profiler's `collect`). */
  afterSubmit?: () => Promise<void>;
}

const STEP_STRIDE = 256; // minUniformBufferOffsetAlignment is at most 256
const STEP_SIZE = 16; // struct Step { start, count, lr, _pad }

/** Rows the tuner screens every variant on (or the batch size, if smaller). */
export const TUNE_SCREEN_ROWS = 16;

/** The fast trainer on one device; see the module doc. */
export interface FastTrainer {
  /** The variant of each slot (change with `setVariant`). */
  readonly plan: Readonly<Plan>;
  /** Uses `v` for `slot` from now on; it must have been compiled (plan or `tuneSlots`). */
  setVariant(slot: Slot, v: MatmulVariant): void;
  /** The batches of an epoch, `[start, count]`. */
  readonly batches: readonly [number, number][];
  /** Rows the activation buffers hold (the largest batch or test chunk). */
  readonly maxRows: number;
  /** The matmul shape of each slot. */
  readonly shapes: Record<Slot, MatmulShape>;
  /**
   * Encodes steps `first .. first+count-1` of the epoch's batches into one
   * command buffer and submits it without waiting; GPU work runs in queue
   * order. (`runEpoch`, `evaluate` and `timeVariant` share staging buffers:
   * await one before starting another.)
   */
  runSteps(first: number, count: number): void;
  /**
   * Runs a whole epoch and returns the sum over its images of −log p_y
   * (one readback). `onProgress(stepsDone)` is called after each submitted
   * chunk has finished on the GPU; without it nothing waits until the end.
   */
  runEpoch(onProgress?: (stepsDone: number) => void): Promise<number>;
  /** Per-image losses of images `start..start+count-1` from the last steps that saw them. */
  readLosses(start: number, count: number): Promise<Float32Array>;
  /** Test images (of the first nTest) whose argmax equals the label (one readback). */
  evaluate(): Promise<number>;
  /** The current parameters, read back from the GPU. */
  readParams(): Promise<MlpParams>;
  /**
   * Times `reps` dispatches of `v` in `slot` (compiled via `tuneSlots` or the
   * plan) on `rows` rows — `min(TUNE_SCREEN_ROWS, batchSize)` or `batchSize` —
   * in one submit, with lr 0 so the weights stay as they are. Milliseconds,
   * including one readback (`reps` 0 measures that overhead alone).
   */
  timeVariant(slot: Slot, v: MatmulVariant, rows: number, reps?: number): Promise<number>;
  /** Frees the GPU objects (the device stays open). */
  destroy(): void;
}

/** The matmul shape of each tunable slot for layer sizes `sizes`. */
export function slotShapes(sizes: readonly number[]): Record<Slot, MatmulShape> {
  const [n0, n1, n2] = sizes;
  return {
    forward1: { op: "forward", k: n0, n: n1, aBytes: true },
    forward2: { op: "forward", k: n1, n: n2, aBytes: false },
    inputGrad2: { op: "inputGrad", k: n2, n: n1, aBytes: false },
    weightGrad2: { op: "weightGrad", k: n1, n: n2, aBytes: false },
    weightGrad1: { op: "weightGrad", k: n0, n: n1, aBytes: true },
  };
}

/** The small layer-3 shapes (registers-4x4 on CPU adapters, tiled-16 on GPUs). */
function smallShapes(sizes: number[]): { inputGrad3: MatmulShape; weightGrad3: MatmulShape } {
  const [, , n2, n3] = sizes;
  return {
    inputGrad3: { op: "inputGrad", k: n3, n: n2, aBytes: false },
    weightGrad3: { op: "weightGrad", k: n2, n: n3, aBytes: false },
  };
}

/**
 * Rows the activation buffers hold: the batch size, or more so that the test
 * set goes through in chunks of at least 1024 images.
 */
export function fastTrainerRows(batchSize: number, nTest: number): number {
  return Math.max(batchSize, Math.min(nTest, 1024));
}

/** Bytes padded to a multiple of 4 and at least 4, for a storage buffer. */
function padded(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(4, Math.ceil(bytes.length / 4) * 4));
  out.set(bytes);
  return out;
}

/**
 * Makes the fast trainer for `params` (copied to the GPU) and `data`. See
 * `FastTrainer`. `opts.plan` picks variants; every other slot gets the
 * default for the adapter type.
 */
export async function createFastTrainer(
  gpu: Gpu,
  params: MlpParams,
  data: EngineData,
  opts: FastTrainerOptions,
): Promise<FastTrainer> {
  const { device } = gpu;
  const sizes = params.sizes;
  if (sizes.length !== 4 || sizes[0] !== PIXELS || sizes[1] % 4 || sizes[2] % 4) {
    throw new Error(`the fast trainer needs a ${PIXELS}→h→h→c MLP, got ${sizes.join("→")}`);
  }
  const [n0, n1, n2, n3] = sizes;
  const { batchSize, lr } = opts;
  const { nTrain, nTest } = data;
  const batches = batchRanges(nTrain, batchSize);
  const maxRows = fastTrainerRows(batchSize, nTest);
  const evalRows = maxRows;
  const evalChunks = batchRanges(nTest, evalRows);
  const maxTextureRows = device.limits.maxTextureDimension2D;
  const texturesOk = maxRows <= maxTextureRows;
  const shapes = slotShapes(sizes);
  const small = smallShapes(sizes);
  // Layer 3 (×10) is tiny; not tuned. On a GPU, registers-4x4 leaves its
  // weight gradient to ~100 invocations looping over the batch (0.8 ms a
  // step on an H200, more than all the big matmuls); tiles use 1280.
  const smallVariant = variantByName(gpu.software ? "registers-4x4" : "tiled-16");

  const plan = {} as Plan;
  for (const slot of SLOTS) {
    const name = opts.plan?.[slot];
    const v = name
      ? variantByName(name)
      : defaultVariant(shapes[slot], gpu.software, maxRows, maxTextureRows);
    if (!variantFits(v, shapes[slot], maxRows, maxTextureRows)) {
      throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
    }
    plan[slot] = v;
  }

  // ---- buffers -----------------------------------------------------------
  const S = GPUBufferUsage.STORAGE, CS = GPUBufferUsage.COPY_SRC, CD = GPUBufferUsage.COPY_DST;
  const owned: (GPUBuffer | GPUTexture)[] = [];
  const buffer = (label: string, size: number, usage: number): GPUBuffer => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
    owned.push(b);
    return b;
  };
  const upload = (label: string, bytes: Uint8Array, usage: number): GPUBuffer => {
    const b = buffer(label, Math.max(4, bytes.byteLength), usage | CD);
    device.queue.writeBuffer(b, 0, padded(bytes));
    return b;
  };
  const trainX = upload(
    "train images (packed bytes)",
    data.trainImages.subarray(0, nTrain * n0),
    S,
  );
  const testX = upload(
    "test images (packed bytes)",
    data.testImages.subarray(0, Math.max(nTest, 1) * n0),
    S,
  );
  const trainY = upload(
    "train labels (u32)",
    new Uint8Array(Uint32Array.from(data.trainLabels.subarray(0, nTrain)).buffer),
    S,
  );
  const testY = upload(
    "test labels (u32)",
    new Uint8Array(Uint32Array.from(data.testLabels.subarray(0, Math.max(nTest, 1))).buffer),
    S,
  );
  const weights = [0, 1, 2].map((l) =>
    buffer(`W${l + 1} [${sizes[l]}, ${sizes[l + 1]}]`, sizes[l] * sizes[l + 1] * 4, S | CS | CD)
  );
  const biases = [0, 1, 2].map((l) =>
    buffer(`b${l + 1} [${sizes[l + 1]}]`, sizes[l + 1] * 4, S | CS | CD)
  );
  for (let l = 0; l < 3; l++) {
    device.queue.writeBuffer(weights[l], 0, params.weights[l].slice());
    device.queue.writeBuffer(biases[l], 0, params.biases[l].slice());
  }
  const a1 = buffer(`a1 [${maxRows}, ${n1}]`, maxRows * n1 * 4, S | CS);
  const a2 = buffer(`a2 [${maxRows}, ${n2}]`, maxRows * n2 * 4, S | CS);
  const dz3 = buffer(`dz3 [${maxRows}, ${n3}]`, maxRows * n3 * 4, S | CS);
  const dz2 = buffer(`dz2 [${maxRows}, ${n2}]`, maxRows * n2 * 4, S | CS);
  const dz1 = buffer(`dz1 [${maxRows}, ${n1}]`, maxRows * n1 * 4, S | CS);
  const losses = buffer(`per-image losses [${nTrain}]`, nTrain * 4, S | CS);
  const lossTotal = buffer("epoch loss total", 4, S | CS);
  const correct = buffer("test correct count", 4, S | CS | CD);
  const lossStaging = buffer("epoch loss readback", 4, GPUBufferUsage.MAP_READ | CD);
  const correctStaging = buffer("test correct readback", 4, GPUBufferUsage.MAP_READ | CD);

  // Uniform entries: train batches, test chunks, the epoch sum, then tuning
  // steps (lr 0, so timing a weight-gradient variant leaves the weights be).
  const tuneRows = [...new Set([Math.min(TUNE_SCREEN_ROWS, batchSize), batchSize])];
  const stepEntries: [number, number, number][] = [
    ...batches.map(([s, c]) => [s, c, lr] as [number, number, number]),
    ...evalChunks.map(([s, c]) => [s, c, 0] as [number, number, number]),
    [0, nTrain, 0],
    ...tuneRows.map((c) => [0, c, 0] as [number, number, number]),
  ];
  const stepData = new ArrayBuffer(stepEntries.length * STEP_STRIDE);
  stepEntries.forEach(([s, c, r], i) => {
    const u = new Uint32Array(stepData, i * STEP_STRIDE, 4);
    u[0] = s;
    u[1] = c;
    new Float32Array(stepData, i * STEP_STRIDE, 4)[2] = r;
  });
  const steps = buffer(
    "steps {start, count, lr} (256-byte strides)",
    stepData.byteLength,
    GPUBufferUsage.UNIFORM | CD,
  );
  device.queue.writeBuffer(steps, 0, stepData);
  const evalStep0 = batches.length;
  const sumStep = evalStep0 + evalChunks.length;
  const tuneStep0 = sumStep + 1;

  // ---- textures (rgba32float, 4 floats per texel along a row) ------------
  const texture = (label: string, width: number, height: number): GPUTexture => {
    const t = device.createTexture({
      label,
      size: [width, height],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
    });
    owned.push(t);
    return t;
  };
  const dummyTex = texture("unused texture slot", 1, 1);
  const texRows = texturesOk ? maxRows : 1;
  const w1Tex = texture(`W1 texture [${n0}][${n1 / 4}]`, n1 / 4, n0);
  const w2Tex = texture(`W2 texture [${n1}][${n2 / 4}]`, n2 / 4, n1);
  const a1Tex = texture(`a1 texture [${texRows}][${n1 / 4}]`, n1 / 4, texRows);
  const dz2Tex = texture(`dz2 texture [${texRows}][${n2 / 4}]`, n2 / 4, texRows);
  const dz1Tex = texture(`dz1 texture [${texRows}][${n1 / 4}]`, n1 / 4, texRows);

  const usesTex = (slot: Slot) => plan[slot].family === "texture";
  const needA1Tex = () => usesTex("forward2") || usesTex("weightGrad2");
  const needDz2Tex = () => usesTex("inputGrad2") || usesTex("weightGrad2");
  const needDz1Tex = () => usesTex("weightGrad1");
  const needW1Tex = () => usesTex("forward1");
  const needW2Tex = () => usesTex("forward2") || usesTex("inputGrad2");

  // ---- layouts, pipelines, bind groups -----------------------------------
  type Kind = "uniform" | "read" | "rw" | "tex";
  const layout = (label: string, kinds: Kind[]): GPUBindGroupLayout =>
    device.createBindGroupLayout({
      label,
      entries: kinds.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        ...(kind === "uniform"
          ? { buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: STEP_SIZE } }
          : kind === "tex"
          ? { texture: { sampleType: "unfilterable-float" } }
          : { buffer: { type: kind === "read" ? "read-only-storage" : "storage" } }),
      })) as GPUBindGroupLayoutEntry[],
    });
  const layouts = {
    // forward and inputGrad: step, A/G words, A/G texture, W, W texture, bias/act, out
    product: layout("forward/inputGrad layout", [
      "uniform",
      "read",
      "tex",
      "read",
      "tex",
      "read",
      "rw",
    ]),
    // weightGrad: step, A words, A texture, G, G texture, W, bias
    weightGrad: layout("weightGrad layout", ["uniform", "read", "tex", "read", "tex", "rw", "rw"]),
    head: layout("softmaxCrossEntropyGrad layout", [
      "uniform",
      "read",
      "read",
      "read",
      "read",
      "rw",
      "rw",
    ]),
    count: layout("countCorrect layout", ["uniform", "read", "read", "read", "read", "rw"]),
    sum: layout("sumLosses layout", ["uniform", "read", "rw"]),
  };
  const pipelineLayouts = new Map<GPUBindGroupLayout, GPUPipelineLayout>();
  const pipelineLayout = (bgl: GPUBindGroupLayout) => {
    let pl = pipelineLayouts.get(bgl);
    if (!pl) {
      pl = device.createPipelineLayout({
        label: `${bgl.label} pipeline layout`,
        bindGroupLayouts: [bgl],
      });
      pipelineLayouts.set(bgl, pl);
    }
    return pl;
  };
  const compile = (label: string, code: string, bgl: GPUBindGroupLayout) =>
    device.createComputePipelineAsync({
      label: `${label} pipeline`,
      layout: pipelineLayout(bgl),
      compute: {
        module: device.createShaderModule({ label: `${label} module`, code }),
        entryPoint: "main",
      },
    });
  const opLayout = (s: MatmulShape) => s.op === "weightGrad" ? layouts.weightGrad : layouts.product;

  // Pipelines per slot and variant: the plan's, plus any asked for (tuning).
  const variantPipelines = new Map<string, Promise<GPUComputePipeline>>();
  const pipelineKey = (slot: string, v: MatmulVariant) => `${slot}/${v.name}`;
  const want = (slot: string, shape: MatmulShape, v: MatmulVariant) => {
    const key = pipelineKey(slot, v);
    if (!variantPipelines.has(key)) {
      variantPipelines.set(
        key,
        compile(`${slot} ${v.name}`, variantSource(shape, v), opLayout(shape)),
      );
    }
  };
  for (const slot of SLOTS) {
    want(slot, shapes[slot], plan[slot]);
    if (!opts.tuneSlots?.includes(slot)) continue;
    for (const v of VARIANTS) {
      if (variantFits(v, shapes[slot], maxRows, maxTextureRows)) want(slot, shapes[slot], v);
    }
  }
  want("inputGrad3", small.inputGrad3, smallVariant);
  want("weightGrad3", small.weightGrad3, smallVariant);
  const headConsts = { K: n2, C: n3 };
  const fixed = await Promise.all([
    compile(
      "softmaxCrossEntropyGrad",
      specialize(kernelSource("softmaxCrossEntropyGrad"), headConsts),
      layouts.head,
    ),
    compile("countCorrect", specialize(kernelSource("countCorrect"), headConsts), layouts.count),
    compile("sumLosses", kernelSource("sumLosses"), layouts.sum),
  ]);
  const [headPipeline, countPipeline, sumPipeline] = fixed;
  const compiled = new Map<string, GPUComputePipeline>();
  await Promise.all(
    [...variantPipelines].map(async ([key, p]) => compiled.set(key, await p)),
  );
  const pipelineOf = (slot: string, v: MatmulVariant): GPUComputePipeline => {
    const p = compiled.get(pipelineKey(slot, v));
    if (!p) throw new Error(`no pipeline compiled for ${slot} ${v.name}`);
    return p;
  };

  const bindGroup = (
    label: string,
    bgl: GPUBindGroupLayout,
    resources: (GPUBuffer | GPUTexture)[],
  ) =>
    device.createBindGroup({
      label,
      layout: bgl,
      entries: resources.map((r, binding) => ({
        binding,
        resource: r instanceof GPUTexture
          ? r.createView({ label: `${r.label} view` })
          : binding === 0
          ? { buffer: r, size: STEP_SIZE }
          : { buffer: r },
      })),
    });
  const [w1, w2, w3] = weights;
  const [b1, b2, b3] = biases;
  const groups = {
    forward1: bindGroup("forward1 bind group", layouts.product, [
      steps,
      trainX,
      dummyTex,
      w1,
      w1Tex,
      b1,
      a1,
    ]),
    forward1Test: bindGroup("forward1 test bind group", layouts.product, [
      steps,
      testX,
      dummyTex,
      w1,
      w1Tex,
      b1,
      a1,
    ]),
    forward2: bindGroup("forward2 bind group", layouts.product, [
      steps,
      a1,
      a1Tex,
      w2,
      w2Tex,
      b2,
      a2,
    ]),
    head: bindGroup("head bind group", layouts.head, [steps, a2, w3, b3, trainY, losses, dz3]),
    inputGrad3: bindGroup("inputGrad3 bind group", layouts.product, [
      steps,
      dz3,
      dummyTex,
      w3,
      dummyTex,
      a2,
      dz2,
    ]),
    weightGrad3: bindGroup("weightGrad3 bind group", layouts.weightGrad, [
      steps,
      a2,
      dummyTex,
      dz3,
      dummyTex,
      w3,
      b3,
    ]),
    inputGrad2: bindGroup("inputGrad2 bind group", layouts.product, [
      steps,
      dz2,
      dz2Tex,
      w2,
      w2Tex,
      a1,
      dz1,
    ]),
    weightGrad2: bindGroup("weightGrad2 bind group", layouts.weightGrad, [
      steps,
      a1,
      a1Tex,
      dz2,
      dz2Tex,
      w2,
      b2,
    ]),
    weightGrad1: bindGroup("weightGrad1 bind group", layouts.weightGrad, [
      steps,
      trainX,
      dummyTex,
      dz1,
      dz1Tex,
      w1,
      b1,
    ]),
    count: bindGroup("countCorrect bind group", layouts.count, [steps, a2, w3, b3, testY, correct]),
    sum: bindGroup("sumLosses bind group", layouts.sum, [steps, losses, lossTotal]),
  };

  // ---- encoding: every pass goes through `dispatch` -----------------------
  const dispatch = (
    enc: GPUCommandEncoder,
    kernel: string,
    pipeline: GPUComputePipeline,
    group: GPUBindGroup,
    stepIndex: number,
    [x, y]: [number, number],
    flops: number,
  ) => {
    const pass = enc.beginComputePass({
      label: `${kernel} pass`,
      timestampWrites: opts.passTimestamps?.(kernel, flops),
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group, [stepIndex * STEP_STRIDE]);
    pass.dispatchWorkgroups(x, y);
    pass.end();
  };
  const dispatchSlot = (
    enc: GPUCommandEncoder,
    slot: string,
    shape: MatmulShape,
    v: MatmulVariant,
    group: GPUBindGroup,
    stepIndex: number,
    rows: number,
  ) =>
    dispatch(
      enc,
      `${slot} ${v.name}`,
      pipelineOf(slot, v),
      group,
      stepIndex,
      dispatchSize(shape, v, rows),
      2 * shapeMultiplyAdds(shape, rows),
    );
  const copyToTexture = (
    enc: GPUCommandEncoder,
    src: GPUBuffer,
    dst: GPUTexture,
    floatsPerRow: number,
    rows: number,
  ) =>
    enc.copyBufferToTexture(
      { buffer: src, bytesPerRow: floatsPerRow * 4 },
      { texture: dst },
      [floatsPerRow / 4, rows],
    );
  {
    // The weight textures start as copies of the weights, whatever the plan,
    // so that `setVariant` may switch to a texture variant at any time.
    const enc = device.createCommandEncoder({ label: "initial weight textures" });
    copyToTexture(enc, w1, w1Tex, n1, n0);
    copyToTexture(enc, w2, w2Tex, n2, n1);
    device.queue.submit([enc.finish()]);
  }

  /** One SGD step on batch `index` (its uniform entry). */
  const encodeStep = (enc: GPUCommandEncoder, index: number) => {
    const rows = batches[index][1];
    dispatchSlot(enc, "forward1", shapes.forward1, plan.forward1, groups.forward1, index, rows);
    if (needA1Tex()) copyToTexture(enc, a1, a1Tex, n1, rows);
    dispatchSlot(enc, "forward2", shapes.forward2, plan.forward2, groups.forward2, index, rows);
    dispatch(
      enc,
      "softmaxCrossEntropyGrad",
      headPipeline,
      groups.head,
      index,
      [Math.ceil(rows / 64), 1],
      2 * rows * n2 * n3,
    );
    // Layer 3 backward: ∂z2 with W3 before W3's update, then the update.
    dispatchSlot(enc, "inputGrad3", small.inputGrad3, smallVariant, groups.inputGrad3, index, rows);
    dispatchSlot(
      enc,
      "weightGrad3",
      small.weightGrad3,
      smallVariant,
      groups.weightGrad3,
      index,
      rows,
    );
    if (needDz2Tex()) copyToTexture(enc, dz2, dz2Tex, n2, rows);
    // Layer 2 backward: ∂z1 with W2 (and its texture) before W2's update.
    dispatchSlot(
      enc,
      "inputGrad2",
      shapes.inputGrad2,
      plan.inputGrad2,
      groups.inputGrad2,
      index,
      rows,
    );
    if (needDz1Tex()) copyToTexture(enc, dz1, dz1Tex, n1, rows);
    dispatchSlot(
      enc,
      "weightGrad2",
      shapes.weightGrad2,
      plan.weightGrad2,
      groups.weightGrad2,
      index,
      rows,
    );
    if (needW2Tex()) copyToTexture(enc, w2, w2Tex, n2, n1);
    // Layer 1: weight gradient and update only (no input gradient).
    dispatchSlot(
      enc,
      "weightGrad1",
      shapes.weightGrad1,
      plan.weightGrad1,
      groups.weightGrad1,
      index,
      rows,
    );
    if (needW1Tex()) copyToTexture(enc, w1, w1Tex, n1, n0);
  };

  const stepsPerSubmit = opts.stepsPerSubmit ?? 32;
  const runSteps = (first: number, count: number) => {
    if (first < 0 || count < 0 || first + count > batches.length) {
      throw new RangeError(`steps ${first}..${first + count - 1} outside 0..${batches.length - 1}`);
    }
    const enc = device.createCommandEncoder({ label: `steps ${first}..${first + count - 1}` });
    for (let i = first; i < first + count; i++) encodeStep(enc, i);
    device.queue.submit([enc.finish()]);
  };

  const readStaging = async (staging: GPUBuffer): Promise<ArrayBuffer> => {
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    return out;
  };

  return {
    plan,
    batches,
    maxRows,
    shapes,
    runSteps,
    async runEpoch(onProgress) {
      for (let first = 0; first < batches.length; first += stepsPerSubmit) {
        const count = Math.min(stepsPerSubmit, batches.length - first);
        runSteps(first, count);
        await opts.afterSubmit?.();
        if (onProgress) {
          await device.queue.onSubmittedWorkDone();
          onProgress(first + count);
        }
      }
      const enc = device.createCommandEncoder({ label: "epoch loss sum" });
      dispatch(enc, "sumLosses", sumPipeline, groups.sum, sumStep, [1, 1], nTrain);
      enc.copyBufferToBuffer(lossTotal, 0, lossStaging, 0, 4);
      device.queue.submit([enc.finish()]);
      return new Float32Array(await readStaging(lossStaging))[0];
    },
    async readLosses(start, count) {
      const enc = device.createCommandEncoder({ label: "losses readback" });
      const staging = device.createBuffer({
        label: "losses readback",
        size: Math.max(4, count * 4),
        usage: GPUBufferUsage.MAP_READ | CD,
      });
      enc.copyBufferToBuffer(losses, start * 4, staging, 0, count * 4);
      device.queue.submit([enc.finish()]);
      const out = new Float32Array(await readStaging(staging));
      staging.destroy();
      return out;
    },
    async evaluate() {
      const enc = device.createCommandEncoder({ label: "test evaluation" });
      enc.clearBuffer(correct);
      evalChunks.forEach(([, rows], i) => {
        const stepIndex = evalStep0 + i;
        dispatchSlot(
          enc,
          "forward1",
          shapes.forward1,
          plan.forward1,
          groups.forward1Test,
          stepIndex,
          rows,
        );
        if (usesTex("forward2")) copyToTexture(enc, a1, a1Tex, n1, rows);
        dispatchSlot(
          enc,
          "forward2",
          shapes.forward2,
          plan.forward2,
          groups.forward2,
          stepIndex,
          rows,
        );
        dispatch(enc, "countCorrect", countPipeline, groups.count, stepIndex, [
          Math.ceil(rows / 64),
          1,
        ], 2 * rows * n2 * n3);
      });
      enc.copyBufferToBuffer(correct, 0, correctStaging, 0, 4);
      device.queue.submit([enc.finish()]);
      return new Uint32Array(await readStaging(correctStaging))[0];
    },
    async readParams() {
      const read = async (b: GPUBuffer) => {
        const staging = device.createBuffer({
          label: `${b.label} readback`,
          size: b.size,
          usage: GPUBufferUsage.MAP_READ | CD,
        });
        const enc = device.createCommandEncoder({ label: `${b.label} readback` });
        enc.copyBufferToBuffer(b, 0, staging, 0, b.size);
        device.queue.submit([enc.finish()]);
        const out = new Float32Array(await readStaging(staging));
        staging.destroy();
        return out;
      };
      const ws = await Promise.all(weights.map(read));
      const bs = await Promise.all(biases.map(read));
      return {
        sizes: [...sizes],
        weights: ws.map((w, l) => w.slice(0, sizes[l] * sizes[l + 1])),
        biases: bs.map((b, l) => b.slice(0, sizes[l + 1])),
      };
    },
    setVariant(slot, v) {
      pipelineOf(slot, v); // throws when not compiled
      if (!variantFits(v, shapes[slot], maxRows, maxTextureRows)) {
        throw new Error(`variant ${v.name} does not fit ${slot} with ${maxRows} rows`);
      }
      plan[slot] = v;
      // Bring the weight textures up to date for a texture variant.
      const enc = device.createCommandEncoder({ label: "weight textures refresh" });
      copyToTexture(enc, w1, w1Tex, n1, n0);
      copyToTexture(enc, w2, w2Tex, n2, n1);
      device.queue.submit([enc.finish()]);
    },
    async timeVariant(slot, v, rows, reps = 1) {
      const at = tuneRows.indexOf(rows);
      if (at < 0) throw new RangeError(`can time ${tuneRows.join(" or ")} rows, not ${rows}`);
      const enc = device.createCommandEncoder({ label: `time ${slot} ${v.name}` });
      for (let r = 0; r < reps; r++) {
        dispatchSlot(enc, slot, shapes[slot], v, groups[slot], tuneStep0 + at, rows);
      }
      enc.copyBufferToBuffer(lossTotal, 0, lossStaging, 0, 4);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await readStaging(lossStaging);
      return performance.now() - t0;
    },
    destroy() {
      for (const o of owned) o.destroy();
    },
  };
}
