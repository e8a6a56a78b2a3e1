/**
 * The tuner of the fast MLP engine: which matmul variant each slot of a
 * training step uses on this adapter. It times the candidates on the engine
 * itself (`MlpEngine.timeVariant`, lr 0), keeps the fastest (`pickFastest`),
 * and remembers the choice per adapter and shape in a cache, so a later run
 * starts without timing (`cachedPlan`). `createMlpEngineTuned` makes the
 * engine the run loop trains with: cache, timing, warm-up, one log line.
 *
 * Not the engine (fast/mlp/engine.ts) and not the variant catalogue
 * (fast/mlp/variants/matmul.ts): this file only chooses among what they offer. The
 * cache is read and written through a `TuneCacheFile` the caller hands in
 * (fast/files.ts's `readTuneCache` and `writeTuneCache`, at the edge): no
 * files and no Deno APIs here.
 *
 * @module
 */

import { type Gpu, gpuChecked } from "../../../shared/gpu/device.ts";
import type { MlpParams } from "../../../shared/model/mlp.ts";
import type { TuneCacheFile } from "../../files.ts";
import type { EngineSetup } from "../../run.ts";
import { activationRows } from "../buffers.ts";
import { createMlpEngine, type MlpEngine } from "../engine.ts";
import {
  type MatmulShape,
  type MatmulVariant,
  type Slot,
  slotShapes,
  slotsOf,
  tuneCandidates,
  variantFits,
  VARIANTS,
} from "./matmul.ts";

/**
 * Rows the tuner screens every variant on (or the batch size, if smaller):
 * the largest block of rows a variant computes (texture-32x16), so that no
 * variant is timed on rows it computes for nothing (on 16 rows, texture-32x16
 * did twice its share of work and was at times screened out on llvmpipe,
 * where it is the fastest on 500).
 */
const TUNE_SCREEN_ROWS = 32;

/**
 * The MLP engine with a matmul variant per slot: the cache's, else timed on
 * a GPU (or with `--tune`), else the adapter type's default; then each chosen
 * kernel run once, so that a CPU adapter's compile on first use is start-up
 * time rather than part of epoch 1. Logs which variants run and why.
 */
export async function createMlpEngineTuned(
  setup: EngineSetup<MlpParams>,
  cache: TuneCacheFile | null,
): Promise<MlpEngine> {
  const { gpu, config, nTrain, nTest, log } = setup;
  const { batchSize } = config;
  const maxRows = activationRows(batchSize, nTest);
  const screenRows = Math.min(TUNE_SCREEN_ROWS, batchSize);
  // Timing the variants: on GPUs, or with --tune; a cached choice is used in either case.
  const timing = config.tune || !gpu.software;
  const cached = config.noTune
    ? { known: {}, missing: [] }
    : cachedPlan(gpu, setup.params.sizes, batchSize, maxRows, cache);
  const { known } = cached;
  const missing = timing ? cached.missing : [];
  const smaller = `--batch-size ${batchSize} (a smaller --batch-size needs less GPU memory)`;
  if (missing.length > 0) {
    log(
      `compiling and timing the matmul variants for ${missing.join(", ")} on this adapter ` +
        `(once: remembered afterwards; minutes on a CPU adapter with a cold shader cache)`,
    );
  }
  // When set-up fails, what was made is freed before the error goes on.
  let made: MlpEngine | undefined;
  try {
    const engine = await gpuChecked(
      gpu.device,
      `setting up the fast trainer for ${nTrain} images at ${smaller}`,
      async () =>
        made = await createMlpEngine(gpu, setup.params, setup.data, {
          batchSize,
          lr: config.lr,
          plan: known,
          tuneSlots: missing,
          screenRows,
          optimizer: setup.optimizer,
          shuffle: setup.shuffle,
          overlapEpochs: setup.overlap,
          passTimestamps: setup.passTimestamps,
          afterSubmit: setup.afterSubmit,
        }),
    );
    const tuned = await gpuChecked(
      gpu.device,
      `timing the matmul variants at ${smaller}`,
      async () => {
        const results = await tuneSlots(gpu, engine, missing, batchSize, cache, log);
        for (const slot of engine.slots) {
          // An lr-0 step entry: the weights are untouched.
          if (!results[slot]) await engine.timeVariant(slot, engine.plan[slot], screenRows);
        }
        return results;
      },
    );
    const how = (s: Slot) => {
      if (config.noTune || (!timing && !known[s])) return "default";
      const t = tuned[s];
      if (!t) return "cached";
      const ms = t.ms[engine.plan[s].name];
      return ms === undefined ? "tuned" : `tuned, ${ms.toFixed(1)} ms`;
    };
    log(
      `matmul variants: ${
        engine.slots.map((s) => `${s} ${engine.plan[s].name} (${how(s)})`).join(", ")
      }`,
    );
    return engine;
  } catch (err) {
    made?.destroy();
    throw err;
  }
}

/** The plan of a run: variant names per slot, and which slots the cache lacks. */
interface CachedPlan {
  /** Variants the cache knows for this adapter, batch size and shape. */
  known: Partial<Record<Slot, string>>;
  /** Slots to time. */
  missing: Slot[];
}

/** What `cache` (none: `null`) knows for `gpu` and the slots of layer sizes `sizes`. */
function cachedPlan(
  gpu: Gpu,
  sizes: readonly number[],
  batchSize: number,
  maxRows: number,
  cache: TuneCacheFile | null,
): CachedPlan {
  const known: Partial<Record<Slot, string>> = {};
  const missing: Slot[] = [];
  const entries = cache ? cache.read()[gpu.description] ?? {} : {};
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  const shapes = slotShapes(sizes);
  for (const slot of slotsOf(sizes)) {
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
 * choices in `cache` (when not `null`; a failed write is ignored). Returns
 * a note per slot for the log.
 */
async function tuneSlots(
  gpu: Gpu,
  engine: MlpEngine,
  slots: readonly Slot[],
  batchSize: number,
  cache: TuneCacheFile | null,
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
  if (cache && slots.length > 0) {
    const known = cache.read();
    const entries = known[gpu.description] ?? {};
    for (const slot of slots) {
      entries[shapeKey(engine.shapes[slot], batchSize)] = engine.plan[slot].name;
    }
    known[gpu.description] = entries;
    await cache.write(known);
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
const KERNELS_VERSION = 9;

/** A string naming `shape` at `rows` rows, for the tuning cache. */
function shapeKey(shape: MatmulShape, rows: number): string {
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
