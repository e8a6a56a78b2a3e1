/**
 * Bindings by name, for the stage kit (fast/kit.ts): what a kernel declares
 * (`@group(0) @binding(N) var<…> NAME : T;`, read from its WGSL), the bind
 * group layouts that serve one kernel or several (the union of their
 * declarations), and bind group entries made from `{ NAME: resource }`
 * records, checked against the kernels: a name the kernel does not declare,
 * or a declared binding left unbound, is an error naming the kernel and the
 * binding. Binding numbers live only in the WGSL.
 *
 * Not here: pipelines, stages, dispatches (fast/kit.ts); which buffer a
 * model binds to which name (fast/cnn/step.ts, fast/mlp/bind_groups.ts).
 * WebGPU and plain TypeScript only.
 *
 * @module
 */

import type { Optimizer } from "../shared/model/optim.ts";

// ---------------------------------------------------------------------------
// Bindings and layouts

/**
 * What a binding is: a uniform entry chosen by a dynamic offset (the
 * per-batch entry, the optimiser step's entry); a plain uniform buffer;
 * read-only storage; writable storage; a float texture; a write-only
 * `rgba32float` storage texture.
 */
export type BindingKind = "dynamic" | "uniform" | "read" | "write" | "texture" | "storageTexture";

/** Bytes between the entries of a uniform table bound with a dynamic offset (WebGPU's alignment). */
export const UNIFORM_STRIDE = 256;

/** A bind group layout and the pipeline layout of just it. */
export interface Layout {
  bindGroup: GPUBindGroupLayout;
  pipeline: GPUPipelineLayout;
}

/** The layout entry of binding `binding` of kind `kind`, for compute. */
function layoutEntry(kind: BindingKind, binding: number): GPUBindGroupLayoutEntry {
  const visibility = GPUShaderStage.COMPUTE;
  if (kind === "texture") {
    return { binding, visibility, texture: { sampleType: "unfilterable-float" } };
  }
  if (kind === "storageTexture") {
    return {
      binding,
      visibility,
      storageTexture: { access: "write-only", format: "rgba32float" },
    };
  }
  if (kind === "dynamic" || kind === "uniform") {
    return {
      binding,
      visibility,
      buffer: { type: "uniform", hasDynamicOffset: kind === "dynamic" },
    };
  }
  return {
    binding,
    visibility,
    buffer: { type: kind === "read" ? "read-only-storage" : "storage" },
  };
}

/**
 * What each binding of a layout is: binding i is `kinds[i]`; a hole (a
 * binding number no kernel of the layout declares) has no entry.
 */
export type Signature = readonly (BindingKind | undefined)[];

/** The key of `kinds`, e.g. "dynamic,read,_,write" (`_`: a hole). */
export function signatureKey(kinds: Signature): string {
  return Array.from(kinds, (k) => k ?? "_").join(",");
}

/** The layout of bindings `kinds` (binding i is `kinds[i]`), for compute. */
export function createLayout(device: GPUDevice, kinds: Signature): Layout {
  const signature = signatureKey(kinds);
  const entries: GPUBindGroupLayoutEntry[] = [];
  Array.from(kinds).forEach((k, binding) => k && entries.push(layoutEntry(k, binding)));
  const bindGroup = device.createBindGroupLayout({
    label: `bind group layout (${signature})`,
    entries,
  });
  const pipeline = device.createPipelineLayout({
    label: `pipeline layout (${signature})`,
    bindGroupLayouts: [bindGroup],
  });
  return { bindGroup, pipeline };
}

// ---------------------------------------------------------------------------
// Bindings by name

/** One binding a kernel declares: `@group(0) @binding(N) var<…> NAME : T;`. */
export interface Declaration {
  binding: number;
  name: string;
  kind: BindingKind;
}

/** A kernel and the bindings it declares (`declaredBindings`). */
export interface KernelBindings {
  kernel: string;
  bindings: readonly Declaration[];
}

/**
 * Uniform structs bound at a dynamic offset into a table of entries: the
 * per-batch entry (common/batch.wgsl) and the optimiser step's
 * (optim/optimizerStep.wgsl). Any other uniform is a plain one.
 */
const DYNAMIC_UNIFORMS = new Set(["Batch", "OptimizerStep"]);

/** `@group(0) @binding(N) var<SPACE> NAME : TYPE;` (SPACE absent for a texture or storage texture). */
const DECLARATION = /@group\(0\)\s*@binding\((\d+)\)\s*var(?:<([^>]*)>)?\s+(\w+)\s*:\s*([^;]+);/g;

/** The kind of a binding declared in address space `space` (absent: a handle) with type `type`. */
function declaredKind(space: string | undefined, type: string): BindingKind | undefined {
  const s = space?.replace(/\s+/g, "");
  if (s === undefined) {
    if (/^texture_2d\s*<\s*f32\s*>$/.test(type)) return "texture";
    if (/^texture_storage_2d\s*<\s*rgba32float\s*,\s*write\s*>$/.test(type)) {
      return "storageTexture";
    }
    return undefined;
  }
  if (s === "uniform") return DYNAMIC_UNIFORMS.has(type) ? "dynamic" : "uniform";
  if (s === "storage" || s === "storage,read") return "read";
  if (s === "storage,read_write") return "write";
  return undefined;
}

/**
 * The bindings WGSL `source` of kernel `kernel` declares (comments left
 * out), by binding number. Throws, naming the kernel and the binding, for a
 * binding number declared twice or a binding the kit cannot bind.
 */
export function declaredBindings(kernel: string, source: string): KernelBindings {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const bindings: Declaration[] = [];
  for (const [, n, space, name, type] of code.matchAll(DECLARATION)) {
    const binding = Number(n), kind = declaredKind(space, type.trim());
    if (!kind) {
      throw new Error(`kernel ${kernel}: binding ${binding} (${name}): cannot bind ${type}`);
    }
    const twice = bindings.find((d) => d.binding === binding);
    if (twice) {
      throw new Error(
        `kernel ${kernel}: binding ${binding} declared twice (${twice.name}, ${name})`,
      );
    }
    bindings.push({ binding, name, kind });
  }
  return { kernel, bindings: bindings.sort((a, b) => a.binding - b.binding) };
}

/**
 * The signature of a layout that serves every kernel of `kernels` (their
 * declarations' union); throws when two of them declare the same binding
 * number as different kinds.
 */
export function signatureOf(kernels: readonly KernelBindings[]): Signature {
  const kinds: (BindingKind | undefined)[] = [];
  const by: string[] = [];
  for (const { kernel, bindings } of kernels) {
    for (const { binding, name, kind } of bindings) {
      const had = kinds[binding];
      if (had && had !== kind) {
        throw new Error(
          `binding ${binding} is ${had} in kernel ${
            by[binding]
          } but ${kind} (${name}) in ${kernel}`,
        );
      }
      kinds[binding] = kind;
      by[binding] ??= kernel;
    }
  }
  return Array.from(kinds);
}

/** What the host binds to a name: a whole buffer, a range of one, or a texture (a view of it). */
export type Resource = GPUBuffer | GPUBufferBinding | GPUTexture;

/**
 * The bind group entries that bind `resources` (`{ NAME: resource }`) to the
 * bindings `kernels` declare by those names: the entries of one bind group
 * that serves all of them (a layout of `signatureOf(kernels)`). Throws,
 * naming the kernel and the binding, when `resources` names a binding no
 * kernel declares, leaves a declared binding unbound, gives one binding
 * number two resources (two kernels' names for it), gives a texture where
 * the kernel declares a buffer or the other way round, or gives a
 * dynamic-offset uniform (`Batch`, `OptimizerStep`) a whole buffer instead
 * of one entry's range: host and kernels cannot drift apart.
 */
export function bindByName(
  what: string,
  kernels: readonly KernelBindings[],
  resources: Readonly<Record<string, Resource>>,
): GPUBindGroupEntry[] {
  const names = kernels.map((k) => k.kernel).join(", ");
  const declared = new Set(kernels.flatMap((k) => k.bindings.map((d) => d.name)));
  for (const name of Object.keys(resources)) {
    if (!declared.has(name)) {
      throw new Error(
        `${what}: kernel ${names} declares no binding ${name} (it declares ${
          [...declared].join(", ")
        })`,
      );
    }
  }
  const chosen = new Map<number, { name: string; resource: Resource }>();
  for (const { kernel, bindings } of kernels) {
    for (const { binding, name, kind } of bindings) {
      const resource = resources[name];
      if (resource === undefined) {
        throw new Error(`${what}: kernel ${kernel} binding ${binding} (${name}) is not bound`);
      }
      const had = chosen.get(binding);
      if (had && had.resource !== resource) {
        throw new Error(`${what}: binding ${binding} is bound twice (${had.name}, ${name})`);
      }
      const texture = kind === "texture" || kind === "storageTexture";
      if (texture !== resource instanceof GPUTexture) {
        throw new Error(
          `${what}: kernel ${kernel} binding ${binding} (${name}) needs a ${
            texture ? "texture" : "buffer"
          }`,
        );
      }
      if (kind === "dynamic" && (resource instanceof GPUBuffer || !("size" in resource))) {
        throw new Error(
          `${what}: kernel ${kernel} binding ${binding} (${name}) needs one entry's range`,
        );
      }
      chosen.set(binding, { name, resource });
    }
  }
  return [...chosen].sort(([a], [b]) => a - b).map(([binding, { resource: r }]) => ({
    binding,
    resource: r instanceof GPUTexture
      ? r.createView({ label: `${r.label} view` })
      : r instanceof GPUBuffer
      ? { buffer: r }
      : r,
  }));
}

/** A bind group for `layout` binding `resources` by the names `kernels` declare (`bindByName`). */
export function bindGroupByName(
  device: GPUDevice,
  label: string,
  layout: GPUBindGroupLayout,
  kernels: readonly KernelBindings[],
  resources: Readonly<Record<string, Resource>>,
): GPUBindGroup {
  return device.createBindGroup({ label, layout, entries: bindByName(label, kernels, resources) });
}

/**
 * The optimiser kernel's bindings (shared/kernels/optim/) by name: θ
 * (`param`), ∂θ (`grad`), then one buffer per part of `optimizer.state`,
 * under that part's name (momentum's `velocity`; Adam's `m`, `v`).
 */
export function optimizerBindings(
  optimizer: Optimizer,
  param: GPUBuffer,
  grad: GPUBuffer,
  state: readonly GPUBuffer[],
): Record<string, GPUBuffer> {
  if (state.length !== optimizer.state.length) {
    throw new Error(
      `${optimizer.kernel}: ${state.length} state buffers for ${optimizer.state.length} parts`,
    );
  }
  return Object.fromEntries([
    ["param", param],
    ["grad", grad],
    ...optimizer.state.map((part, i) => [part.name, state[i]]),
  ]);
}
