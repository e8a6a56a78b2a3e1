/**
 * The MLP's matmul tuner: which variant of each matmul slot runs fastest on
 * this adapter, timed on the engine itself (`MlpEngine.timeVariant`) and
 * remembered per adapter, batch size and shape in data/tune-cache.json.
 *
 * @module
 */

import type { Gpu } from "../../shared/gpu/device.ts";
import { type FastTrainer, type Slot, SLOTS, TUNE_SCREEN_ROWS } from "./engine.ts";
import {
  type MatmulShape,
  pickFastest,
  readTuneCache,
  shapeKey,
  tuneCandidates,
  type TuneResult,
  variantFits,
  VARIANTS,
  writeTuneCache,
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
 * Times every variant that fits each of `slots` on `trainer` (see
 * `pickFastest`), switches the trainer to the fastest, and remembers the
 * choices in the cache at `cachePath` (when not `null`; a failed write is
 * ignored). Returns a note per slot for the log.
 */
export async function tuneSlots(
  gpu: Gpu,
  trainer: FastTrainer,
  slots: readonly Slot[],
  batchSize: number,
  cachePath: string | null,
  log: (line: string) => void = () => {},
): Promise<Partial<Record<Slot, TuneResult>>> {
  const maxTex = gpu.device.limits.maxTextureDimension2D;
  const results: Partial<Record<Slot, TuneResult>> = {};
  for (const [i, slot] of slots.entries()) {
    const candidates = tuneCandidates(trainer.shapes[slot], gpu.software, trainer.maxRows, maxTex);
    const t0 = performance.now();
    const result = await pickFastest(
      candidates,
      (v, rows, reps) => trainer.timeVariant(slot, v, rows, reps),
      batchSize,
      Math.min(TUNE_SCREEN_ROWS, batchSize),
    );
    trainer.setVariant(slot, result.best);
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
      entries[shapeKey(trainer.shapes[slot], batchSize)] = trainer.plan[slot].name;
    }
    cache[gpu.description] = entries;
    writeTuneCache(cachePath, cache);
  }
  return results;
}
