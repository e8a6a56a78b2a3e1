/**
 * Blank-pixel skipping of the fast MLP engine's layer 1, whose input is the
 * images: most of an MNIST image is background (all-zero pixels), and a term
 * `x · w` with x = 0 adds an exact zero. The texture variants of layer 1 can
 * leave those terms out and get the same sums bit for bit:
 *
 * - the weight gradient ∂W1 = xᵀ·∂z1 (`weightGradTexture.wgsl`,
 *   `SKIP_ZERO_ROWS`): per block of pixels, only the batch rows with a
 *   nonzero pixel there, listed just before by `nonzeroRows.wgsl`;
 * - the forward pass a1 = relu(x·W1 + b1) (`matmulBiasReluTexture.wgsl`,
 *   `SKIP_ZERO_GROUPS`): per block of rows, only the groups of 16 pixels not
 *   zero in all of them, listed just before by `nonzeroGroups.wgsl`. Rows are
 *   independent there, so each batch's rows are taken in an order by where
 *   their digit's ink is (`inkKeys`, `rowOrderByInk`): then the rows of a
 *   block share more blank groups.
 *
 * This file holds the ink keys and row orders, the list and row-order
 * buffers, the list kernels' sources, bind groups and dispatches; the engine
 * (fast/mlp/engine.ts) wires them in. Which variants skip is matmul.ts's
 * `skipsZeroRows` / `skipsZeroGroups`. WebGPU and plain TypeScript only.
 *
 * @module
 */

import { kernelSource, specialize } from "../../../shared/kernels/sources.ts";
import type { Allocator, MlpSetup } from "../buffers.ts";
import type { Dataset } from "../../../shared/data/dataset.ts";
import {
  type KernelOptions,
  type MatmulShape,
  type MatmulVariant,
  skipsZeroGroups,
  skipsZeroRows,
  tileWidth,
  VARIANTS,
} from "./matmul.ts";

// ---------------------------------------------------------------------------
// Row orders by ink

/**
 * Where each image's ink is, as a sort key: G × (its first group of 16
 * pixels with a nonzero pixel) + its last one, G the groups in an image
 * (0 for a blank image).
 */
export function inkKeys(images: Uint8Array, count: number, pixels: number): Uint32Array {
  const keys = new Uint32Array(count);
  const groups = Math.ceil(pixels / 16);
  for (let r = 0; r < count; r++) {
    const row = images.subarray(r * pixels, (r + 1) * pixels);
    let first = -1, last = -1;
    for (let g = 0; g < groups; g++) {
      if (row.subarray(16 * g, 16 * g + 16).some((x) => x !== 0)) {
        if (first < 0) first = g;
        last = g;
      }
    }
    keys[r] = first < 0 ? 0 : groups * first + last;
  }
  return keys;
}

/**
 * For each range `[start, count]` of positions, the positions' order by the
 * ink key of the image there (`keyAt(position)`; ties keep their order), as
 * offsets from `start`: `out[start + i]` is the i-th position of the range.
 */
export function rowOrderByInk(
  ranges: [number, number][],
  total: number,
  keyAt: (position: number) => number,
): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(total);
  for (const [start, count] of ranges) {
    // key · count + offset: one number per position, sorted numerically (a typed
    // array's sort), gives the order by key with ties by offset.
    const sorted = new Float64Array(count);
    for (let i = 0; i < count; i++) sorted[i] = keyAt(start + i) * count + i;
    sorted.sort();
    for (let i = 0; i < count; i++) out[start + i] = sorted[i] % count;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The lists and the row order on the GPU

/** How the engine skips blank pixels (the engine options `skipZeros`, `imageTiles`, `sortRows`). */
export interface BlankPixelOptions {
  skipZeros?: boolean;
  imageTiles?: boolean;
  sortRows?: boolean;
}

/** The blank-pixel buffers and settings of an engine. */
export interface BlankPixels {
  /** What the texture kernels are compiled with (`KernelOptions.zeroLists`); unset: no skipping. */
  zeroLists: KernelOptions["zeroLists"];
  /** Whether the layer-1 forward kernel takes each batch's rows by ink. */
  sortRows: boolean;
  /** Ink keys of the training images (empty without `sortRows`), for `writeTrainRowOrder`. */
  trainKeys: Uint32Array;
  /**
   * Layer 1's row orders: [nTrain + nTest (+1)] u32, each batch's then each
   * test chunk's offsets (`rowOrderByInk`); `Step.rowOrder` says where an entry's start.
   */
  rowOrder: GPUBuffer;
  /** nonzeroRows.wgsl's lists: [⌈n0 / 4⌉][1 + maxRows], a count then rows, per block of pixels. */
  rowLists: GPUBuffer;
  /**
   * nonzeroGroups.wgsl's lists, per block of R rows (a texture variant's
   * block rows): a count, up to n0 / 16 groups, the block's R rows; sized for
   * the largest R × blocks of any texture variant.
   */
  groupLists: GPUBuffer;
}

/** Makes the lists and the row order, and writes the row orders of batch 0's epoch order. */
export function createBlankPixels(
  alloc: Allocator,
  setup: MlpSetup,
  data: Dataset,
  opts: BlankPixelOptions,
): BlankPixels {
  const S = GPUBufferUsage.STORAGE;
  const { batches, evalChunks, maxRows, nTrain, nTest } = setup;
  const n0 = setup.sizes[0];
  const skip = opts.skipZeros !== false;
  const zeroLists = skip
    ? { maxRows, imageWidth: opts.imageTiles === false ? undefined : data.width }
    : undefined;
  // Each batch's positions by where their digit's ink is, then each test chunk's.
  // With --shuffle the training part is rewritten for each epoch's order.
  const sortRows = skip && opts.sortRows !== false;
  const trainKeys = sortRows ? inkKeys(data.trainImages, nTrain, n0) : new Uint32Array(0);
  const rowOrder = alloc.buffer(
    `layer-1 row order [${nTrain} + ${nTest}]`,
    (nTrain + nTest + 1) * 4,
    S | GPUBufferUsage.COPY_DST,
  );
  if (sortRows) {
    const testKeys = inkKeys(data.testImages, nTest, n0);
    const queue = alloc.device.queue;
    queue.writeBuffer(rowOrder, 0, rowOrderByInk(batches, nTrain, (p) => trainKeys[p]));
    queue.writeBuffer(rowOrder, nTrain * 4, rowOrderByInk(evalChunks, nTest, (p) => testKeys[p]));
  }
  const rowLists = alloc.buffer(
    `layer-1 rows with nonzero pixels [${Math.ceil(n0 / 4)}][1 + ${maxRows}]`,
    Math.ceil(n0 / 4) * (maxRows + 1) * 4,
    S,
  );
  const groupListWords = Math.max(
    ...VARIANTS.filter((v) => v.family === "texture").map((v) =>
      Math.ceil(maxRows / v.block[0]) * (1 + Math.floor(n0 / 16) + v.block[0])
    ),
  );
  const groupLists = alloc.buffer(
    `layer-1 groups of 16 pixels not all zero, rows [${groupListWords}]`,
    groupListWords * 4,
    S,
  );
  return { zeroLists, sortRows, trainKeys, rowOrder, rowLists, groupLists };
}

/** With `sortRows`: rewrites the training part of the row order for the epoch order `permutation`. */
export function writeTrainRowOrder(
  device: GPUDevice,
  blank: BlankPixels,
  batches: [number, number][],
  permutation: Uint32Array,
): void {
  if (!blank.sortRows) return;
  const rows = rowOrderByInk(batches, permutation.length, (p) => blank.trainKeys[permutation[p]]);
  device.queue.writeBuffer(blank.rowOrder, 0, rows);
}

// ---------------------------------------------------------------------------
// The list kernels: which, compiled how, bound to what, dispatched how

/**
 * The list kernel `v` needs before it in a slot of `shape`, as a pipeline
 * key: `nonzeroRows <block rows>` (weight gradient), `nonzeroGroups <block
 * rows>` (forward), or undefined.
 */
export function listKernel(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions,
): string | undefined {
  return skipsZeroRows(shape, v, opts)
    ? `nonzeroRows ${v.block[0]}`
    : skipsZeroGroups(shape, v, opts)
    ? `nonzeroGroups ${v.block[0]}`
    : undefined;
}

/** The WGSL of `listKernel(shape, v, opts)` (which must be set), specialised. */
export function listKernelSource(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions,
  maxRows: number,
): string {
  if (skipsZeroRows(shape, v, opts)) {
    return specialize(kernelSource("nonzeroRows"), {
      K: shape.k,
      BLOCK: v.block[0],
      MAX_ROWS: maxRows,
      IMAGE_WIDTH: tileWidth(shape, v, opts),
    });
  }
  return specialize(kernelSource("nonzeroGroups"), { K: shape.k, ROWS: v.block[0] });
}

/** The list kernels' bind groups. */
export interface ListBindGroups {
  nonzeroRows: GPUBindGroup;
  nonzeroGroups: GPUBindGroup;
  nonzeroGroupsTest: GPUBindGroup;
}

/**
 * The bind groups of the list kernels, made with `group` (fast/mlp/bind_groups.ts:
 * by the names the kernels declare): the images (training or test), the lists,
 * and nonzeroGroups' row order.
 */
export function listBindGroups(
  group: (
    label: string,
    kind: "nonzeroRows" | "nonzeroGroups",
    resources: Record<string, GPUBuffer | GPUBufferBinding>,
  ) => GPUBindGroup,
  step: GPUBufferBinding,
  trainX: GPUBuffer,
  testX: GPUBuffer,
  blank: BlankPixels,
): ListBindGroups {
  const { rowLists, groupLists, rowOrder } = blank;
  const groups = (label: string, x: GPUBuffer) =>
    group(label, "nonzeroGroups", { step, x, list: groupLists, order: rowOrder });
  return {
    nonzeroRows: group("nonzeroRows bind group", "nonzeroRows", {
      step,
      x: trainX,
      list: rowLists,
    }),
    nonzeroGroups: groups("nonzeroGroups bind group", trainX),
    nonzeroGroupsTest: groups("nonzeroGroups test bind group", testX),
  };
}

/** A list kernel's dispatch, for fast/mlp/encode.ts's `dispatch`. */
export interface ListDispatch {
  kernel: "nonzeroRows" | "nonzeroGroups";
  group: GPUBindGroup;
  /** Workgroups: 8 blocks (of pixels or of rows) per workgroup. */
  size: [number, number];
}

/**
 * The dispatch of the list kernel that `v` in a slot of `shape` needs on
 * `rows` rows (`test`: of the test images), or undefined: rows per block of
 * pixels (weight gradient), groups of 16 pixels per block of rows (forward).
 */
export function listDispatch(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions,
  groups: ListBindGroups,
  rows: number,
  test: boolean,
): ListDispatch | undefined {
  if (!listKernel(shape, v, opts)) return undefined;
  const [kernel, group, blocks] = skipsZeroRows(shape, v, opts)
    ? ["nonzeroRows" as const, groups.nonzeroRows, Math.ceil(shape.k / v.block[0])]
    : [
      "nonzeroGroups" as const,
      test ? groups.nonzeroGroupsTest : groups.nonzeroGroups,
      Math.ceil(rows / v.block[0]),
    ];
  return { kernel, group, size: [Math.ceil(blocks / 8), 1] };
}
