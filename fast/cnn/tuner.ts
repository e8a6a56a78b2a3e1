/**
 * The CNN's tuner: which variant each convolution runs on this adapter
 * (`CnnVariants`: conv1 and conv2, "im2col" or "texture"; fast/cnn/variants.ts's
 * `cnnCandidates` lists the choices that fit). Every choice computes bit for
 * bit the same sums (tests/cnn_textures_test.ts), so the tuner only decides
 * the speed. It times each choice on a small engine of its own (the run's
 * weights, batch size and optimiser at lr 0, the first few batches of the
 * training data: `timeCandidates`), keeps the fastest, and remembers it per adapter
 * and shape in the tune cache the MLP's tuner uses, so that a later run
 * starts without timing. `createCnnEngineTuned` makes the engine the run
 * loop trains with: cache, timing or default, warm-up, one log line.
 *
 * When it times, as the MLP's tuner (fast/mlp/variants/tuner.ts): on GPUs,
 * or with `--tune`; never with `--no-tune`. Otherwise the adapter's kind
 * decides (`cnnVariants`, fast/cnn/variants.ts: the texture variants on CPU
 * adapters, where they were made and measured; the im2col ones on GPUs). Not the engine and not
 * the kernels: this file only chooses among what the engine offers, and
 * touches no files (the cache comes in as a `TuneCacheFile`).
 *
 * @module
 */

import { gpuChecked } from "../../shared/gpu/device.ts";
import { UsageError } from "../../shared/io/errors.ts";
import { limitDataset } from "../../shared/data/dataset.ts";
import type { CnnParams, CnnShape } from "../../shared/model/cnn.ts";
import type { TuneCacheFile } from "../files.ts";
import type { EngineSetup } from "../run.ts";
import { type CnnEngine, type CnnEngineOptions, createCnnEngine } from "./engine.ts";
import { cnnCandidates, type CnnVariants } from "./variants.ts";

/**
 * Training steps each choice is timed on: enough that one timing is ~0.1 s
 * of work (a step of 32 MNIST images took ~12 ms on llvmpipe, ~1.3 ms on an
 * H200), so that the ~11 ms of waiting for a readback does not decide.
 */
const TIMING_STEPS = { software: 8, gpu: 96 };

/** Timed epochs of every choice, taken in turn after one untimed (compiling) epoch each. */
const TIMING_ROUNDS = 3;

/**
 * Version of the CNN's kernels for the tuning cache: raise it when a
 * kernel's speed changes, so that a choice timed on the old kernels is not
 * reused.
 */
const CNN_KERNELS_VERSION = 2; // 2: sliding windows in the weight gradients, pool1's backward fused (2026-12-06)

/** How `createCnnEngineTuned` chose the variants, for its log line and the tests. */
export interface CnnChoice {
  /** Undefined: the engine's default (`cnnVariants`: by the adapter's kind). */
  variants?: CnnVariants;
  how: "default" | "cached" | "tuned";
  /** With "tuned": milliseconds a training step, per choice timed (`variantsName`). */
  msPerStep?: Record<string, number>;
}

/** A choice as the log and the cache write it: "conv1 texture, conv2 texture". */
export function variantsName(v: CnnVariants): string {
  return `conv1 ${v.conv1}, conv2 ${v.conv2}`;
}

/** The tune cache's key for the CNN of `shape` at `batchSize`. */
export function cacheKey(shape: CnnShape, batchSize: number): string {
  const { height, width, kernel, c1, c2, classes } = shape;
  return `cnn ${height}x${width} K${kernel} C${c1},${c2} classes${classes} ` +
    `rows${batchSize} v${CNN_KERNELS_VERSION}`;
}

/**
 * The CNN's engine for a run: its variants from the cache, else timed (on a
 * GPU or with `--tune`), else the adapter kind's default; then, on a CPU
 * adapter, the kernels of a step and of the test pass run once on a small
 * engine (`warmUp`), so that its compile on first use is start-up time rather
 * than part of epoch 1 (and of its `--profile`). Logs which variants run and
 * why.
 */
export async function createCnnEngineTuned(
  setup: EngineSetup<CnnParams>,
  cache: TuneCacheFile | null,
): Promise<CnnEngine> {
  const { gpu, nTrain, log } = setup;
  const { batchSize } = setup.config;
  const base = engineOptions(setup);
  const smaller = `--batch-size ${batchSize} (a smaller --batch-size needs less GPU memory)`;
  const choice = await gpuChecked(
    gpu.device,
    `timing the CNN's variants at ${smaller}`,
    () => chooseVariants(setup, cache),
  );
  if (gpu.software) {
    await gpuChecked(
      gpu.device,
      `compiling the CNN's kernels at ${smaller}`,
      () => warmUp(gpu.device, { ...base, ...choice.variants }),
    );
  }
  // A device that refuses (out of memory, a limit) is one line that says what was asked of it;
  // what was made is freed before the error goes on.
  let made: CnnEngine | undefined;
  try {
    const engine = await gpuChecked(
      gpu.device,
      `setting up the CNN for ${nTrain} images at ${smaller}`,
      async () =>
        made = await createCnnEngine(gpu.device, {
          ...base,
          ...choice.variants,
          passTimestamps: setup.passTimestamps,
        }),
    );
    log(`CNN variants: ${variantsName(engine.variants)} (${howText(choice)})`);
    return engine;
  } catch (err) {
    made?.destroy();
    throw err;
  }
}

/**
 * How the variants were chosen, for the log: "default", "cached", or
 * "tuned: conv1 …, conv2 … 14.98; … ms a step".
 */
function howText({ how, msPerStep }: CnnChoice): string {
  if (!msPerStep) return how;
  const each = Object.entries(msPerStep).map(([name, ms]) => `${name} ${ms.toFixed(2)}`);
  return `${how}: ${each.join("; ")} ms a step`;
}

/** The options of the run's engine, variants aside. */
function engineOptions(setup: EngineSetup<CnnParams>): CnnEngineOptions {
  const { config, gpu } = setup;
  return {
    params: setup.params,
    batchSize: config.batchSize,
    lr: config.lr,
    optimizer: setup.optimizer,
    shuffle: setup.shuffle,
    data: setup.data,
    software: gpu.software,
  };
}

/**
 * The variants of a run (see `createCnnEngineTuned`); a timed choice is
 * written to the cache (a failed write is ignored: it is only remembered for
 * next time).
 */
export async function chooseVariants(
  setup: EngineSetup<CnnParams>,
  cache: TuneCacheFile | null,
): Promise<CnnChoice> {
  const { gpu, config, params } = setup;
  const device = gpu.device;
  const fallback: CnnChoice = { how: "default" };
  if (config.noTune) return fallback;
  const candidates = cnnCandidates(
    params.shape,
    config.batchSize,
    device.limits.maxTextureDimension2D,
  );
  const key = cacheKey(params.shape, config.batchSize);
  const known = cache?.read()[gpu.description]?.[key];
  const cached = candidates.find((v) => variantsName(v) === known);
  if (cached) return { variants: cached, how: "cached" };
  const timing = config.tune || !gpu.software;
  if (!timing || candidates.length < 2) return fallback;
  const steps = Math.min(
    gpu.software ? TIMING_STEPS.software : TIMING_STEPS.gpu,
    Math.ceil(setup.nTrain / config.batchSize),
  );
  setup.log(
    `compiling and timing the CNN's ${candidates.length} choices of variants on ${steps} steps ` +
      `(once: remembered afterwards; minutes on a CPU adapter with a cold shader cache)`,
  );
  let msPerStep: Record<string, number>;
  try {
    msPerStep = await gpuChecked(
      device,
      `timing the CNN's variants at --batch-size ${config.batchSize}`,
      () => timeCandidates(device, engineOptions(setup), candidates, steps),
    );
  } catch (err) {
    // Three engines at once may not fit where the run's one does: then the default, untimed.
    if (!(err instanceof UsageError) && !String(err).includes("GPU out of memory")) throw err;
    setup.log(`could not time the CNN's variants (${(err as Error).message}): the default`);
    return fallback;
  }
  const variants = fastest(candidates, msPerStep);
  if (cache) {
    const all = cache.read();
    all[gpu.description] = { ...all[gpu.description], [key]: variantsName(variants) };
    await cache.write(all);
  }
  return { variants, how: "tuned", msPerStep };
}

/** The candidate with the least milliseconds a step (the first of equals). */
export function fastest(candidates: CnnVariants[], msPerStep: Record<string, number>): CnnVariants {
  let best = candidates[0];
  for (const v of candidates) {
    if (msPerStep[variantsName(v)] < msPerStep[variantsName(best)]) best = v;
  }
  return best;
}

/**
 * Milliseconds a training step of each of `candidates` (by `variantsName`):
 * one engine each on the first `steps` batches of the training data (no test
 * set), an untimed epoch each (the compile), then `TIMING_ROUNDS` epochs of
 * each in turn (a burst of load from another program hits all of them, not
 * one); the least of each, divided by its steps. The engines train at lr 0
 * (the same work; the weights stay as they are) on copies of the weights:
 * the run's engine starts from `base.params` as given.
 */
export async function timeCandidates(
  device: GPUDevice,
  base: CnnEngineOptions,
  candidates: CnnVariants[],
  steps: number,
): Promise<Record<string, number>> {
  const data = limitDataset(base.data, steps * base.batchSize, 0);
  const engines: CnnEngine[] = [];
  try {
    for (const v of candidates) {
      engines.push(await createCnnEngine(device, { ...base, ...v, data, lr: 0, shuffle: false }));
    }
    for (const e of engines) await e.trainEpoch();
    const ms = new Array<number>(engines.length).fill(Infinity);
    for (let round = 0; round < TIMING_ROUNDS; round++) {
      for (const [i, e] of engines.entries()) {
        const t0 = performance.now();
        await e.trainEpoch();
        ms[i] = Math.min(ms[i], (performance.now() - t0) / e.steps);
      }
    }
    return Object.fromEntries(candidates.map((v, i) => [variantsName(v), ms[i]]));
  } finally {
    for (const e of engines) e.destroy();
  }
}

/**
 * Runs the kernels of a step and of the test pass with `opts`' variants once,
 * on a small engine of one batch (lr 0), then frees it: the compile a CPU
 * adapter does on a kernel's first use (Mesa keeps it in its shader cache)
 * happens here rather than in the first epoch. Not the shuffle's gather,
 * which is specialised to the training set's size (a small, quick kernel).
 */
async function warmUp(device: GPUDevice, opts: CnnEngineOptions): Promise<void> {
  const data = limitDataset(opts.data, opts.batchSize, opts.batchSize);
  if (data.trainLabels.length === 0) return;
  const engine = await createCnnEngine(device, { ...opts, data, lr: 0, shuffle: false });
  try {
    await engine.trainEpoch();
    if (data.testLabels.length > 0) await engine.evaluate();
  } finally {
    engine.destroy();
  }
}
