/**
 * How a CNN kernel becomes something to dispatch: its source specialised to
 * the network's shapes, a pipeline compiled asynchronously against a layout
 * shared by every kernel with the same binding signature, and a `Stage` (a
 * pipeline with its bind group and its dispatch size for a batch) that
 * `encodeStages` records into a compute pass without allocating.
 *
 * It is not the network: which stages run, in what order, on which buffers is
 * fast/cnn/step.ts; the buffers are fast/cnn/buffers.ts, the engine's methods
 * (and the binding of stages to pipelines) fast/cnn/engine.ts.
 *
 * Kernel convention (shared/kernels/cnn/*.wgsl): a shape the host sets is a
 * line `const NAME = SET_BY_HOST;`. `specialize` (shared/kernels/sources.ts)
 * replaces it with the value; `specializedSource` throws, naming the
 * constant, when one is left unset (and `SET_BY_HOST` names nothing in WGSL,
 * so such a source could not compile anyway).
 *
 * @module
 */

import { workgroupGrid } from "../../shared/gpu/device.ts";
import type { PassTimestamps } from "../../shared/gpu/profiler.ts";
import { kernelSource, specialize } from "../../shared/kernels/sources.ts";

/** Threads per workgroup of the CNN's kernels (sumLosses: one workgroup of 256). */
const WORKGROUP = 64;
/** Stride of the per-batch and per-step uniform entries (WebGPU's dynamic-offset alignment). */
export const UNIFORM_STRIDE = 256;

/**
 * What a binding of a CNN kernel is: a uniform at a dynamic offset (the
 * per-batch `{start, count}` entry or the per-step optimiser entry); a plain
 * uniform; read-only storage; writable storage.
 */
export type BindingKind = "dynamic" | "uniform" | "read" | "write";

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
 * The source of `kernel` with its `const NAME = …;` lines set to `constants`
 * (see the module doc); throws when a constant is left at `SET_BY_HOST`.
 */
export function specializedSource(kernel: string, constants: Record<string, number>): string {
  const src = specialize(kernelSource(kernel), constants);
  const unset = [...src.matchAll(/^const (\w+) = SET_BY_HOST;/gm)].map((m) => m[1]);
  if (unset.length > 0) {
    throw new Error(`kernel ${kernel}: the host did not set ${unset.join(", ")}`);
  }
  return src;
}

/** A bind group layout and the pipeline layout of just it. */
interface Layout {
  bindGroup: GPUBindGroupLayout;
  pipeline: GPUPipelineLayout;
}

/** The layout of bindings `kinds` (binding i is `kinds[i]`), for compute. */
function createLayout(device: GPUDevice, kinds: readonly BindingKind[]): Layout {
  const signature = kinds.join(",");
  const bindGroup = device.createBindGroupLayout({
    label: `CNN bind group layout (${signature})`,
    entries: kinds.map((kind, binding) => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: kind === "dynamic" || kind === "uniform"
        ? { type: "uniform" as const, hasDynamicOffset: kind === "dynamic" }
        : { type: kind === "read" ? "read-only-storage" as const : "storage" as const },
    })),
  });
  const pipeline = device.createPipelineLayout({
    label: `CNN pipeline layout (${signature})`,
    bindGroupLayouts: [bindGroup],
  });
  return { bindGroup, pipeline };
}

/**
 * Pipelines of CNN kernels, made once: one layout per distinct binding
 * signature, one compiled pipeline per distinct (kernel, constants,
 * signature), compiled with `createComputePipelineAsync` so that all of them
 * compile in parallel.
 */
export class PipelineCache {
  readonly #device: GPUDevice;
  readonly #layouts = new Map<string, Layout>();
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The shared layout of `kinds`. */
  layout(kinds: readonly BindingKind[]): Layout {
    const key = kinds.join(",");
    let layout = this.#layouts.get(key);
    if (!layout) {
      layout = createLayout(this.#device, kinds);
      this.#layouts.set(key, layout);
    }
    return layout;
  }

  /** `kernel` specialised to `constants`, compiling (started now, not awaited) against `kinds`' layout. */
  pipeline(
    kernel: string,
    constants: Record<string, number>,
    kinds: readonly BindingKind[],
  ): Promise<GPUComputePipeline> {
    const what = Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(" ");
    const key = `${kernel} ${what} | ${kinds.join(",")}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const label = `${kernel}${what ? ` (${what})` : ""}`;
      const module = this.#device.createShaderModule({
        label: `${label} module`,
        code: specializedSource(kernel, constants),
      });
      pipeline = this.#device.createComputePipelineAsync({
        label: `${label} pipeline`,
        layout: this.layout(kinds).pipeline,
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }
}

/** A pipeline of `kernel` (specialised to `constants`) with a layout of its own: for tests and benches. */
export function kernelPipeline(
  device: GPUDevice,
  kernel: string,
  kinds: readonly BindingKind[],
  constants: Record<string, number> = {},
): Promise<GPUComputePipeline> {
  return new PipelineCache(device).pipeline(kernel, constants, kinds);
}

/** One recorded dispatch: a pipeline, its bindings, and its workgroups for a batch. */
export interface Stage {
  /** What the profiler calls it: layer and kernel, e.g. "conv2 cnnMatmulTransB". */
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Which dynamic offset binding 0 takes: the batch's entry, the optimiser step's, or none. */
  offset: "batch" | "step" | "none";
  /** Workgroups [x, y] for a batch of `count` images (`stageGrids`). */
  groups: (count: number) => readonly [number, number];
  /** Floating-point operations for a batch of `count` (0 where not worth counting). */
  flops: (count: number) => number;
}

/** `offsets[e]` = e · UNIFORM_STRIDE, for `setBindGroup`'s (data, start, length) form. */
export function uniformOffsets(entries: number): Uint32Array {
  return Uint32Array.from({ length: Math.max(1, entries) }, (_, e) => e * UNIFORM_STRIDE);
}

/**
 * Records `stages` for one batch of `count` images: binding 0 at `entry` of
 * the batch uniform (or `step` of the optimiser's), an entry of `offsets`.
 * Into `shared`, or, when profiling (`shared` undefined), each into a pass
 * of its own with `timestamps`. Allocates nothing when `shared` is given.
 */
export function encodeStages(
  encoder: GPUCommandEncoder,
  shared: GPUComputePassEncoder | undefined,
  timestamps: PassTimestamps | undefined,
  stages: readonly Stage[],
  offsets: Uint32Array,
  entry: number,
  step: number,
  count: number,
) {
  for (const st of stages) {
    const pass = shared ?? encoder.beginComputePass({
      label: `${st.name} pass`,
      timestampWrites: timestamps?.(st.name, st.flops(count)),
    });
    pass.setPipeline(st.pipeline);
    if (st.offset === "none") pass.setBindGroup(0, st.bindGroup);
    else pass.setBindGroup(0, st.bindGroup, offsets, st.offset === "batch" ? entry : step, 1);
    const [x, y] = st.groups(count);
    pass.dispatchWorkgroups(x, y);
    if (!shared) pass.end();
  }
}
