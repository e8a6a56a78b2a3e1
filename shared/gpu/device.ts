/**
 * WebGPU setup both trainers share: adapter, device, error reporting, kernel
 * loading and a few buffer helpers.
 *
 * Every GPU object gets a label, so that wgpu's validation messages name the
 * object involved. Uncaptured errors and device loss end the program with a
 * one-line message (or go to `onError` where a caller such as a test wants
 * them).
 *
 * @module
 */

import { UserError } from "../io/errors.ts";

/** An open WebGPU device and what we know of its adapter. */
export interface Gpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Whether the device has `timestamp-query` enabled. */
  timestamps: boolean;
  /** Whether the adapter is a CPU implementation (llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

/** Options of `openGpu`. */
export interface OpenGpuOptions {
  /** Limits to raise, each capped at what the adapter offers. */
  limits?: Partial<Record<string, number>>;
  /** Ask for `timestamp-query` when the adapter has it. */
  timestamps?: boolean;
  /**
   * Called with a one-line message on an uncaptured GPU error or device loss.
   * Default: print `error: …` on stderr and exit with code 1.
   */
  onError?: (message: string) => void;
}

function exitOnError(message: string): void {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/** Requests the adapter and device. Throws `UserError` when WebGPU is missing. */
export async function openGpu(opts: OpenGpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new UserError(
      "WebGPU is not available in this Deno (navigator.gpu is missing); use Deno 2.x (npx -y deno@2.9.6)",
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new UserError(
      "no WebGPU adapter found: install or check your GPU driver (Vulkan, Metal or D3D12); " +
        "on Linux without a GPU install Mesa's software drivers " +
        "(apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1, as .ci/run does)",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const [name, want] of Object.entries(opts.limits ?? {})) {
    const have = (adapter.limits as unknown as Record<string, number>)[name];
    if (want !== undefined && typeof have === "number") requiredLimits[name] = Math.min(want, have);
  }
  const timestamps = (opts.timestamps ?? false) && adapter.features.has("timestamp-query");
  const device = await adapter.requestDevice({
    label: "mnist device",
    requiredLimits,
    requiredFeatures: timestamps ? ["timestamp-query"] : [],
  });
  const onError = opts.onError ?? exitOnError;
  device.addEventListener("uncapturederror", (ev) => {
    const e = (ev as GPUUncapturedErrorEvent).error;
    const kind = e instanceof GPUOutOfMemoryError ? "GPU out of memory" : "GPU error";
    onError(`${kind}: ${e.message.replace(/\s+/g, " ").trim()}`);
  });
  device.lost.then((info) => {
    if (info.reason !== "destroyed") {
      onError(`GPU device lost (${info.reason}): ${info.message || "no details"}`);
    }
  });
  const info = adapter.info;
  const description = adapterDescription(info);
  return { adapter, device, description, timestamps, software: isSoftwareAdapter(info) };
}

/** What `info` calls the adapter: its description, else vendor, architecture and device. */
function adapterDescription(info: GPUAdapterInfo): string {
  return info.description || [info.vendor, info.architecture, info.device]
    .filter(Boolean).join(" ") ||
    "unknown adapter";
}

/** Whether the adapter `info` describes runs on the CPU (llvmpipe, lavapipe, SwiftShader, WARP). */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  return info.isFallbackAdapter ||
    /llvmpipe|lavapipe|swiftshader|warp/i.test(adapterDescription(info));
}

/** A buffer holding `data`, with `usage` (COPY_DST is added). */
export function bufferFrom(
  device: GPUDevice,
  label: string,
  data: ArrayBufferView<ArrayBuffer>,
  usage: GPUBufferUsageFlags,
): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buf = device.createBuffer({ label, size, usage: usage | GPUBufferUsage.COPY_DST });
  if (data.byteLength % 4 === 0) {
    device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  } else {
    const padded = new Uint8Array(size);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    device.queue.writeBuffer(buf, 0, padded);
  }
  return buf;
}

/**
 * Copies `size` bytes of `src` (which needs COPY_SRC) into a fresh mappable
 * buffer, waits for the GPU, and returns the bytes. One readback: on
 * llvmpipe each such wait costs about 11 ms however little was submitted.
 */
export async function readBuffer(
  device: GPUDevice,
  src: GPUBuffer,
  size = src.size,
  offset = 0,
): Promise<ArrayBuffer> {
  const staging = device.createBuffer({
    label: `${src.label} readback`,
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder({ label: `${src.label} readback encoder` });
  enc.copyBufferToBuffer(src, offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  const out = await readMapped(staging);
  staging.destroy();
  return out;
}

/**
 * The bytes of a mappable buffer (MAP_READ) once the GPU has written them:
 * map, copy out, unmap, so the buffer can be written again (a staging
 * buffer kept for repeated readbacks, or the fresh one of `readBuffer`).
 */
export async function readMapped(staging: GPUBuffer): Promise<ArrayBuffer> {
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  return out;
}

/**
 * Workgroups `[x, y]` for `threads` invocations, `perGroup` per workgroup:
 * x up to `maxPerDimension` (the device's `maxComputeWorkgroupsPerDimension`,
 * at least 65,535), the rest in y. A kernel rebuilds its index as
 * `(group.y · groups.x + group.x) · perGroup + local`.
 */
export function workgroupGrid(
  threads: number,
  perGroup: number,
  maxPerDimension = 65535,
): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / perGroup));
  const x = Math.min(groups, maxPerDimension);
  return [x, Math.ceil(groups / x)];
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes. A GPU error
 * raised by what `fn` does becomes a one-line `UserError` that says what was
 * being done (`what`, e.g. "creating the fast trainer's buffers"): wgpu's own
 * messages do not always name the object involved. Out of memory adds a hint.
 */
export async function gpuChecked<T>(
  device: GPUDevice,
  what: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let result: T | undefined, thrown: unknown, failed = false;
  try {
    result = await fn();
  } catch (err) {
    thrown = err;
    failed = true;
  }
  // Pop both scopes whatever happened, so they never leak to later work.
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (oom) {
    throw new UserError(
      `GPU out of memory while ${what}: ${
        oneLine(oom.message)
      }; try a smaller --batch-size or --train-limit`,
    );
  }
  if (validation) throw new UserError(`GPU error while ${what}: ${oneLine(validation.message)}`);
  if (failed) throw thrown;
  return result as T;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}
