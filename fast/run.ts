/**
 * The fast trainer's run loop, the same for every model: what happens around
 * the engine from the flags to the summary.
 *
 *   files checked → checkpoint or weights read (--resume, --load) → data and
 *   device (shared/io/prepare.ts) → the model's engine → epochs (progress,
 *   Ctrl-C, a loss that is no longer finite, --save, --plot's accuracy) →
 *   profile → test pass and confusion matrix → chart → summary
 *
 * What a model brings is a `Model` (fast/mlp/model.ts, fast/cnn/model.ts):
 * its starting weights, its file format, and how to make its engine (the
 * contract of fast/engine.ts). How an epoch runs on the GPU is the engine's
 * business; this file never touches a GPU buffer.
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import { type Gpu, gpuChecked } from "../shared/gpu/device.ts";
import { checkModelFits, type Dataset, type DataShape } from "../shared/data/dataset.ts";
import {
  OPTIMIZER_DEFAULTS,
  type OptimizerOptions,
  optimizerOptions,
} from "../shared/model/optim.ts";
import {
  formatProfile,
  GpuProfiler,
  type PassTimestamps,
  type ProfileReport,
} from "../shared/gpu/profiler.ts";
import { type EpochPoint, formatConfusion, type SvgStrip } from "../shared/io/report.ts";
import { shuffledIndices } from "../shared/model/rng.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../shared/io/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../shared/io/prepare.ts";
import type { InitName } from "../shared/model/mlp.ts";
import {
  type Checkpoint,
  type CheckpointSettings,
  checkResumable,
  decodeCheckpoint,
  encodeCheckpoint,
  type ModelCodec,
} from "./checkpoint.ts";
import {
  type Engine,
  EpochInterrupted,
  type OverlappingEngine,
  type SubmittedEpoch,
} from "./engine.ts";
import { checkWritable, readModelFile, writeFileAtomicOrFail, writePlot } from "./files.ts";

/** A model the run loop can train: its weights, its file format, its engine. */
export interface Model<P> extends ModelCodec<P> {
  /** What the chart's title calls it ("MLP", "CNN"). */
  readonly title: string;
  /**
   * The weights a run starts from when no file gives them, for `data` (its
   * image size in, its classes out); a size the model cannot take is a
   * one-line `UserError` naming it.
   */
  initialParams(config: TrainConfig, data: Dataset): P;
  /**
   * Throws a one-line `UserError` when `config`'s network for `data` cannot
   * fit `gpu` (with `nTest` test images), before its weights are made.
   */
  checkDevice?(gpu: Gpu, config: TrainConfig, data: Dataset, nTest: number): void;
  /** Their name in the summary's `config.init` (the MLP's `--init`; the CNN has no choice). */
  initName?(config: TrainConfig): InitName;
  /**
   * Makes the engine for `setup` (for the MLP, also picks its matmul
   * variants); a device that refuses is a one-line error naming what failed.
   */
  createEngine(setup: EngineSetup<P>): Promise<Engine<P>>;
  /** More SVG under the chart (the CNN's first-layer filters). */
  chartExtra?(params: P): SvgStrip;
}

/** What a model's engine is made from. */
export interface EngineSetup<P> {
  gpu: Gpu;
  params: P;
  /** The data, limits applied (its arrays hold exactly `nTrain` and `nTest` images). */
  data: Dataset;
  /** Training and test images used. */
  nTrain: number;
  nTest: number;
  config: TrainConfig;
  optimizer: OptimizerOptions;
  shuffle: boolean;
  /**
   * Epochs may overlap (`OverlappingEngine`): nothing needs each epoch
   * finished before the next one starts.
   */
  overlap: boolean;
  /** The profiler's hook for each compute pass (undefined: no profile). */
  passTimestamps?: PassTimestamps;
  /** Awaited after each submitted chunk of steps (the profiler's `collect`). */
  afterSubmit?: () => Promise<void>;
  log: (line: string) => void;
}

/**
 * Things a caller (a test, a benchmark, the CLI) may hand the run instead of
 * having it make them: `TrainOptions`' device (left open at the end; one the
 * run opens is closed), data and log, and these.
 */
export interface RunOptions<P> extends Omit<TrainOptions, "params"> {
  /** Starting weights (default: the model's `initialParams`, or --load / --resume). */
  params?: P;
  /**
   * Aborted (e.g. on Ctrl-C): the running chunk of steps finishes, the rest
   * of the epoch is abandoned, nothing partial is saved, and a `UserError`
   * with exit code 130 says where the last checkpoint is.
   */
  signal?: AbortSignal;
  /**
   * Whether epochs may overlap, for an engine that can (default: on GPUs,
   * not on CPU adapters). Never with a progress line, `--save`, `--plot` or
   * `--profile`, which need each epoch finished before the next.
   */
  overlapEpochs?: boolean;
}

/** The optimiser settings of `config`, with shared/model/optim.ts's defaults. */
function optimizerOf(config: TrainConfig): OptimizerOptions {
  return optimizerOptions(config.optimizer ?? OPTIMIZER_DEFAULTS.optimizer, config);
}

// ---------------------------------------------------------------------------
// The run

/**
 * Trains `model` as `config` says and returns the summary. Logs one line per
 * epoch, the test accuracy and the confusion matrix, like the slow trainer.
 */
export async function runModel<P>(
  model: Model<P>,
  config: TrainConfig,
  opts: RunOptions<P> = {},
): Promise<TrainSummary> {
  const optimizer = optimizerOf(config);
  const shuffle = config.shuffle ?? false;
  const { checkpoint, params, file } = await startingPoint(model, config, opts.params);
  const { gpu, data, nTrain, nTest, log, report } = await prepareRun(config, opts);
  // A model from a file must take the data's images and every label in it.
  if (file) checkModelFits(file.shape, file.name, data);
  // A device this run opened is destroyed when it ends, however it ends.
  using _ownDevice = {
    [Symbol.dispose]: () => {
      if (!opts.gpu) gpu.device.destroy();
    },
  };
  if (!params) model.checkDevice?.(gpu, config, data, nTest);
  const settings: CheckpointSettings = {
    optimizer,
    seed: config.seed,
    lr: config.lr,
    batchSize: config.batchSize,
    shuffle,
    trainImages: nTrain,
    testImages: nTest,
    dataSource: data.source,
    image: { height: data.height, width: data.width },
  };
  if (checkpoint && config.save) {
    checkResumable(model.name, checkpoint, config.save, settings);
    const n = checkpoint.epoch;
    log(
      `resuming from ${config.save}: ${n} epoch${n === 1 ? "" : "s"} done, ` +
        `training to epoch ${config.epochs}`,
    );
  } else if (config.load) log(`starting from the weights in ${config.load}`);

  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  let profiling = false; // the training epochs only: not while tuning, not the --plot tests
  const overlap = (opts.overlapEpochs ?? !gpu.software) && !Deno.stderr.isTerminal() &&
    !config.save && !config.plot && !config.profile;
  let engine: Engine<P>;
  try {
    engine = await model.createEngine({
      gpu,
      params: params ?? model.initialParams(config, data),
      data,
      nTrain,
      nTest,
      config,
      optimizer,
      shuffle,
      overlap,
      passTimestamps: profiler.enabled
        ? (k, flops) => profiling ? profiler.passTimestamps(k, flops) : undefined
        : undefined,
      afterSubmit: profiler.enabled ? () => profiler.collect() : undefined,
      log,
    });
  } catch (err) {
    profiler.destroy();
    throw err;
  }
  try {
    if (checkpoint) engine.writeOptimizerState(checkpoint.optimizerState);
    const loop: EpochLoop<P> = {
      model,
      engine,
      gpu,
      config,
      settings,
      nTrain,
      nTest,
      log,
      report,
      signal: opts.signal,
      epochs: [],
      history: checkpoint ? [...checkpoint.history] : [],
      trainMs: 0,
      firstEpoch: (checkpoint?.epoch ?? 0) + 1,
      setProfiling: (on) => profiling = on && profiler.enabled,
      collectProfile: () => profiler.collect(),
    };
    if (checkpoint && loop.firstEpoch > config.epochs) {
      log(`${config.save} already holds ${checkpoint.epoch} epochs; nothing left to train`);
    }
    profiling = profiler.enabled;
    if (overlap && "encodeEpoch" in engine) {
      await runOverlappedEpochs(loop, engine as OverlappingEngine<P>);
    } else await runEpochs(loop);
    let profile: ProfileReport | undefined;
    if (profiling) {
      await profiler.collect();
      profile = profiler.report(loop.trainMs);
      profiling = false;
    }
    const test = await testPass(engine, gpu, nTest);
    report(formatTest(test));
    if (test.confusion) report(formatConfusion(test.confusion));
    if (profile) report(formatProfile(profile));
    if (config.plot) {
      const title = `${model.title}, ${optimizer.optimizer}, lr ${config.lr}, batch ` +
        `${config.batchSize}${
          shuffle ? ", shuffled" : ""
        }: ${nTrain} training / ${nTest} test images`;
      const extra = model.chartExtra?.(await engine.readParams());
      await writePlot(config.plot, loop.history, title, extra);
      log(`chart written to ${config.plot}`);
    }
    return fastSummary({
      model: model as Model<unknown>,
      gpu,
      data,
      nTrain,
      nTest,
      config,
      optimizer,
      shuffle,
      epochs: loop.epochs,
      test,
      resumedEpoch: checkpoint?.epoch,
      profile,
    });
  } finally {
    engine.destroy();
    profiler.destroy();
  }
}

/**
 * The files a run starts from, read before the data and the device: a
 * missing checkpoint or a file that cannot be written should not wait for
 * them and an epoch. Returns the checkpoint (--resume) and the weights
 * (its, --load's, or `given`), and for a file, its name and the shape of
 * its model (checked against the data once that is loaded).
 */
async function startingPoint<P>(
  model: Model<P>,
  config: TrainConfig,
  given: P | undefined,
): Promise<{ checkpoint?: Checkpoint<P>; params?: P; file?: { name: string; shape: DataShape } }> {
  for (const [flag, file] of [["--save", config.save], ["--plot", config.plot]] as const) {
    if (file) checkWritable(flag, file);
  }
  if (config.resume && config.save) {
    const bytes = await readModelFile(config.save, "--resume");
    const checkpoint = decodeCheckpoint(model, bytes, config.save);
    return {
      checkpoint,
      params: checkpoint.params,
      file: { name: config.save, shape: checkpoint.shape },
    };
  }
  if (config.load) {
    const { params, shape } = model.decode(
      await readModelFile(config.load, "--load"),
      config.load,
    );
    return { params, file: { name: config.load, shape } };
  }
  return { params: given };
}

/** The test pass: accuracy and confusion matrix, counted on the GPU. */
async function testPass<P>(
  engine: Engine<P>,
  gpu: Gpu,
  nTest: number,
): Promise<TrainSummary["test"]> {
  const t0 = performance.now();
  const { correct, confusion } = nTest > 0
    ? await gpuChecked(gpu.device, "testing", () => engine.evaluateConfusion())
    : { correct: 0, confusion: undefined };
  return {
    accuracy: nTest > 0 ? correct / nTest : 0,
    correct,
    total: nTest,
    ms: performance.now() - t0,
    ...(confusion ? { confusion } : {}),
  };
}

// ---------------------------------------------------------------------------
// Epochs

/** The state of a run's epochs, shared by the two ways of running them. */
interface EpochLoop<P> {
  model: Model<P>;
  engine: Engine<P>;
  gpu: Gpu;
  config: TrainConfig;
  settings: CheckpointSettings;
  nTrain: number;
  nTest: number;
  log: (line: string) => void;
  /** Where the epoch lines go (prepareRun's `report`). */
  report: (line: string) => void;
  signal?: AbortSignal;
  /** Epochs this run trained. */
  epochs: EpochResult[];
  /** Every epoch's loss (and accuracy), the checkpoint's included. */
  history: EpochPoint[];
  /** Milliseconds of the epochs so far (the profile's denominator). */
  trainMs: number;
  firstEpoch: number;
  /** Turns the profiler's pass timestamps on or off. */
  setProfiling(on: boolean): void;
  /** Reads the profiler's timestamps so far (outside the epochs' clocks). */
  collectProfile(): Promise<void>;
}

/**
 * Epoch after epoch, each finished before the next begins: a progress line
 * on a terminal, Ctrl-C within the epoch (after the running chunk).
 */
async function runEpochs<P>(loop: EpochLoop<P>): Promise<void> {
  const { engine, gpu, config, signal } = loop;
  const tty = Deno.stderr.isTerminal();
  const stop = signal ? () => signal.aborted : undefined;
  for (let epoch = loop.firstEpoch; epoch <= config.epochs; epoch++) {
    if (signal?.aborted) throw interruptedError(epoch, config.save);
    const progress = epochProgress(epoch, engine.steps);
    const t0 = performance.now();
    let total: number;
    try {
      total = await gpuChecked(gpu.device, `training epoch ${epoch}`, () => {
        if (config.shuffle) engine.setOrder(shuffledIndices(loop.nTrain, config.seed + epoch));
        return engine.trainEpoch(tty ? (done) => progress.tick(done) : undefined, stop);
      });
    } catch (err) {
      progress.clear();
      if (err instanceof EpochInterrupted) throw interruptedError(epoch, config.save);
      throw err;
    }
    const ms = performance.now() - t0;
    progress.clear();
    await finishEpoch(loop, epoch, total, ms, (s, c) => engine.readLosses(s, c));
  }
}

/**
 * Epochs back to back (an `OverlappingEngine` on a GPU): each epoch one
 * command buffer, encoded while the one before runs and submitted as soon as
 * that one is done — in Deno, starting its loss readback (mapAsync) returns
 * only then (a blocking device poll), and the readback resolves ~10 ms later
 * (the poll loop's sleep) while the next epoch runs. Lines and checks follow
 * up to two epochs behind. An epoch's time runs from the end of the one
 * before (for the first, from here) to the end of its own. Ctrl-C stops
 * between epochs.
 */
async function runOverlappedEpochs<P>(
  loop: EpochLoop<P>,
  engine: OverlappingEngine<P>,
): Promise<void> {
  const { gpu, config } = loop;
  type Running = { epoch: number; submitted: SubmittedEpoch; loss?: Promise<number>; ms: number };
  const running: Running[] = []; // submitted, oldest first
  let lastEnd = performance.now();
  const end = (r: Running) => {
    if (r.loss) return;
    r.loss = r.submitted.readLoss();
    const now = performance.now();
    r.ms = now - lastEnd;
    lastEnd = now;
  };
  const settleOldest = async () => {
    const r = running.shift()!;
    end(r);
    await finishEpoch(loop, r.epoch, await r.loss!, r.ms, r.submitted.readLosses);
  };
  const settleAll = async () => {
    while (running.length > 0) await settleOldest();
  };
  for (let epoch = loop.firstEpoch; epoch <= config.epochs; epoch++) {
    if (loop.signal?.aborted) {
      await settleAll();
      throw interruptedError(epoch, config.save);
    }
    let submitted: SubmittedEpoch;
    try {
      submitted = await gpuChecked(gpu.device, `training epoch ${epoch}`, () => {
        if (config.shuffle) engine.setOrder(shuffledIndices(loop.nTrain, config.seed + epoch));
        const encoded = engine.encodeEpoch();
        const previous = running.at(-1);
        if (previous) end(previous);
        return encoded.submit();
      });
    } catch (err) {
      await settleAll();
      throw err;
    }
    running.push({ epoch, submitted, ms: 0 });
    // Epoch e − readbacks + 1's readback is done with before epoch e + 1 reuses its buffers.
    if (running.length >= engine.readbacks) await settleOldest();
  }
  await settleAll();
}

/**
 * A finished epoch: its loss checked (not finite: a one-line error saying
 * where), logged, charted (--plot: the test accuracy, outside the epoch's
 * clock and the profile) and saved (--save).
 */
async function finishEpoch<P>(
  loop: EpochLoop<P>,
  epoch: number,
  total: number,
  ms: number,
  losses: (start: number, count: number) => Promise<Float32Array>,
): Promise<void> {
  const { engine, config, nTrain, nTest } = loop;
  loop.trainMs += ms;
  await loop.collectProfile();
  if (!Number.isFinite(total)) {
    const bad = firstBadLoss(await losses(0, nTrain), config.batchSize);
    throw nonFiniteLossError(
      total,
      epoch,
      engine.steps,
      bad,
      config.shuffle ?? false,
      config.lr,
      config.save,
    );
  }
  const result = { epoch, loss: total / nTrain, ms };
  loop.epochs.push(result);
  loop.report(formatEpoch(result));
  const point: EpochPoint = { epoch, loss: result.loss };
  if (config.plot && nTest > 0) {
    loop.setProfiling(false);
    point.accuracy = await engine.evaluate() / nTest;
    loop.setProfiling(true);
  }
  loop.history.push(point);
  if (config.save) {
    const [p, state] = [await engine.readParams(), await engine.readOptimizerState()];
    const bytes = encodeCheckpoint(loop.model, p, state, epoch, loop.history, loop.settings);
    await writeFileAtomicOrFail(config.save, bytes, "--save");
  }
}

// ---------------------------------------------------------------------------
// Faults a user can meet, as one-line errors

/**
 * The error of a run stopped (Ctrl-C) during `epoch`: exit code 130 and
 * where the last checkpoint is (nothing is written mid-epoch, so the file
 * at `save` holds epoch − 1, if any).
 */
function interruptedError(epoch: number, save: string | undefined): UserError {
  const kept = !save
    ? "nothing saved (no --save)"
    : epoch - 1 >= 1
    ? `checkpoint at ${save} holds epoch ${epoch - 1}; continue with --resume`
    : `no checkpoint yet (${save} is first written at the end of epoch 1)`;
  return new UserError(`interrupted during epoch ${epoch}; ${kept}`, 130);
}

/** Where the first non-finite per-image loss of an epoch was. */
interface BadLoss {
  /** 1-based step of the epoch. */
  step: number;
  /** Position in the epoch's order (the image id when not shuffled). */
  position: number;
  value: number;
}

/** The first non-finite entry of an epoch's per-image losses (by position), if any. */
function firstBadLoss(losses: ArrayLike<number>, batchSize: number): BadLoss | undefined {
  for (let i = 0; i < losses.length; i++) {
    if (!Number.isFinite(losses[i])) {
      return { step: Math.floor(i / batchSize) + 1, position: i, value: losses[i] };
    }
  }
  return undefined;
}

/**
 * The error of an epoch whose loss sum came out `total` (NaN or ±∞): names
 * the epoch, the step, the learning rate, and the checkpoint left untouched.
 */
function nonFiniteLossError(
  total: number,
  epoch: number,
  steps: number,
  bad: BadLoss | undefined,
  shuffle: boolean,
  lr: number,
  save: string | undefined,
): UserError {
  const where = bad
    ? ` at step ${bad.step} of ${steps} (${
      shuffle ? "shuffled position" : "image"
    } ${bad.position}: loss ${bad.value})`
    : "";
  const kept = save && epoch > 1 ? `; ${save} still holds epoch ${epoch - 1}` : "";
  return new UserError(
    `the training loss became ${total} in epoch ${epoch}${where}: ` +
      `--lr ${lr} is too large for this run, try a smaller --lr${kept}`,
  );
}

// ---------------------------------------------------------------------------
// The summary

/** What a finished fast run reports, for `fastSummary`. */
interface FastRunResult {
  model: Model<unknown>;
  gpu: Gpu;
  data: Dataset;
  nTrain: number;
  nTest: number;
  config: TrainConfig;
  optimizer: OptimizerOptions;
  shuffle: boolean;
  epochs: EpochResult[];
  test: TrainSummary["test"];
  /** The checkpoint a `--resume` continued from. */
  resumedEpoch?: number;
  profile?: ProfileReport;
}

/** The `TrainSummary` of a fast run (MLP or CNN); model, optimiser and shuffle only when not the defaults. */
function fastSummary(r: FastRunResult): TrainSummary {
  return {
    trainer: "fast",
    adapter: r.gpu.description,
    data: { source: r.data.source, train: r.nTrain, test: r.nTest },
    config: {
      epochs: r.config.epochs,
      batchSize: r.config.batchSize,
      lr: r.config.lr,
      seed: r.config.seed,
      // The initial weights' name, unless they came from a file (or the model has no choice).
      ...(r.model.initName && !r.config.load && !r.config.resume
        ? { init: r.model.initName(r.config) }
        : {}),
      ...(r.config.hidden ? { hidden: r.config.hidden } : {}),
      ...(r.model.name !== "mlp" ? { model: r.model.name } : {}),
      ...(r.optimizer.optimizer !== OPTIMIZER_DEFAULTS.optimizer
        ? { optimizer: r.optimizer.optimizer }
        : {}),
      ...(r.shuffle ? { shuffle: r.shuffle } : {}),
    },
    epochs: r.epochs,
    test: r.test,
    ...(r.resumedEpoch !== undefined && r.config.save
      ? { resumed: { file: r.config.save, epoch: r.resumedEpoch } }
      : {}),
    ...(r.profile ? { profile: r.profile } : {}),
  };
}
