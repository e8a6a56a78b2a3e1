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
 * Here: the steps above in order, the test pass, the chart and the summary.
 * Not here: the files and checkpoint settings a run starts from
 * (fast/start.ts), the epochs and their one-line errors (fast/epoch_loop.ts).
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { type Gpu, gpuChecked } from "../shared/gpu/device.ts";
import { checkModelFits, type Dataset } from "../shared/data/dataset.ts";
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
import type { EpochResult, TrainSummary } from "../shared/io/summary.ts";
import { formatTest, prepareRun, type TrainOptions } from "../shared/io/prepare.ts";
import type { InitName } from "../shared/model/mlp.ts";
import type { ModelCodec } from "./checkpoint.ts";
import type { Engine, OverlappingEngine } from "./engine.ts";
import { writePlot } from "./files.ts";
import { type EpochLoop, runEpochs, runOverlappedEpochs } from "./epoch_loop.ts";
import { startingPoint, startSettings } from "./start.ts";

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
   * Throws a one-line `UserError` when the network cannot fit `gpu` (with
   * `nTest` test images), before its weights are made: `params`' (a file's, a
   * caller's) when given, else `config`'s for `data`.
   */
  checkDevice?(gpu: Gpu, config: TrainConfig, data: Dataset, nTest: number, params?: P): void;
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
  using _ownDevice = ownDevice(gpu, opts.gpu);
  // A model from a file must take the data's images and every label in it.
  if (file) checkModelFits(file.shape, file.name, data);
  model.checkDevice?.(gpu, config, data, nTest, params);
  const settings = startSettings(model, config, checkpoint, {
    optimizer,
    shuffle,
    data,
    nTrain,
    nTest,
    log,
  });

  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  let profiling = false; // the training epochs only: not while tuning, not the --plot tests
  const overlap = (opts.overlapEpochs ?? !gpu.software) && !Deno.stderr.isTerminal() &&
    !config.save && !config.plot && !config.profile;
  const engine = await createEngine(model, profiler, () => profiling, {
    gpu,
    params: params ?? model.initialParams(config, data),
    data,
    nTrain,
    nTest,
    config,
    optimizer,
    shuffle,
    overlap,
    log,
  });
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
      await writeChart(model, engine, config, loop.history, { optimizer, shuffle, nTrain, nTest });
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

/** A device this run opened (none was `given`) is destroyed when the run ends, however it ends. */
function ownDevice(gpu: Gpu, given: Gpu | undefined): Disposable {
  return {
    [Symbol.dispose]: () => {
      if (!given) gpu.device.destroy();
    },
  };
}

/**
 * The model's engine for `setup`, with the profiler's hooks (pass timestamps
 * only while `profiling()` says so); if making it fails, the profiler goes too.
 */
async function createEngine<P>(
  model: Model<P>,
  profiler: GpuProfiler,
  profiling: () => boolean,
  setup: Omit<EngineSetup<P>, "passTimestamps" | "afterSubmit">,
): Promise<Engine<P>> {
  try {
    return await model.createEngine({
      ...setup,
      passTimestamps: profiler.enabled
        ? (k, flops) => profiling() ? profiler.passTimestamps(k, flops) : undefined
        : undefined,
      afterSubmit: profiler.enabled ? () => profiler.collect() : undefined,
    });
  } catch (err) {
    profiler.destroy();
    throw err;
  }
}

/** --plot: the chart of `history` at `config.plot`, titled with the run's settings, and the model's extra. */
async function writeChart<P>(
  model: Model<P>,
  engine: Engine<P>,
  config: TrainConfig,
  history: EpochPoint[],
  { optimizer, shuffle, nTrain, nTest }: {
    optimizer: OptimizerOptions;
    shuffle: boolean;
    nTrain: number;
    nTest: number;
  },
): Promise<void> {
  const title = `${model.title}, ${optimizer.optimizer}, lr ${config.lr}, batch ` +
    `${config.batchSize}${shuffle ? ", shuffled" : ""}: ${nTrain} training / ${nTest} test images`;
  const extra = model.chartExtra?.(await engine.readParams());
  await writePlot(config.plot!, history, title, extra);
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
