/**
 * The stage kit: the engine machinery both fast models (fast/mlp/,
 * fast/cnn/) are built from, written once.
 *
 * - Bindings by name (fast/bindings.ts, re-exported here): a kernel's
 *   bindings are read from its WGSL declarations; the host binds
 *   `{ NAME: resource }`, checked against them; one bind group layout per
 *   binding signature, shared by every kernel that has it.
 * - Pipelines made once and compiled in parallel (`Pipelines`: every
 *   `createComputePipelineAsync` is started before any is awaited), keyed by
 *   their source and signature, so the same kernel with the same constants
 *   is compiled once.
 * - A `Stage`: a kernel (its pipeline, compiled from the kernel and its
 *   constants), its bind group, which uniform entry it reads, its grid and
 *   its floating-point operations for a batch (the profiler reads them).
 *   `StageSpec` describes one before it is compiled and bound.
 * - The recorder and `dispatch`, which every dispatch of both engines goes
 *   through: consecutive dispatches share one compute pass (WebGPU orders
 *   the dispatches of a pass and makes each one's storage writes visible to
 *   the next: usage scopes are per dispatch); a pass ends only for a copy or
 *   a clear (`outsidePass`), or when the profiler wants timestamps around a
 *   single dispatch (timestampWrites belong to a pass).
 * - The chunked epoch loop (`runChunks`): progress, `stop` asked between
 *   chunks, at most two chunks in flight when either is given.
 *
 * Not here: what a model's stages are (fast/mlp/step.ts, fast/cnn/step.ts),
 * its buffers, and the `Engine` contract (fast/engine.ts). WebGPU and plain
 * TypeScript only.
 *
 * @module
 */

import { workgroupGrid } from "../shared/gpu/device.ts";
import type { PassTimestamps } from "../shared/gpu/profiler.ts";
import { kernelSource, specialize, unrollLoops } from "../shared/kernels/sources.ts";
import { EpochInterrupted } from "./engine.ts";
import {
  bindGroupByName,
  createLayout,
  declaredBindings,
  type KernelBindings,
  type Layout,
  type Resource,
  type Signature,
  signatureKey,
  signatureOf,
  UNIFORM_STRIDE,
} from "./bindings.ts";

export {
  bindByName,
  bindGroupByName,
  type BindingKind,
  type Declaration,
  declaredBindings,
  type KernelBindings,
  type Layout,
  optimizerBindings,
  type Resource,
  type Signature,
  signatureOf,
  UNIFORM_STRIDE,
} from "./bindings.ts";

// ---------------------------------------------------------------------------
// Pipelines

/**
 * The source of `kernel` with its `const NAME = …;` lines set to `constants`
 * (`specialize`, shared/kernels/sources.ts) and its `// unroll` loops written
 * out (`unrollLoops`: the kernels' loops over registers, which llvmpipe keeps
 * in memory when rolled); throws, naming the constant, when one is left at
 * `SET_BY_HOST` (which names nothing in WGSL, so such a source could not
 * compile anyway).
 */
export function specializedSource(kernel: string, constants: Record<string, number>): string {
  const src = unrollLoops(specialize(kernelSource(kernel), constants));
  const unset = [...src.matchAll(/^const (\w+) = SET_BY_HOST;/gm)].map((m) => m[1]);
  if (unset.length > 0) {
    throw new Error(`kernel ${kernel}: the host did not set ${unset.join(", ")}`);
  }
  return src;
}

/**
 * An engine's pipelines, made once: one layout per distinct binding
 * signature, one pipeline per distinct (source, signature), compiled with
 * `createComputePipelineAsync` so that all of them compile in parallel. Await
 * them all at once (`Promise.all`), so that a failed compile is an error of
 * the engine's creation, never a rejection nobody awaits.
 */
export class Pipelines {
  readonly #device: GPUDevice;
  readonly #layouts = new Map<string, Layout>();
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The shared layout of `kinds`. */
  layout(kinds: Signature): Layout {
    const key = signatureKey(kinds);
    let layout = this.#layouts.get(key);
    if (!layout) {
      layout = createLayout(this.#device, kinds);
      this.#layouts.set(key, layout);
    }
    return layout;
  }

  /** `code` (entry point `main`) compiling (started now, not awaited) against `kinds`' layout. */
  compile(label: string, code: string, kinds: Signature): Promise<GPUComputePipeline> {
    const key = `${signatureKey(kinds)}\n${code}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const module = this.#device.createShaderModule({ label: `${label} module`, code });
      pipeline = this.#device.createComputePipelineAsync({
        label: `${label} pipeline`,
        layout: this.layout(kinds).pipeline,
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * `kernel` specialised to `constants` (`specializedSource`), compiling
   * against `kinds`' layout (default: the bindings it declares).
   */
  kernel(
    kernel: string,
    constants: Record<string, number>,
    kinds?: Signature,
  ): Promise<GPUComputePipeline> {
    const source = specializedSource(kernel, constants);
    const signature = kinds ?? signatureOf([declaredBindings(kernel, source)]);
    return this.compile(kernelLabel(kernel, constants), source, signature);
  }
}

/** `kernel` and its constants, e.g. "maxPool (H=24 W=24 C=8)": a pipeline's label. */
function kernelLabel(kernel: string, constants: Record<string, number>): string {
  const what = Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(" ");
  return `${kernel}${what ? ` (${what})` : ""}`;
}

/** A pipeline of `kernel` (specialised to `constants`) with a layout of its own: for tests and benches. */
export function kernelPipeline(
  device: GPUDevice,
  kernel: string,
  kinds: Signature,
  constants: Record<string, number> = {},
): Promise<GPUComputePipeline> {
  return new Pipelines(device).kernel(kernel, constants, kinds);
}

// ---------------------------------------------------------------------------
// Stages

/** Threads per workgroup of the kit's stages. */
const WORKGROUP = 64;

/** Which uniform entry a stage's dynamic uniform takes: the batch's, the optimiser step's, or none. */
export type UniformEntry = "batch" | "step" | "none";

/** One dispatch, described: `bindStage` compiles it and binds it. */
export interface StageSpec {
  /** What the profiler and the labels call it, e.g. "conv2 cnnMatmulTransB". */
  name: string;
  kernel: string;
  /** The kernel's `const` lines (`specializedSource`). */
  constants: Record<string, number>;
  /**
   * The kernel's dynamic uniform (its `var<uniform> …: Batch` or
   * `OptimizerStep`): the batch's entry, the optimiser step's entry, or none
   * (a kernel that declares none).
   */
  uniform: UniformEntry;
  /**
   * Every other binding, by the name the kernel declares it with (checked
   * against the specialised source: `bindByName`); the layout is what the
   * kernel declares (`signatureOf`).
   */
  bindings: Readonly<Record<string, Resource>>;
  /** Threads for a batch of `count` images (workgroups of 64). */
  threads: (count: number) => number;
  /** Floating-point operations for a batch of `count` (0 where not worth counting). */
  flops: (count: number) => number;
}

/** One recorded dispatch: a pipeline, its bindings, its workgroups and operations for a batch. */
export interface Stage {
  /** What the profiler calls it. */
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Which uniform entry its dynamic uniform takes. */
  uniform: UniformEntry;
  /** Workgroups [x, y] for a batch of `count` images (`stageGrids`). */
  grid: (count: number) => readonly [number, number];
  /** Floating-point operations for a batch of `count`. */
  flops: (count: number) => number;
}

/**
 * The workgroups of a stage for a batch of `count` images: `threads(count)`
 * threads in workgroups of 64, x up to `maxPerDimension` and the rest in y
 * (`workgroupGrid`; every kernel rebuilds its index from `num_workgroups`, as
 * `(group.y · groups.x + group.x) · 64 + local`). Each count's grid is made
 * once (a full batch, the last, a test batch), so recording allocates nothing.
 */
export function stageGrids(
  threads: (count: number) => number,
  maxPerDimension: number,
): (count: number) => readonly [number, number] {
  const grids = new Map<number, readonly [number, number]>();
  return (count) => {
    let grid = grids.get(count);
    if (!grid) {
      grid = workgroupGrid(threads(count), WORKGROUP, maxPerDimension);
      grids.set(count, grid);
    }
    return grid;
  };
}

/**
 * A function that turns a `StageSpec` into a `Stage`: its pipeline (from
 * `pipelines`, compiling) and its bind group, by name (`bindByName`), the
 * dynamic uniform of a batch or step stage bound to `uniforms`' entry; made
 * once per spec (a spec shared by two lists of stages is one stage). Throws,
 * naming the stage and the kernel, when the spec's bindings and uniform do
 * not match what the kernel declares.
 */
export function stageBinder(
  device: GPUDevice,
  pipelines: Pipelines,
  uniforms: { batch?: GPUBufferBinding; step?: GPUBufferBinding },
): (spec: StageSpec) => Promise<Stage> {
  const done = new Map<StageSpec, Promise<Stage>>();
  const make = async (spec: StageSpec): Promise<Stage> => {
    const source = specializedSource(spec.kernel, spec.constants);
    const declared = declaredBindings(spec.kernel, source);
    const kinds = signatureOf([declared]);
    const pipeline = pipelines.compile(kernelLabel(spec.kernel, spec.constants), source, kinds);
    const label = `${spec.name} bind group`;
    const bindGroup = bindGroupByName(
      device,
      label,
      pipelines.layout(kinds).bindGroup,
      [declared],
      {
        ...spec.bindings,
        ...stageUniform(spec, declared, uniforms),
      },
    );
    const grid = stageGrids(spec.threads, device.limits.maxComputeWorkgroupsPerDimension);
    const { name, uniform, flops } = spec;
    return { name, pipeline: await pipeline, bindGroup, uniform, grid, flops };
  };
  return (spec) => {
    let stage = done.get(spec);
    if (!stage) {
      stage = make(spec);
      done.set(spec, stage);
    }
    return stage;
  };
}

/**
 * `{ NAME: entry }` for the dynamic uniform `declared` declares (NAME its
 * name there), of the entry `spec.uniform` says; throws when the kernel
 * declares one and the spec says none, or the other way round, or the spec
 * binds it by name itself.
 */
function stageUniform(
  spec: StageSpec,
  declared: KernelBindings,
  uniforms: { batch?: GPUBufferBinding; step?: GPUBufferBinding },
): Record<string, GPUBufferBinding> {
  const at = `${spec.name}: kernel ${spec.kernel}`;
  const dynamic = declared.bindings.find((d) => d.kind === "dynamic");
  if (!dynamic) {
    if (spec.uniform === "none") return {};
    throw new Error(`${at} declares no per-batch or step uniform for the ${spec.uniform} entry`);
  }
  const where = `binding ${dynamic.binding} (${dynamic.name})`;
  if (spec.uniform === "none") throw new Error(`${at} ${where}: the stage gives no uniform entry`);
  if (dynamic.name in spec.bindings) {
    throw new Error(
      `${at} ${where}: bound by the stage's uniform ("${spec.uniform}"), not by name`,
    );
  }
  const entry = uniforms[spec.uniform];
  if (!entry) throw new Error(`${at} ${where}: no ${spec.uniform} uniform`);
  return { [dynamic.name]: entry };
}

// ---------------------------------------------------------------------------
// Recorder and dispatch

/** What every recorder of an engine shares (made once with the engine). */
export interface Dispatcher {
  device: GPUDevice;
  /** Profiling: a compute pass's timestampWrites for kernel `kernel` of `flops` operations. */
  passTimestamps?: PassTimestamps;
  /** `offsets[e]` = e · UNIFORM_STRIDE: the dynamic offset of uniform entry e. */
  offsets: Uint32Array;
}

/** The dispatcher of an engine whose uniform tables have at most `entries` entries. */
export function dispatcher(
  device: GPUDevice,
  entries: number,
  passTimestamps?: PassTimestamps,
): Dispatcher {
  const offsets = Uint32Array.from({ length: Math.max(1, entries) }, (_, e) => e * UNIFORM_STRIDE);
  return { device, passTimestamps, offsets };
}

/** A command encoder and the compute pass it has open, if any. */
export interface Recorder {
  readonly to: Dispatcher;
  encoder: GPUCommandEncoder;
  pass?: GPUComputePassEncoder;
  /** Passes begun, for their labels. */
  passes: number;
}

/** A recorder for a new command buffer called `label`. */
export function record(to: Dispatcher, label: string): Recorder {
  return { to, encoder: to.device.createCommandEncoder({ label }), passes: 0 };
}

/** The encoder with its open pass ended: copies and clears may not go inside a pass. */
export function outsidePass(rec: Recorder): GPUCommandEncoder {
  rec.pass?.end();
  rec.pass = undefined;
  return rec.encoder;
}

/** Finishes `rec` and submits it. */
export function submit(rec: Recorder): void {
  rec.to.device.queue.submit([outsidePass(rec).finish()]);
}

/**
 * Encodes one dispatch of `[x, y]` workgroups of `pipeline` with `group`,
 * binding 0 at uniform entry `entry` (null: the group has no dynamic
 * offset), into the recorder's open pass, or a pass of its own when the
 * profiler gives timestamps for kernel `kernel` of `flops` operations.
 * Allocates nothing when not profiling.
 */
export function dispatch(
  rec: Recorder,
  kernel: string,
  pipeline: GPUComputePipeline,
  group: GPUBindGroup,
  entry: number | null,
  grid: readonly [number, number],
  flops: number,
): void {
  const timestampWrites = rec.to.passTimestamps?.(kernel, flops);
  let pass: GPUComputePassEncoder;
  if (timestampWrites) {
    pass = outsidePass(rec).beginComputePass({ label: `${kernel} pass`, timestampWrites });
  } else {
    pass = rec.pass ??= rec.encoder.beginComputePass({
      label: `${rec.encoder.label} pass ${++rec.passes}`,
    });
  }
  pass.setPipeline(pipeline);
  if (entry === null) pass.setBindGroup(0, group);
  else pass.setBindGroup(0, group, rec.to.offsets, entry, 1);
  pass.dispatchWorkgroups(grid[0], grid[1]);
  if (timestampWrites) pass.end();
}

/** Records `stages` for a batch of `count` images: binding 0 at entry `batch` or `step`. */
export function encodeStages(
  rec: Recorder,
  stages: readonly Stage[],
  batch: number,
  step: number,
  count: number,
): void {
  for (const st of stages) {
    const entry = st.uniform === "none" ? null : st.uniform === "batch" ? batch : step;
    dispatch(rec, st.name, st.pipeline, st.bindGroup, entry, st.grid(count), st.flops(count));
  }
}

// ---------------------------------------------------------------------------
// The chunked epoch loop

/** How an engine's epoch is cut into command buffers. */
export interface Chunks {
  device: GPUDevice;
  /** Steps in the epoch. */
  steps: number;
  /** Steps per command buffer, and in the first one (smaller: the GPU starts sooner). */
  stepsPerSubmit: number;
  firstChunk: number;
  /** Encodes and submits steps `first .. first+count-1`; `last`: with the epoch's loss sum. */
  submit(first: number, count: number, last: boolean): void;
  /** Awaited after each submit (e.g. a profiler's `collect`). */
  afterSubmit?: () => Promise<void>;
}

/**
 * One epoch in chunks of steps (`Engine.trainEpoch`, less the loss
 * readback, which the caller does once). Each chunk is encoded while the one
 * before runs. With `onProgress` or `stop`, at most two chunks are in
 * flight: after submitting chunk i + 1, chunk i is awaited and reported;
 * then, unless chunk i + 1 was the epoch's last, `stop` is asked (between
 * chunks: an epoch whose every step was submitted is never interrupted), and
 * when true the submitted work runs to its end, is reported, and
 * `EpochInterrupted` is thrown.
 */
export async function runChunks(
  c: Chunks,
  onProgress?: (stepsDone: number) => void,
  stop?: () => boolean,
): Promise<void> {
  const n = c.steps;
  let previous: { done: Promise<void>; steps: number } | undefined; // the chunk before the last
  const firstChunk = Math.min(c.stepsPerSubmit, c.firstChunk);
  for (let first = 0, count = 0; first < n; first += count) {
    count = Math.min(first === 0 ? firstChunk : c.stepsPerSubmit, n - first);
    const last = first + count === n;
    c.submit(first, count, last);
    await c.afterSubmit?.();
    if (!onProgress && !stop) continue;
    // Keep the GPU fed with this chunk while waiting for the one before.
    const done = c.device.queue.onSubmittedWorkDone();
    if (previous) {
      await previous.done;
      onProgress?.(previous.steps);
    }
    previous = { done, steps: first + count };
    if (!last && stop?.()) {
      await done;
      onProgress?.(first + count);
      throw new EpochInterrupted(first + count);
    }
  }
  if (previous && onProgress) {
    await previous.done;
    onProgress(previous.steps);
  }
}
