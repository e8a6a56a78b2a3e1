import { kernelSource, specialize, unrollLoops } from "../../shared/kernels/sources.ts";
/**
 * The matmul variants of the fast trainer, how to compile them for a shape,
 * how to dispatch them, and how to choose among them (autotuning with a
 * per-adapter cache).
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
 * as llvmpipe). The tuner leaves `blocked` out on CPU adapters
 * (`tuneCandidates`). A kernel file holds
 * `const` declarations with default values (K, N, block sizes, A_BYTES) that
 * `specialize` rewrites before compiling, so each file stays plain WGSL.
 *
 * @module
 */

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

/** The kernel file (in `shared/kernels/`, without `.wgsl`) of `v` for `op`. */
export function kernelName(op: MatmulOp, v: MatmulVariant): string {
  return KERNEL_FILES[op][v.family];
}

/**
 * Whether `v` computes `shape` correctly with `maxRows` rows at most, on a
 * device whose textures may be `maxTextureRows` high (activation textures
 * are `maxRows` high).
 */
export function variantFits(
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
  if (shape.op === "weightGrad" && b0 % 4 !== 0) return false;
  // The forward kernel takes 16 values of k per trip (image bytes: one vec4u).
  if (shape.op === "forward" && shape.k % 16 !== 0) return false;
  if (shape.op === "inputGrad" && shape.n > maxTextureRows) return false;
  if (shape.op === "forward" && shape.k > maxTextureRows) return false;
  return maxRows <= maxTextureRows;
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

/** The `const` values a variant's kernel file is compiled with for `shape`. */
export function kernelConstants(
  shape: MatmulShape,
  v: MatmulVariant,
  opts: KernelOptions = {},
): Record<string, number | boolean> {
  const [b0, b1] = v.block;
  const c: Record<string, number | boolean> = { K: shape.k, N: shape.n };
  if (shape.op !== "inputGrad") c.A_BYTES = shape.aBytes;
  if (shape.op === "weightGrad") c.UPDATE_IN_PLACE = opts.updateInPlace ?? true;
  if (v.family === "blocked") {
    // Workgroups of WX × WY invocations, 4 × 4 outputs each.
    Object.assign(c, { WX: b1 / 4, WY: b0 / (v.rm ?? 4) });
    if (v.rm !== undefined) c.RM = v.rm;
    if (v.kt !== undefined) c[shape.op === "weightGrad" ? "RT" : "KT"] = v.kt;
  } else if (v.family === "registers") {
    if (shape.op === "weightGrad") Object.assign(c, { RI: b0, RJ: b1 });
    else Object.assign(c, { RM: b0, RN: b1 });
  } else if (v.family === "texture") {
    if (shape.op === "forward") {
      Object.assign(c, { RM: b0, NV: b1 / 4, SKIP_ZERO_GROUPS: skipsZeroGroups(shape, v, opts) });
    } else if (shape.op === "inputGrad") Object.assign(c, { RM: b0, RN: b1 });
    else {
      const skip = skipsZeroRows(shape, v, opts);
      Object.assign(c, { RI: b0, JV: b1 / 4, SKIP_ZERO_ROWS: skip });
      if (skip) {
        Object.assign(c, {
          MAX_ROWS: opts.zeroLists!.maxRows,
          IMAGE_WIDTH: tileWidth(shape, v, opts),
        });
      }
    }
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
      ? [ceil(shape.n, 16), ceil(shape.k, 16)]
      : [ceil(shape.n, 16), ceil(rows, 16)];
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

/**
 * Version of the kernels for the tuning cache: raise it when a kernel's speed
 * changes, so that choices timed on the old kernels are not reused (version
 * 2: 16 values of k per trip and unrolled loops in the texture kernels;
 * 3: the texture weight gradient of image bytes skips all-zero rows; 4: the
 * texture forward kernel of image bytes skips all-zero groups of pixels; 5:
 * texture forward and input-gradient kernels in workgroups of 8 × 2; 6: the
 * layer-1 weight gradient takes its pixels in 4 × 4 tiles of the image; 7:
 * the layer-1 forward kernel takes its rows from the lists, ordered by ink;
 * 8: the blocked family, new candidates on GPUs; 9: more blocked candidates,
 * the forward one with 8 rows per invocation).
 */
export const KERNELS_VERSION = 9;

/** A string naming `shape` at `rows` rows, for the tuning cache. */
export function shapeKey(shape: MatmulShape, rows: number): string {
  const bytes = shape.aBytes ? " bytes" : "";
  return `${shape.op} K${shape.k} N${shape.n} rows${rows}${bytes} v${KERNELS_VERSION}`;
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Timings the tuner took, in milliseconds per dispatch (readback overhead subtracted). */
export interface TuneResult {
  best: MatmulVariant;
  /** Least ms per dispatch at full rows, for the finalists. */
  ms: Record<string, number>;
  /** Least ms of one dispatch at screening rows, for every candidate. */
  screenMs: Record<string, number>;
  /** ms of a submit with no dispatch and the readback, subtracted from the others. */
  overheadMs: number;
}

/**
 * Picks the fastest of `candidates`. `time(v, rows, reps)` runs `reps`
 * dispatches of `v` on `rows` rows in one submit and returns the
 * milliseconds it took, readback included (`reps` 0: the overhead alone,
 * subtracted from every timing). Every candidate is first screened with one
 * dispatch on `screenRows` rows; those within 1.5× of the best screen go on to
 * `repeats` timings on `rows` rows (each of as many dispatches in one submit
 * as make ~5 ms of work), and the lowest time per dispatch wins. The
 * screening keeps slow variants (tiled on a CPU adapter takes seconds at full
 * size) from eating the start-up time.
 *
 * Other programs on the machine only ever make a timing longer, so each
 * figure is the minimum of its runs, and the runs go round the candidates in
 * turn (a burst of load then hits all of them, not just one).
 */
export async function pickFastest(
  candidates: MatmulVariant[],
  time: (v: MatmulVariant, rows: number, reps: number) => Promise<number>,
  rows: number,
  screenRows: number,
  repeats = 3,
): Promise<TuneResult> {
  const overheads: number[] = [];
  for (let r = 0; r < 3; r++) overheads.push(await time(candidates[0], screenRows, 0));
  const overheadMs = Math.min(...overheads);
  const net = async (v: MatmulVariant, n: number, reps = 1) =>
    Math.max(0, (await time(v, n, reps)) - overheadMs) / reps;
  const screenMs: Record<string, number> = {};
  for (let round = 0; round < 2; round++) {
    for (const v of candidates) {
      screenMs[v.name] = Math.min(screenMs[v.name] ?? Infinity, await net(v, screenRows));
    }
  }
  const bestScreen = Math.min(...Object.values(screenMs));
  const finalists = candidates.filter((v) => screenMs[v.name] <= 1.5 * bestScreen + 0.5);
  // On a real GPU one dispatch takes far less than the readback: repeat it
  // within one submit until the work is ~5 ms or more.
  const reps = new Map<string, number>();
  const ms: Record<string, number> = {};
  for (const v of finalists) {
    const first = await net(v, rows);
    reps.set(v.name, Math.min(64, Math.max(1, Math.ceil(5 / Math.max(first, 0.05)))));
    ms[v.name] = Infinity;
  }
  for (let round = 0; round < repeats; round++) {
    for (const v of finalists) {
      ms[v.name] = Math.min(ms[v.name], await net(v, rows, reps.get(v.name)!));
    }
  }
  let best = finalists[0];
  for (const v of finalists) if (ms[v.name] < ms[best.name]) best = v;
  return { best, ms, screenMs, overheadMs };
}

/** The tuning cache: adapter description → shape key → variant name. */
export type TuneCache = Record<string, Record<string, string>>;

/** Reads the cache at `path`; an absent or unreadable file gives an empty cache. */
export function readTuneCache(path: string): TuneCache {
  try {
    const parsed = JSON.parse(Deno.readTextFileSync(path));
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/**
 * Writes the cache atomically (temporary file, then rename). A read-only
 * directory or a missing permission is not an error: the choice is only
 * remembered for next time. Returns whether it was written.
 */
export function writeTuneCache(path: string, cache: TuneCache): boolean {
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, JSON.stringify(cache, null, 2) + "\n");
    Deno.renameSync(tmp, path);
    return true;
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    return false;
  }
}
