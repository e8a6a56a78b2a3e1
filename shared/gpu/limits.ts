/**
 * Whether a device can hold an MLP: each weight matrix and each layer's
 * activations for a batch must fit one storage buffer binding of the device
 * (`maxStorageBufferBindingSize`, and `maxBufferSize`). Both trainers check
 * before they make the weights, so a layer too wide is one line naming the
 * limit, the tensor and what to do, not a failed allocation later. Plain
 * TypeScript.
 *
 * @module
 */

import { UserError } from "../io/errors.ts";

/** The limits `checkMlpLimits` reads (a `GPUSupportedLimits`). */
export type BufferLimits = Pick<
  GPUSupportedLimits,
  "maxStorageBufferBindingSize" | "maxBufferSize"
>;

/**
 * Throws a one-line `UserError` when a weight matrix of an MLP with layer
 * sizes `sizes`, or a layer's activations for `rows` rows, exceeds `limits`;
 * `context` starts the line (e.g. "setting up the fast trainer: ").
 */
export function checkMlpLimits(
  limits: BufferLimits,
  sizes: readonly number[],
  rows: number,
  context = "",
): void {
  for (let i = 1; i < sizes.length; i++) {
    checkBuffer(
      limits,
      `${context}layer ${i}'s weights W${i} [${sizes[i - 1]}, ${sizes[i]}]`,
      sizes[i - 1] * sizes[i] * 4,
      "give smaller --hidden sizes",
    );
    checkBuffer(
      limits,
      `${context}layer ${i}'s activations [${rows}, ${sizes[i]}]`,
      rows * sizes[i] * 4,
      "give a smaller --hidden size there or a smaller --batch-size",
    );
  }
}

/** Throws a one-line `UserError` when `what` (`bytes`) exceeds a buffer binding; `fix`: what to do. */
export function checkBuffer(limits: BufferLimits, what: string, bytes: number, fix: string): void {
  const { maxStorageBufferBindingSize: binding, maxBufferSize: buffer } = limits;
  const [name, limit] = binding <= buffer
    ? ["maxStorageBufferBindingSize", binding]
    : ["maxBufferSize", buffer];
  if (bytes <= limit) return;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  throw new UserError(
    `${what} takes ${mib(bytes)}, more than this device's ${name} (${mib(limit)}): ${fix}`,
  );
}
