/**
 * The matmul catalogue of the fast MLP engine: the slots of a training step
 * that use a big matmul and their shapes, the variants that can compute
 * them, how to compile a variant for a shape (kernel file and constants) and
 * how to dispatch it. Which variant a slot gets is the tuner's choice
 * (fast/mlp/variants/tuner.ts) or `defaultVariant`; the engine (fast/mlp/engine.ts)
 * compiles and dispatches what it is given.
 *
 * Three fused operations use a big matmul each (see `shared/kernels/`):
 *
 * - `forward`: `out = relu(A·W + b)` with `A: [rows, K]`, `W: [K, N]`
 *   (`matmulBiasRelu*.wgsl`);
 * - `inputGrad`: `dZ = (G·Wᵀ) ⊙ (act > 0)` with `G: [rows, K]`, `W: [N, K]`
 *   (`inputGradReluMask*.wgsl`);
 * - `weightGrad`: `W -= lr·Aᵀ·G`, `b -= lr·Σ G` with `W: [K, N]`
 *   (`weightGrad*.wgsl`); with `updateInPlace: false` the kernel stores
 *   the gradients `Aᵀ·G` and `Σ G` instead, for a separate optimiser step.
 *
 * Each comes in four families: `registers` (register-blocked, operands from
 * storage buffers), `tiled` (16 × 16 workgroup-memory tiles, one output per
 * invocation), `blocked` (for discrete GPUs: tiles of up to 64 × 64 outputs
 * per workgroup, a 4 × 4 block per invocation, operands staged through
 * workgroup memory and read as vec4) and `texture` (register-blocked,
 * operands fetched from rgba32float textures, which wins on CPU adapters such
 * as llvmpipe). On CPU adapters the tuner times only the texture family
 * (`tuneCandidates`). A kernel file declares what the host sets (K, N, block
 * sizes, A_BYTES) as `const NAME = SET_BY_HOST;` lines that `specialize`
 * sets before compiling (`kernelConstants`), failing on one left unset.
 *
 * @module
 */

import { kernelSource, specialize, unrollLoops } from "../../../shared/kernels/sources.ts";
import { LAYER_SIZES } from "../../../shared/model/mlp.ts";

/**
 * A tunable matmul slot of a training step, by layer i (1-based): the forward
 * line of hidden layer i, its input gradient (i ≥ 2: layer 1's input is the
 * images), its weight gradient. The output layer's kernels are not slots.
 */
export type Slot = `forward${number}` | `inputGrad${number}` | `weightGrad${number}`;

/**
 * The slots of an MLP with layer sizes `sizes` = [n0, n1, …, nL], in step
 * order: forward1 … forward(L−1), then from layer L − 1 down to 1 its input
 * gradient (not layer 1's) and its weight gradient.
 */
export function slotsOf(sizes: readonly number[]): Slot[] {
  const L = sizes.length - 1;
  const slots: Slot[] = [];
  for (let i = 1; i < L; i++) slots.push(`forward${i}`);
  for (let i = L - 1; i >= 1; i--) {
    if (i >= 2) slots.push(`inputGrad${i}`);
    slots.push(`weightGrad${i}`);
  }
  return slots;
}

/** The slots of the default MLP (784 → 512 → 128 → 10), in step order. */
export const SLOTS: readonly Slot[] = slotsOf(LAYER_SIZES);

/** The variant chosen for each tunable slot. */
export type Plan = Record<Slot, MatmulVariant>;

/** A fused operation that contains a big matmul. */
export type MatmulOp = "forward" | "inputGrad" | "weightGrad";

/** How a variant gets its operands. */
export type MatmulFamily = "registers" | "tiled" | "blocked" | "texture";

/** One use of a fused matmul kernel in the model. */
export interface MatmulShape {
  op: MatmulOp;
  /** Inner dimension K (see the module doc for each op's meaning). */
  k: number;
  /** Output columns N. */
  n: number;
  /** The A operand is packed image bytes (4 per u32), normalised in the kernel. */
  aBytes: boolean;
}

/**
 * The matmul shape of each tunable slot for layer sizes `sizes` = [n0, …, nL]:
 * forward_i `[rows, n(i−1)]·[n(i−1), n_i]` (image bytes for i = 1),
 * inputGrad_i `[rows, n_i]·[n(i−1), n_i]ᵀ`, weightGrad_i `[rows, n(i−1)]ᵀ·[rows, n_i]`
 * (image bytes for i = 1).
 */
export function slotShapes(sizes: readonly number[]): Record<Slot, MatmulShape> {
  const shapes = {} as Record<Slot, MatmulShape>;
  for (let i = 1; i + 1 < sizes.length; i++) {
    const [k, n, aBytes] = [sizes[i - 1], sizes[i], i === 1];
    shapes[`forward${i}`] = { op: "forward", k, n, aBytes };
    if (i >= 2) shapes[`inputGrad${i}`] = { op: "inputGrad", k: n, n: k, aBytes: false };
    shapes[`weightGrad${i}`] = { op: "weightGrad", k, n, aBytes };
  }
  return shapes;
}

/**
 * How the output layer's two stages are computed (not tuned: the layer is
 * small). `layer`: "uniform", one row per invocation with W_L read from a
 * uniform copy (`outputLayer.wgsl`: cheap on CPU adapters), or "rows", 16
 * invocations per row with W_L from storage (`outputLayerRows.wgsl`: GPUs).
 * `weightGrad`: "row", one row of W_L per invocation (`weightGradRow.wgsl`),
 * or "split", partial sums over chunks of rows then their sum in order
 * (`weightGradSplit.wgsl` + `weightGradSplitSum.wgsl`: GPUs).
 */
export interface OutputVariant {
  layer: "uniform" | "rows";
  weightGrad: "row" | "split";
}

/** Rows per workgroup of the "rows" output layer (`ROWS` of `outputLayerRows.wgsl`). */
export const OUTPUT_ROWS_PER_GROUP = 4;

/**
 * The output variant for `smallKernels` ("cpu" or "gpu"), where W_L (`wBytes`)
 * must fit a uniform buffer binding of `maxUniformBytes` for "uniform".
 */
export function outputVariant(
  smallKernels: "cpu" | "gpu",
  wBytes: number,
  maxUniformBytes: number,
): OutputVariant {
  if (smallKernels === "gpu") return { layer: "rows", weightGrad: "split" };
  return { layer: wBytes <= maxUniformBytes ? "uniform" : "rows", weightGrad: "row" };
}

/** A way to compute a fused matmul. */
export interface MatmulVariant {
  /** E.g. `texture-16x16`: family, then rows × columns of the block per invocation. */
  name: string;
  family: MatmulFamily;
  /**
   * Block per invocation: `[rows, columns]` of the output for forward and
   * inputGrad, `[rows of W, columns of W]` for weightGrad. 16 × 16 for tiled.
   * For blocked: the tile of outputs per workgroup (same axes), multiples
   * of 4, each invocation computing 4 × 4 of it.
   */
  block: [number, number];
  /**
   * Blocked only: values of k (forward, inputGrad: `KT`, a multiple of 4) or
   * rows (weightGrad: `RT`) staged in workgroup memory per step; default 16.
   */
  kt?: number;
  /**
   * Blocked forward only: rows of the output per invocation (`RM`: 4, the
   * default, or 8), so a tile of `block` has block[0] / rm × block[1] / 4
   * invocations.
   */
  rm?: number;
}

function variant(family: MatmulFamily, rows: number, cols: number): MatmulVariant {
  return { name: `${family}-${rows}x${cols}`, family, block: [rows, cols] };
}

/** Every variant, in the order the tuner tries them. */
export const VARIANTS: readonly MatmulVariant[] = [
  variant("registers", 4, 4),
  variant("registers", 8, 8),
  variant("registers", 16, 16),
  { name: "tiled-16", family: "tiled", block: [16, 16] },
  variant("blocked", 64, 64),
  variant("blocked", 32, 64),
  variant("blocked", 32, 32),
  // Smaller tiles for layer 2 (N = 128; weightGrad2: 512 × 128): more workgroups, fewer
  // invocations each (64 for 16x64, 32 for 32x16 and 16x32), than 32x64 / 32x32 give.
  variant("blocked", 16, 64),
  variant("blocked", 32, 16),
  variant("blocked", 16, 32),
  // 32x32 staging 8 values of k (rows for weightGrad) per step: half the workgroup memory.
  { ...variant("blocked", 32, 32), name: "blocked-32x32-k8", kt: 8 },
  // Forward only (layer 1): 8 × 4 outputs per invocation, half the invocations of 32x64 / 64x64.
  { ...variant("blocked", 32, 64), name: "blocked-32x64-r8", rm: 8 },
  { ...variant("blocked", 64, 64), name: "blocked-64x64-r8", rm: 8 },
  variant("texture", 8, 8),
  variant("texture", 16, 8),
  variant("texture", 16, 16),
  variant("texture", 32, 16),
];

/** The variant called `name`; throws for an unknown name. */
export function variantByName(name: string): MatmulVariant {
  const v = VARIANTS.find((v) => v.name === name);
  if (!v) throw new Error(`unknown matmul variant '${name}'`);
  return v;
}

const KERNEL_FILES: Record<MatmulOp, Record<MatmulFamily, string>> = {
  forward: {
    registers: "matmulBiasRelu",
    tiled: "matmulBiasReluTiled",
    blocked: "matmulBiasReluBlocked",
    texture: "matmulBiasReluTexture",
  },
  inputGrad: {
    registers: "inputGradReluMask",
    tiled: "inputGradReluMaskTiled",
    blocked: "inputGradReluMaskBlocked",
    texture: "inputGradReluMaskTexture",
  },
  weightGrad: {
    registers: "weightGrad",
    tiled: "weightGradTiled",
    blocked: "weightGradBlocked",
    texture: "weightGradTexture",
  },
};

/** The kernel files of every family of `op`: the kernels one bind group of a slot of `op` serves. */
export function opKernels(op: MatmulOp): string[] {
  return Object.values(KERNEL_FILES[op]);
}

/** The kernel file (in `shared/kernels/mlp/`, without `.wgsl`) of `v` for `op`. */
function kernelName(op: MatmulOp, v: MatmulVariant): string {
  return KERNEL_FILES[op][v.family];
}

/**
 * Floats per row of an operand a texture variant reads from a texture must be
 * a multiple of this: WebGPU copies a buffer into a texture in rows of a
 * multiple of 256 bytes (`bytesPerRow`).
 */
export const TEXTURE_ROW_FLOATS = 64;

/**
 * The widths (floats per row) of the operands the texture variants of
 * `shape` read from textures: forward A [rows, K] (unless image bytes) and
 * W [K, N]; inputGrad G [rows, K] and W [N, K]; weightGrad A [rows, K]
 * (unless image bytes) and G [rows, N].
 */
function textureWidths(shape: MatmulShape): number[] {
  if (shape.op === "inputGrad") return [shape.k];
  return shape.aBytes ? [shape.n] : [shape.k, shape.n];
}

/**
 * Whether `v`'s kernel computes `shape` correctly with `maxRows` rows at
 * most, on a device whose textures may be `maxTextureRows` high (activation
 * textures are `maxRows` high), its texture operands written any way.
 */
export function kernelFits(
  v: MatmulVariant,
  shape: MatmulShape,
  maxRows: number,
  maxTextureRows: number,
): boolean {
  // Blocked kernels read and write K- and N-wide rows as vec4.
  if (v.family === "blocked") {
    return shape.k % 4 === 0 && shape.n % 4 === 0 && (v.rm === undefined || shape.op === "forward");
  }
  if (v.family !== "texture") return true;
  const [b0, b1] = v.block;
  if (shape.k % 4 !== 0 || shape.n % 4 !== 0 || b1 % 4 !== 0) return false;
  // Operand textures are K / 4 or N / 4 texels wide.
  if (!textureWidths(shape).every((w) => w / 4 <= maxTextureRows)) return false;
  if (shape.op === "weightGrad" && b0 % 4 !== 0) return false;
  // The forward kernel takes 16 values of k per trip (image bytes: one vec4u).
  if (shape.op === "forward" && shape.k % 16 !== 0) return false;
  if (shape.op === "inputGrad" && shape.n > maxTextureRows) return false;
  if (shape.op === "forward" && shape.k > maxTextureRows) return false;
  return maxRows <= maxTextureRows;
}

/**
 * Whether the engine can run `v` on `shape` (see `kernelFits`): a texture
 * variant also needs its operands' rows copyable into textures by the engine
 * (`TEXTURE_ROW_FLOATS`).
 */
export function variantFits(
  v: MatmulVariant,
  shape: MatmulShape,
  maxRows: number,
  maxTextureRows: number,
): boolean {
  if (!kernelFits(v, shape, maxRows, maxTextureRows)) return false;
  return v.family !== "texture" || textureWidths(shape).every((w) => w % TEXTURE_ROW_FLOATS === 0);
}

/**
 * The variants the tuner times for `shape` on an adapter: those that fit.
 * On a CPU adapter (`software`: llvmpipe, SwiftShader; timed only with
 * `--tune`) only the texture family: a texel fetch is cheap there, workgroup
 * barriers and workgroup memory are slow, the other families never won a
 * tuning run on llvmpipe (bench/RESULTS.md), and compiling them costs most of
 * a cold start. On a GPU, every family.
 */
export function tuneCandidates(
  shape: MatmulShape,
  software: boolean,
  maxRows: number,
  maxTextureRows: number,
): MatmulVariant[] {
  return VARIANTS.filter((v) =>
    variantFits(v, shape, maxRows, maxTextureRows) && (!software || v.family === "texture")
  );
}

/** How a weight-gradient kernel is compiled. */
export interface KernelOptions {
  /**
   * `weightGrad` only: fold the SGD update in (`W −= lr·Aᵀ·G`, default), or
   * store the gradients for a separate optimiser step (`false`).
   */
  updateInPlace?: boolean;
  /**
   * Texture variants on image bytes: leave out the work on pixels that are
   * all zero, going by the lists that `nonzeroRows.wgsl` (weight gradient:
   * lists of up to `maxRows` rows) and `nonzeroGroups.wgsl` (forward) write
   * just before (see `skipsZeroRows`, `skipsZeroGroups`).
   * With `imageWidth`, the weight gradient's blocks of pixels are 4 × 4 tiles
   * of images that wide (`tileWidth`). Unset: no lists.
   */
  zeroLists?: { maxRows: number; imageWidth?: number };
}

/**
 * The image width the weight gradient of `shape` groups its pixels by, in
 * 4 × 4 tiles (`IMAGE_WIDTH` of weightGradTexture.wgsl and
 * nonzeroRows.wgsl), or 0 for runs of consecutive pixels: tiles where
 * `opts.zeroLists.imageWidth` is set and the images (K pixels) cut into
 * whole tiles. A tile of a digit is blank far more often than 16 pixels of
 * a row: in 62% of (image, tile) pairs of the sample against 42%.
 */
export function tileWidth(shape: MatmulShape, v: MatmulVariant, opts: KernelOptions): number {
  const w = opts.zeroLists?.imageWidth ?? 0;
  return skipsZeroRows(shape, v, opts) && w > 0 && w % 4 === 0 && shape.k % (4 * w) === 0 ? w : 0;
}

/**
 * Whether `v` on `shape`, given `opts`, skips the rows whose pixels in its
 * block are all zero (and so needs `nonzeroRows` run before it, with
 * `BLOCK` = its block rows): texture weight gradients of image bytes (K and
 * block rows are multiples of 4 for every texture variant that fits).
 */
export function skipsZeroRows(shape: MatmulShape, v: MatmulVariant, opts: KernelOptions): boolean {
  return opts.zeroLists !== undefined && v.family === "texture" &&
    shape.op === "weightGrad" && shape.aBytes && shape.k % 4 === 0 && v.block[0] % 4 === 0;
}

/**
 * Whether `v` on `shape`, given `opts`, skips the groups of 16 pixels that
 * are zero in every row of its block (and so needs `nonzeroGroups` run
 * before it, with `ROWS` = its block rows): texture forward kernels of
 * image bytes.
 */
export function skipsZeroGroups(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions,
): boolean {
  return opts.zeroLists !== undefined && v.family === "texture" && shape.op === "forward" &&
    shape.aBytes && shape.k % 16 === 0;
}

/** Side of the tiled family's square tiles (`T` of its kernels; see `dispatchSize`). */
const TILE = 16;
/** Blocked family: values of k (or rows) staged per step, and output rows per invocation, unless set. */
const BLOCKED_KT = 16, BLOCKED_RM = 4;

/** The `const` values a variant's kernel file is compiled with for `shape`: all it declares `SET_BY_HOST`. */
function kernelConstants(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions = {},
): Record<string, number | boolean> {
  const [b0, b1] = v.block;
  const c: Record<string, number | boolean> = { K: shape.k, N: shape.n };
  if (shape.op !== "inputGrad") c.A_BYTES = shape.aBytes;
  if (shape.op === "weightGrad") c.UPDATE_IN_PLACE = opts.updateInPlace ?? true;
  if (v.family === "tiled") c.T = TILE;
  else if (v.family === "blocked") {
    // Workgroups of WX × WY invocations, 4 × 4 (RM × 4 forward) outputs each.
    const rm = v.rm ?? BLOCKED_RM;
    Object.assign(c, { WX: b1 / 4, WY: b0 / rm });
    if (shape.op === "forward") c.RM = rm;
    c[shape.op === "weightGrad" ? "RT" : "KT"] = v.kt ?? BLOCKED_KT;
  } else if (v.family === "registers") {
    if (shape.op === "weightGrad") Object.assign(c, { RI: b0, RJ: b1 });
    else Object.assign(c, { RM: b0, RN: b1 });
  } else if (shape.op === "forward") {
    Object.assign(c, { RM: b0, NV: b1 / 4, SKIP_ZERO_GROUPS: skipsZeroGroups(shape, v, opts) });
  } else if (shape.op === "inputGrad") Object.assign(c, { RM: b0, RN: b1 });
  else {
    // Without the lists of nonzeroRows.wgsl, MAX_ROWS and IMAGE_WIDTH are unused (0).
    const skip = skipsZeroRows(shape, v, opts);
    Object.assign(c, {
      RI: b0,
      JV: b1 / 4,
      SKIP_ZERO_ROWS: skip,
      MAX_ROWS: skip ? opts.zeroLists!.maxRows : 0,
      IMAGE_WIDTH: tileWidth(shape, v, opts),
    });
  }
  return c;
}

/** The WGSL of variant `v` for `shape`, specialised, with its marked loops unrolled. */
export function variantSource(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions = {},
): string {
  return unrollLoops(
    specialize(kernelSource(kernelName(shape.op, v)), kernelConstants(shape, v, opts)),
  );
}

/** Workgroups to dispatch `[x, y]` for `rows` batch rows. */
export function dispatchSize(
  shape: MatmulShape,
  v: MatmulVariant,
  rows: number,
): [number, number] {
  const [b0, b1] = v.block;
  const ceil = (a: number, b: number) => Math.max(1, Math.ceil(a / b));
  if (v.family === "tiled") {
    return shape.op === "weightGrad"
      ? [ceil(shape.n, TILE), ceil(shape.k, TILE)]
      : [ceil(shape.n, TILE), ceil(rows, TILE)];
  }
  if (v.family === "blocked") {
    // One tile of b0 × b1 outputs (rows × n, or k × n) per workgroup.
    return shape.op === "weightGrad"
      ? [ceil(shape.n, b1), ceil(shape.k, b0)]
      : [ceil(shape.n, b1), ceil(rows, b0)];
  }
  // registers: 8 × 8 invocations per workgroup, texture: 8 × 2 (more, smaller workgroups balance
  // better over the cores of a CPU adapter), one block each
  const height = v.family === "texture" ? 2 : 8;
  if (shape.op === "weightGrad") return [ceil(shape.n, b1 * 8), ceil(shape.k, b0 * height)];
  return [ceil(shape.n, b1 * 8), ceil(rows, b0 * height)];
}

/** Multiply-adds of one dispatch of `shape` on `rows` rows. */
export function shapeMultiplyAdds(shape: MatmulShape, rows: number): number {
  return rows * shape.k * shape.n;
}

/**
 * The variant used without timing. On a CPU adapter (a texel fetch is much
 * cheaper than a storage-buffer load there): `texture-16x16`. Its epochs are
 * as fast as the tuner's picks on llvmpipe, within the noise, and it compiles
 * in a fraction of the time of `texture-32x16` (a cold first start took 43 s
 * to epoch 1 with it, 320 s with `texture-32x16` in four slots, 290 s with
 * the tuner: bench/RESULTS.md), so a CPU adapter is timed only with `--tune`.
 * On a GPU: workgroup tiles. Registers where the shape does not suit either.
 */
export function defaultVariant(
  shape: MatmulShape,
  software: boolean,
  maxRows: number,
  maxTextureRows: number,
): MatmulVariant {
  const want = software ? variantByName("texture-16x16") : variantByName("tiled-16");
  if (variantFits(want, shape, maxRows, maxTextureRows)) return want;
  return variantByName(software ? "registers-16x16" : "registers-4x4");
}
