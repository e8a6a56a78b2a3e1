/**
 * `deno task fast --model cnn`: trains the CNN engine of fast/cnn/engine.ts
 * with checkpoints, the chart, progress, Ctrl-C and the test pass.
 *
 * @module
 */

import {
  CNN_LAYER_NAMES,
  cnnNamedTensors,
  type CnnParams,
  type CnnShape,
  decodeCnn,
  encodeCnn,
  initCnnParams,
  MNIST_CNN,
} from "../../shared/model/cnn.ts";
import type { TrainConfig } from "../../shared/io/cli.ts";
import { UserError } from "../../shared/io/errors.ts";
import { batchRanges } from "../../shared/model/mlp.ts";
import { type CnnOptions, type OptimizerOptions } from "../../shared/model/optim.ts";
import { formatProfile, GpuProfiler } from "../../shared/gpu/profiler.ts";
import { EpochInterrupted, type OptimizerState } from "../engine.ts";
import {
  checkSameSettings,
  checkWritable,
  fastSummary,
  firstBadLoss,
  interruptedError,
  nonFiniteLossError,
  parseHistory,
  readModelFile,
  writeFileAtomicOrFail,
  writePlot,
} from "../files.ts";
import { type EpochPoint, filtersSvg, formatConfusion } from "../../shared/io/report.ts";
import type { Tensor } from "../../shared/io/safetensors.ts";
import { shuffledIndices } from "../../shared/model/rng.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../../shared/io/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../../shared/io/prepare.ts";

import { type CnnEngine, createCnnEngine } from "./engine.ts";

/** `trainCnn`'s options: those of the MLP trainers, with CNN parameters and shape instead. */
export interface CnnTrainOptions extends Omit<TrainOptions, "params"> {
  /** Starting parameters; default `initCnnParams(config.seed, shape)` (or `--load`, `--resume`). */
  params?: CnnParams;
  /** The network's sizes when `params` is not given; default `MNIST_CNN`. */
  shape?: CnnShape;
  /**
   * Aborted (e.g. on Ctrl-C): the submitted steps finish, the rest of the
   * epoch is abandoned, nothing partial is saved, and a `UserError` with
   * exit code 130 says where the last checkpoint is.
   */
  signal?: AbortSignal;
}

/** Names of the optimiser-state tensors per parameter tensor, by optimiser. */
const STATE_PARTS = { sgd: [], momentum: ["velocity"], adam: ["m", "v"] } as const;

/** A checkpoint of the CNN: what `--resume` needs to continue exactly. */
export interface CnnCheckpoint {
  params: CnnParams;
  optimizerState: OptimizerState;
  /** Epochs done. */
  epoch: number;
  /** Loss (and test accuracy, when measured) of every epoch done. */
  history: EpochPoint[];
  /** The file's metadata (strings), including the settings `--resume` checks. */
  metadata: Record<string, string>;
}

/** The run settings a CNN checkpoint records (and `--resume` compares). */
export interface CnnCheckpointSettings {
  optimizer: OptimizerOptions;
  seed: number;
  lr: number;
  batchSize: number;
  shuffle: boolean;
  trainImages: number;
  testImages: number;
  dataSource: string;
}

/** The tensor names of the CNN's parameters in `cnnTensors` order. */
function cnnTensorNames(): string[] {
  return CNN_LAYER_NAMES.flatMap((l) => [`${l}.weight`, `${l}.bias`]);
}

/**
 * A CNN checkpoint as safetensors: the CNN as `encodeCnn` writes it
 * (`conv1.weight` `[25, 16]` …, metadata `format`, `shape`, `layout`), the
 * optimiser state as `optim.<tensor>.<part>` tensors (`velocity`, or Adam's
 * `m` and `v`, shaped as their tensor), and as metadata `model` "cnn", the
 * optimiser's settings, `epoch`, `optimizer_step`, the run's settings and
 * `history` (JSON).
 */
export function encodeCnnCheckpoint(
  params: CnnParams,
  state: OptimizerState,
  epoch: number,
  history: EpochPoint[],
  s: CnnCheckpointSettings,
): Uint8Array<ArrayBuffer> {
  const o = s.optimizer;
  const shapes = [...cnnNamedTensors(params).values()].map((t) => t.shape);
  const more = new Map<string, Tensor>();
  STATE_PARTS[o.optimizer].forEach((part, k) => {
    const list = k === 0 ? state.first : state.second;
    cnnTensorNames().forEach((name, t) => {
      more.set(`optim.${name}.${part}`, { shape: shapes[t], data: list[t] });
    });
  });
  return encodeCnn(params, {
    model: "cnn",
    optimizer: o.optimizer,
    momentum: String(o.momentum),
    beta1: String(o.beta1),
    beta2: String(o.beta2),
    eps: String(o.eps),
    epoch: String(epoch),
    optimizer_step: String(state.step),
    seed: String(s.seed),
    lr: String(s.lr),
    batch_size: String(s.batchSize),
    shuffle: String(s.shuffle),
    train_images: String(s.trainImages),
    test_images: String(s.testImages),
    data_source: s.dataSource,
    history: JSON.stringify(history),
  }, more);
}

/** Reads a checkpoint written by `encodeCnnCheckpoint`; a bad file is a one-line `UserError`. */
export function decodeCnnCheckpoint(
  bytes: Uint8Array,
  file: string,
  expect?: CnnShape,
): CnnCheckpoint {
  const { params, metadata, tensors } = decodeCnn(bytes, file, expect);
  const epoch = Number(metadata.epoch);
  const step = Number(metadata.optimizer_step);
  const optimizer = metadata.optimizer as keyof typeof STATE_PARTS;
  if (
    !Number.isSafeInteger(epoch) || epoch < 1 || !Number.isSafeInteger(step) || step < 0 ||
    !(optimizer in STATE_PARTS)
  ) {
    throw new UserError(
      `${file}: not a checkpoint of the fast trainer (no epoch, optimizer_step or optimizer in ` +
        `its metadata); use --load to start from its weights`,
    );
  }
  const lists = STATE_PARTS[optimizer].map((part) =>
    cnnTensorNames().map((name) => {
      const t = tensors.get(`optim.${name}.${part}`);
      if (!t || t.data.length !== tensors.get(name)!.data.length) {
        throw new UserError(`${file}: optimiser state 'optim.${name}.${part}' is missing or bad`);
      }
      return t.data;
    })
  );
  return {
    params,
    optimizerState: { step, first: lists[0] ?? [], second: lists[1] ?? [] },
    epoch,
    history: parseHistory<EpochPoint>(metadata.history),
    metadata,
  };
}

/**
 * Trains the CNN as `deno task fast --model cnn` does: per epoch a
 * `formatEpoch` line, at the end a `formatTest` line and the confusion
 * matrix, and the usual summary (trainer "fast", `test.confusion`). With
 * `shuffle`, epoch e (1-based) visits the training images in the order
 * `shuffledIndices(nTrain, seed + e)`.
 *
 * The fast MLP's features: `--save` (a checkpoint after every epoch,
 * written atomically), `--resume` (continue from it; `epochs` counts the
 * total), `--load` (start from a saved CNN's weights), `--plot` (loss and
 * test accuracy per epoch, and conv1's filters), a loss that is no longer
 * finite and `opts.signal` (Ctrl-C) as one-line errors.
 */
export async function trainCnn(
  config: TrainConfig & CnnOptions,
  opts: CnnTrainOptions = {},
): Promise<TrainSummary> {
  const { params: cnnParams, shape: shapeOpt, signal, ...rest } = opts;
  const expectShape = cnnParams?.shape ?? shapeOpt ?? MNIST_CNN;
  // Files first: a missing checkpoint or a file that cannot be written
  // should not wait for the data, the device and an epoch.
  for (const [flag, file] of [["--save", config.save], ["--plot", config.plot]] as const) {
    if (file) checkWritable(flag, file);
  }
  let checkpoint: CnnCheckpoint | undefined;
  let params = cnnParams;
  if (config.resume && config.save) {
    checkpoint = decodeCnnCheckpoint(
      await readModelFile(config.save, "--resume"),
      config.save,
      expectShape,
    );
    params = checkpoint.params;
  } else if (config.load) {
    params = decodeCnn(await readModelFile(config.load, "--load"), config.load, expectShape).params;
  }
  const run = await prepareRun(config, rest);
  const { gpu, data, nTrain, nTest, log } = run;
  const optimizer: OptimizerOptions = {
    optimizer: config.optimizer,
    momentum: config.momentum,
    beta1: config.beta1,
    beta2: config.beta2,
    eps: config.eps,
  };
  const shuffle = config.shuffle;
  const settings: CnnCheckpointSettings = {
    optimizer,
    seed: config.seed,
    lr: config.lr,
    batchSize: config.batchSize,
    shuffle,
    trainImages: nTrain,
    testImages: nTest,
    dataSource: data.source,
  };
  try {
    if (checkpoint && config.save) {
      const m = checkpoint.metadata;
      checkSameSettings(config.save, [
        ["--model", m.model, "cnn"],
        ["--optimizer", m.optimizer, optimizer.optimizer],
        ["--batch-size", m.batch_size, String(config.batchSize)],
        ["--seed", m.seed, String(config.seed)],
        ["--shuffle", m.shuffle, String(shuffle)],
        ["training images", m.train_images, String(nTrain)],
      ]);
      log(
        `resuming from ${config.save}: ${checkpoint.epoch} epoch${
          checkpoint.epoch === 1 ? "" : "s"
        } done, training to epoch ${config.epochs}`,
      );
    } else if (config.load) log(`starting from the weights in ${config.load}`);
  } catch (err) {
    if (!opts.gpu) gpu.device.destroy();
    throw err;
  }
  params ??= initCnnParams(config.seed, expectShape);
  const pixels = params.shape.height * params.shape.width;
  if (data.trainImages.length !== data.trainLabels.length * pixels) {
    if (!opts.gpu) gpu.device.destroy();
    throw new UserError(
      `training images are ${data.trainImages.length / data.trainLabels.length} bytes each; ` +
        `the CNN takes ${params.shape.height}×${params.shape.width}`,
    );
  }
  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  let profiling = config.profile; // the training epochs only, not the --plot test passes
  let engine: CnnEngine;
  try {
    engine = await createCnnEngine(gpu.device, {
      passTimestamps: config.profile
        ? (kernel, flops) => profiling ? profiler.passTimestamps(kernel, flops) : undefined
        : undefined,
      params,
      batchSize: config.batchSize,
      lr: config.lr,
      optimizer,
      shuffle,
      train: { images: data.trainImages, labels: data.trainLabels, n: nTrain },
      test: { images: data.testImages, labels: data.testLabels, n: nTest },
    });
  } catch (err) {
    profiler.destroy();
    if (!opts.gpu) gpu.device.destroy();
    throw err;
  }
  try {
    if (checkpoint) engine.writeOptimizerState(checkpoint.optimizerState);
    const batches = batchRanges(nTrain, config.batchSize).length;
    const tty = Deno.stderr.isTerminal();
    const epochs: EpochResult[] = [];
    const history: EpochPoint[] = checkpoint ? [...checkpoint.history] : [];
    let trainMs = 0;
    const firstEpoch = (checkpoint?.epoch ?? 0) + 1;
    if (checkpoint && firstEpoch > config.epochs) {
      log(`${config.save} already holds ${checkpoint.epoch} epochs; nothing left to train`);
    }
    const stop = signal ? () => signal.aborted : undefined;
    for (let epoch = firstEpoch; epoch <= config.epochs; epoch++) {
      if (signal?.aborted) throw interruptedError(epoch, config.save);
      const progress = epochProgress(epoch, batches);
      const t0 = performance.now();
      if (shuffle) engine.setOrder(shuffledIndices(nTrain, config.seed + epoch));
      let loss: number;
      try {
        loss = await engine.trainEpoch(tty ? (done) => progress.tick(done) : undefined, stop) /
          nTrain;
      } catch (err) {
        progress.clear();
        if (err instanceof EpochInterrupted) throw interruptedError(epoch, config.save);
        throw err;
      }
      progress.clear();
      const result = { epoch, loss, ms: performance.now() - t0 };
      trainMs += result.ms;
      if (!Number.isFinite(loss)) {
        const bad = firstBadLoss(await engine.readLosses(0, nTrain), config.batchSize);
        throw nonFiniteLossError(
          loss * nTrain,
          epoch,
          batches,
          bad,
          shuffle,
          config.lr,
          config.save,
        );
      }
      epochs.push(result);
      log(formatEpoch(result));
      await profiler.collect(); // outside the epoch's clock
      const point: EpochPoint = { epoch, loss };
      if (config.plot && nTest > 0) {
        // Outside the epoch's clock: the chart's accuracy per epoch.
        profiling = false;
        point.accuracy = await engine.evaluate() / nTest;
        profiling = config.profile;
      }
      history.push(point);
      if (config.save) {
        const bytes = encodeCnnCheckpoint(
          await engine.readParams(),
          await engine.readOptimizerState(),
          epoch,
          history,
          settings,
        );
        await writeFileAtomicOrFail(config.save, bytes, "--save");
      }
    }
    profiling = false;
    // The profile covers training only.
    const profile = config.profile ? profiler.report(trainMs) : undefined;
    const t0 = performance.now();
    const { correct, confusion } = await engine.evaluateConfusion();
    const test = {
      accuracy: nTest > 0 ? correct / nTest : 0,
      correct,
      total: nTest,
      ms: performance.now() - t0,
      ...(nTest > 0 ? { confusion } : {}),
    };
    log(formatTest(test));
    if (nTest > 0) log(formatConfusion(confusion));
    if (profile) log(formatProfile(profile));
    if (config.plot) {
      const s = engine.shape;
      const title = `CNN, ${optimizer.optimizer}, lr ${config.lr}, batch ${config.batchSize}` +
        `${shuffle ? ", shuffled" : ""}: ${nTrain} training / ${nTest} test images`;
      const filters = filtersSvg((await engine.readParams()).weights[0], s.kernel, s.c1);
      await writePlot(config.plot, history, title, filters);
      log(`chart written to ${config.plot}`);
    }
    return fastSummary({
      gpu,
      data,
      nTrain,
      nTest,
      config,
      optimizer,
      shuffle,
      epochs,
      test,
      resumedEpoch: checkpoint?.epoch,
      profile,
    });
  } finally {
    profiler.destroy();
    engine.destroy();
    // A device this run opened itself is closed with it; a caller's is left open.
    if (!opts.gpu) gpu.device.destroy();
  }
}
