/**
 * Whether a device can hold an MLP: each buffer the fast engine binds must
 * fit the device's `maxStorageBufferBindingSize` (and `maxBufferSize`), so a
 * layer too wide for them is one line naming the limit, the buffer and what
 * to do, before anything is allocated. (The textures and the uniform copy
 * some variants read are only made, and those variants only chosen, where
 * they fit: fast/mlp/activations.ts, matmul.ts.) Plain TypeScript.
 *
 * @module
 */

import { UserError } from "../../shared/io/errors.ts";
import type { MlpSetup } from "./buffers.ts";

/** Throws a one-line `UserError` when a buffer of `setup` exceeds the device's `limits`. */
export function checkDeviceLimits(limits: GPUSupportedLimits, setup: MlpSetup): void {
  const { sizes, maxRows, nTrain } = setup;
  const L = sizes.length - 1;
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const name = limits.maxStorageBufferBindingSize <= limits.maxBufferSize
    ? "maxStorageBufferBindingSize"
    : "maxBufferSize";
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const check = (what: string, bytes: number, fix: string) => {
    if (bytes > limit) {
      throw new UserError(
        `${what} takes ${mib(bytes)}, more than this device's ${name} (${mib(limit)}): ${fix}`,
      );
    }
  };
  for (let i = 1; i <= L; i++) {
    check(
      `layer ${i}'s weights W${i} [${sizes[i - 1]}, ${sizes[i]}]`,
      sizes[i - 1] * sizes[i] * 4,
      "give smaller --hidden sizes",
    );
    check(
      `layer ${i}'s activations [${maxRows}, ${sizes[i]}]`,
      maxRows * sizes[i] * 4,
      "give a smaller --hidden size there or a smaller --batch-size",
    );
  }
  check(`the training images [${nTrain}, ${sizes[0]}]`, nTrain * sizes[0], "use --train-limit");
}
