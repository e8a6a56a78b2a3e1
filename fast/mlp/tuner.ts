/**
 * The tuner of the fast MLP engine: which matmul variant each slot of a
 * training step uses on this adapter. It times the candidates on the engine
 * itself (`MlpEngine.timeVariant`, lr 0), keeps the fastest (`pickFastest`),
 * and remembers the choice per adapter and shape in a JSON cache file, so a
 * later run starts without timing (`cachedPlan`).
 *
 * Not the engine (fast/mlp/engine.ts) and not the variant catalogue
 * (fast/mlp/matmul.ts): this file only chooses among what they offer. It is
 * the one file of fast/mlp/ that touches the file system (the cache), at the
 * edge, through `readTuneCache` and `writeTuneCache`.
 *
 * @module
 */

import type { Gpu } from "../../shared/gpu/device.ts";
import { type MlpEngine, TUNE_SCREEN_ROWS } from "./engine.ts";
import {
  type MatmulShape,
  type MatmulVariant,
  type Slot,
  SLOTS,
  tuneCandidates,
  variantFits,
  VARIANTS,
} from "./matmul.ts";

/** Where tuning results are remembered, per adapter and shape. */
export const TUNE_CACHE_PATH: string = decodeURIComponent(
  new URL("../../data/tune-cache.json", import.meta.url).pathname,
);

/** The plan of a run: variant names per slot, and which slots the cache lacks. */
export interface CachedPlan {
  /** Variants the cache knows for this adapter, batch size and shape. */
  known: Partial<Record<Slot, string>>;
  /** Slots to time. */
  missing: Slot[];
}

/** What the cache at `cachePath` (none: `null`) knows for `gpu` and these shapes. */
export function cachedPlan(
  gpu: Gpu,
  shapes: Record<Slot, MatmulShape>,
  batchSize: number,
  maxRows: number,
  cachePath: string | null,
): CachedPlan {
  const known: Partial<Record<Slot, string>> = {};
  const missing: Slot[] = [];
  const entries = cachePath ? readTuneCache(cachePath)[gpu.description] ?? {} : {};
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  for (const slot of SLOTS) {
    const name = entries[shapeKey(shapes[slot], batchSize)];
    const v = VARIANTS.find((v) => v.name === name);
    if (v && variantFits(v, shapes[slot], maxRows, maxTex)) known[slot] = v.name;
    else missing.push(slot);
  }
  return { known, missing };
}

/**
 * Times every variant that fits each of `slots` on `engine` (see
 * `pickFastest`), switches the engine to the fastest, and remembers the
 * choices in the cache at `cachePath` (when not `null`; a failed write is
 * ignored). Returns a note per slot for the log.
 */
export async function tuneSlots(
  gpu: Gpu,
  engine: MlpEngine,
  slots: readonly Slot[],
  batchSize: number,
  cachePath: string | null,
  log: (line: string) => void = () => {},
): Promise<Partial<Record<Slot, TuneResult>>> {
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  const results: Partial<Record<Slot, TuneResult>> = {};
  for (const [i, slot] of slots.entries()) {
    const candidates = tuneCandidates(engine.shapes[slot], gpu.software, engine.maxRows, maxTex);
    const t0 = performance.now();
    const result = await pickFastest(
      candidates,
      (v, rows, reps) => engine.timeVariant(slot, v, rows, reps),
      batchSize,
      Math.min(TUNE_SCREEN_ROWS, batchSize),
    );
    engine.setVariant(slot, result.best);
    results[slot] = result;
    log(
      `  tuned ${slot} (${i + 1}/${slots.length}): ${result.best.name} of ${candidates.length} ` +
        `variants (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
  if (cachePath && slots.length > 0) {
    const cache = readTuneCache(cachePath);
    const entries = cache[gpu.description] ?? {};
    for (const slot of slots) {
      entries[shapeKey(engine.shapes[slot], batchSize)] = engine.plan[slot].name;
    }
    cache[gpu.description] = entries;
    writeTuneCache(cachePath, cache);
  }
  return results;
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
