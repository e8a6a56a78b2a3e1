/**
 * The two helpers every list of the CNN's stages is written with
 * (fast/cnn/step.ts, textures.ts, textures_conv1.ts): a per-batch stage, and a
 * layer's `[K + 1, N]` block of the parameters or the gradients as a binding.
 *
 * Not here: the stages themselves, recording (fast/kit.ts).
 *
 * @module
 */

import type { Resource, StageSpec } from "../kit.ts";
import type { CnnNet } from "./step.ts";

/**
 * A per-batch stage named "`layer` `kernel`": its `Batch` uniform the batch's
 * entry, `bindings` by the names the kernel declares.
 */
export function stage(
  layer: string,
  kernel: string,
  constants: Record<string, number>,
  bindings: Record<string, Resource>,
  threads: (count: number) => number,
  flops: (count: number) => number = () => 0,
): StageSpec {
  const name = `${layer} ${kernel}`;
  return { name, kernel, constants, uniform: "batch", bindings, threads, flops };
}

/** Layer l's `[K + 1, N]` block of `buffer` (the parameters or the gradients). */
export function block(net: CnnNet, buffer: GPUBuffer, l: number): GPUBufferBinding {
  const { kPad, n, offset } = net.layers[l];
  return { buffer, offset: offset * 4, size: (kPad + 1) * n * 4 };
}
