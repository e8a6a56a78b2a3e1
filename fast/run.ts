/**
 * The fast trainer: same model, same initial weights, same batches in the
 * same order as the slow trainer, computed with fused, tiled kernels,
 * whole chunks of steps per command buffer and one readback per epoch.
 *
 * `trainFast` prepares the run (shared/io/prepare.ts), picks a matmul variant per
 * shape (autotuned and cached per adapter, or the adapter-type default with
 * `--no-tune`), then trains with the engine of fast/mlp/engine.ts, which tests
 * also drive step by step. Around the engine: the optimiser and shuffling
 * flags, checkpoints (`--save` every epoch, `--resume`, `--load`), the
 * confusion matrix and the `--plot` chart, and the faults a user can meet (a
 * loss that is no longer finite, Ctrl-C, a device that refuses the buffers)
 * as one-line errors. `--model cnn` hands over to `trainCnn` (fast/cnn/engine.ts).
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import { gpuChecked } from "../shared/gpu/device.ts";
import { LAYER_SIZES, type MlpParams } from "../shared/model/mlp.ts";
import { OPTIMIZER_DEFAULTS, type OptimizerOptions } from "../shared/model/optim.ts";
import { formatProfile, GpuProfiler, type ProfileReport } from "../shared/gpu/profiler.ts";
import { type EpochPoint, formatConfusion } from "../shared/io/report.ts";
import { shuffledIndices } from "../shared/model/rng.ts";
import {
  decodeMlp,
  decodeSafetensors,
  encodeMlp,
  encodeSafetensors,
  layerTensorNames,
} from "../shared/io/safetensors.ts";
import { epochProgress, type EpochResult, type TrainSummary } from "../shared/io/summary.ts";
import { formatEpoch, formatTest, prepareRun, type TrainOptions } from "../shared/io/prepare.ts";
import { trainCnn } from "./cnn/train.ts";
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
} from "./files.ts";
import { EpochInterrupted, type OptimizerState } from "./engine.ts";
import {
  createMlpEngine,
  type EngineData,
  type MlpEngine,
  type SubmittedEpoch,
  TUNE_SCREEN_ROWS,
} from "./mlp/engine.ts";
import { activationRows, EPOCH_READBACKS } from "./mlp/buffers.ts";
import { type Slot, SLOTS, slotShapes } from "./mlp/matmul.ts";
import { cachedPlan, TUNE_CACHE_PATH, tuneSlots } from "./mlp/tuner.ts";

/** Options of `trainFast` beyond `TrainOptions`. */
export interface FastOptions extends TrainOptions {
  /** The tuning cache; `null` neither reads nor writes one. Default `TUNE_CACHE_PATH`. */
  tuneCachePath?: string | null;
  /**
   * Aborted (e.g. on Ctrl-C): the running chunk of steps finishes, the rest
   * of the epoch is abandoned, nothing partial is saved, and a `UserError`
   * with exit code 130 says where the last checkpoint is.
   */
  signal?: AbortSignal;
  /**
   * Whether epochs may overlap: each one encoded whole while the one before
   * runs and its loss read back while the next runs; Ctrl-C then stops
   * between epochs (default: on GPUs, not on CPU adapters). Never with a
   * progress line, `--save`, `--plot` or `--profile`.
   */
  overlapEpochs?: boolean;
}

/** The optimiser settings of `config`, with shared/model/optim.ts's defaults. */
export function optimizerOf(config: TrainConfig): OptimizerOptions {
  return {
    optimizer: config.optimizer ?? OPTIMIZER_DEFAULTS.optimizer,
    momentum: config.momentum ?? OPTIMIZER_DEFAULTS.momentum,
    beta1: config.beta1 ?? OPTIMIZER_DEFAULTS.beta1,
    beta2: config.beta2 ?? OPTIMIZER_DEFAULTS.beta2,
    eps: config.eps ?? OPTIMIZER_DEFAULTS.eps,
  };
}

/** Names of the optimiser-state tensors per parameter tensor, by optimiser. */
const STATE_PARTS = { sgd: [], momentum: ["velocity"], adam: ["m", "v"] } as const;

/** The parameter tensor names in the engine's packed order W1, b1, W2, b2, W3, b3. */
function tensorNames(layers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < layers; l++) {
    const n = layerTensorNames(l);
    out.push(n.weight, n.bias);
  }
  return out;
}

/** A checkpoint of the fast MLP trainer: what `--resume` needs to continue exactly. */
export interface Checkpoint {
  params: MlpParams;
  optimizerState: OptimizerState;
  /** Epochs done. */
  epoch: number;
  /** Loss (and test accuracy, when measured) of every epoch done. */
  history: EpochPoint[];
  /** The file's metadata (strings), including the settings `--resume` checks. */
  metadata: Record<string, string>;
}

/** The run settings a checkpoint records (and `--resume` compares). */
export interface CheckpointSettings {
  optimizer: OptimizerOptions;
  seed: number;
  lr: number;
  batchSize: number;
  shuffle: boolean;
  trainImages: number;
  testImages: number;
  dataSource: string;
}

/**
 * A checkpoint as safetensors: the MLP as `encodeMlp` writes it (so `deno
 * task predict --model FILE` reads it), plus the optimiser state as
 * `optim.<tensor>.<part>` tensors (`velocity`, or Adam's `m` and `v`) and
 * the settings, epoch, optimiser step and history as metadata.
 */
export function encodeCheckpoint(
  params: MlpParams,
  state: OptimizerState,
  epoch: number,
  history: EpochPoint[],
  s: CheckpointSettings,
): Uint8Array<ArrayBuffer> {
  const o = s.optimizer;
  const { tensors, metadata } = decodeSafetensors(
    encodeMlp(params, {
      model: "mlp",
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
    }),
    "checkpoint",
  );
  const names = tensorNames(params.weights.length);
  STATE_PARTS[o.optimizer].forEach((part, k) => {
    const list = k === 0 ? state.first : state.second;
    names.forEach((name, t) => {
      tensors.set(`optim.${name}.${part}`, { shape: tensors.get(name)!.shape, data: list[t] });
    });
  });
  return encodeSafetensors(tensors, metadata);
}

/** Reads a checkpoint written by `encodeCheckpoint`; a bad file is a one-line `UserError`. */
export function decodeCheckpoint(bytes: Uint8Array, file: string): Checkpoint {
  const { params, metadata } = decodeMlp(bytes, file, LAYER_SIZES);
  const { tensors } = decodeSafetensors(bytes, file);
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
  const names = tensorNames(params.weights.length);
  const lists = STATE_PARTS[optimizer].map((part) =>
    names.map((name) => {
      const t = tensors.get(`optim.${name}.${part}`);
      if (!t || t.data.length !== tensors.get(name)!.data.length) {
        throw new UserError(`${file}: optimiser state 'optim.${name}.${part}' is missing or bad`);
      }
      return t.data;
    })
  );
  // A bad history only loses the chart its earlier epochs; training is unaffected.
  const history = parseHistory<EpochPoint>(metadata.history);
  return {
    params,
    optimizerState: { step, first: lists[0] ?? [], second: lists[1] ?? [] },
    epoch,
    history,
    metadata,
  };
}

/** Throws a one-line `UserError` when checkpoint `c` was made with other settings than `s`. */
export function checkResumable(c: Checkpoint, file: string, s: CheckpointSettings): void {
  const m = c.metadata;
  checkSameSettings(file, [
    ["--model", m.model, "mlp"],
    ["--optimizer", m.optimizer, s.optimizer.optimizer],
    ["--batch-size", m.batch_size, String(s.batchSize)],
    ["--seed", m.seed, String(s.seed)],
    ["--shuffle", m.shuffle, String(s.shuffle)],
    ["training images", m.train_images, String(s.trainImages)],
  ]);
}

/**
 * Trains the MLP on the GPU the fast way and returns the summary. Logs one
 * line per epoch and the test accuracy (and a confusion matrix), like the
 * slow trainer. With `config.model` "cnn", trains the CNN of fast/cnn/engine.ts.
 */
export async function trainFast(
  config: TrainConfig,
  opts: FastOptions = {},
): Promise<TrainSummary> {
  const optimizer = optimizerOf(config);
  const shuffle = config.shuffle ?? false;
  if (config.model === "cnn") {
    // The CNN has its own checkpoints, chart, faults and Ctrl-C (fast/cnn/engine.ts).
    return trainCnn({ ...config, ...optimizer, shuffle }, {
      gpu: opts.gpu,
      data: opts.data,
      log: opts.log,
      signal: opts.signal,
    });
  }
  // Files first: a missing checkpoint or a file that cannot be written
  // should not wait for the data, the device and an epoch.
  for (const [flag, file] of [["--save", config.save], ["--plot", config.plot]] as const) {
    if (file) checkWritable(flag, file);
  }
  let checkpoint: Checkpoint | undefined;
  let params = opts.params;
  if (config.resume && config.save) {
    checkpoint = decodeCheckpoint(await readModelFile(config.save, "--resume"), config.save);
    params = checkpoint.params;
  } else if (config.load) {
    params = decodeMlp(await readModelFile(config.load, "--load"), config.load, LAYER_SIZES)
      .params;
  }
  const run = await prepareRun(config, { ...opts, params });
  const { gpu, data, nTrain, nTest, log } = run;
  // A device this run opened is destroyed when it ends, however it ends (as slow and CNN do).
  using _ownDevice = {
    [Symbol.dispose]: () => {
      if (!opts.gpu) gpu.device.destroy();
    },
  };
  const settings: CheckpointSettings = {
    optimizer,
    seed: config.seed,
    lr: config.lr,
    batchSize: config.batchSize,
    shuffle,
    trainImages: nTrain,
    testImages: nTest,
    dataSource: data.source,
  };
  if (checkpoint && config.save) {
    checkResumable(checkpoint, config.save, settings);
    log(
      `resuming from ${config.save}: ${checkpoint.epoch} epoch${
        checkpoint.epoch === 1 ? "" : "s"
      } done, training to epoch ${config.epochs}`,
    );
  } else if (config.load) log(`starting from the weights in ${config.load}`);
  const engineData: EngineData = { ...data, nTrain, nTest };
  const cachePath = opts.tuneCachePath === undefined ? TUNE_CACHE_PATH : opts.tuneCachePath;
  const { batchSize } = config;
  const maxRows = activationRows(batchSize, nTest);
  // Timing the variants: on GPUs, or with --tune; a cached choice is used in either case.
  const timing = config.tune || !gpu.software;
  const cached = config.noTune
    ? { known: {}, missing: [] }
    : cachedPlan(gpu, slotShapes(run.params.sizes), batchSize, maxRows, cachePath);
  const { known } = cached;
  const missing = timing ? cached.missing : [];
  const profiler = new GpuProfiler(gpu, { enabled: config.profile });
  let profiling = false; // not while tuning: from the first epoch on
  const smaller = `--batch-size ${batchSize} (a smaller --batch-size needs less GPU memory)`;
  if (missing.length > 0) {
    log(
      `compiling and timing the matmul variants for ${missing.join(", ")} on this adapter ` +
        `(once: remembered afterwards; minutes on a CPU adapter with a cold shader cache)`,
    );
  }
  const tty = Deno.stderr.isTerminal();
  // Epochs overlap on GPUs (see the epoch loop) unless something needs each one finished
  // before the next starts: the progress line, checkpoints, the chart's per-epoch accuracy, the
  // profile. (CPU adapters run a submit to its end before returning: nothing to overlap there,
  // and Ctrl-C stops within the epoch.)
  const overlap = (opts.overlapEpochs ?? !gpu.software) && !tty && !config.save &&
    !config.plot && !config.profile;
  // When set-up fails, what was made is freed before the error goes on.
  let made: MlpEngine | undefined;
  const trainer = await gpuChecked(
    gpu.device,
    `setting up the fast trainer for ${nTrain} images at ${smaller}`,
    async () =>
      made = await createMlpEngine(gpu, run.params, engineData, {
        batchSize,
        lr: config.lr,
        plan: known,
        tuneSlots: missing,
        optimizer,
        shuffle,
        overlapEpochs: overlap,
        // The profile covers the training epochs only (as TrainSummary.profile says).
        passTimestamps: profiler.enabled
          ? (k, flops) => profiling ? profiler.passTimestamps(k, flops) : undefined
          : undefined,
        afterSubmit: profiler.enabled ? () => profiler.collect() : undefined,
      }),
  ).catch((err) => {
    made?.destroy();
    profiler.destroy();
    throw err;
  });
  try {
    if (checkpoint) trainer.writeOptimizerState(checkpoint.optimizerState);
    const tuned = await gpuChecked(
      gpu.device,
      `timing the matmul variants at ${smaller}`,
      async () => {
        const results = await tuneSlots(gpu, trainer, missing, batchSize, cachePath, log);
        // Run each chosen kernel that tuning did not run once (an lr-0 step entry:
        // the weights are untouched), so that a CPU adapter's compile on first use
        // (seconds for the unrolled texture kernels, on a machine that has not
        // compiled them before) is start-up time rather than part of epoch 1.
        for (const slot of SLOTS) {
          if (!results[slot]) {
            await trainer.timeVariant(
              slot,
              trainer.plan[slot],
              Math.min(TUNE_SCREEN_ROWS, batchSize),
            );
          }
        }
        return results;
      },
    );
    profiling = profiler.enabled;
    const how = (s: Slot) => {
      if (config.noTune || (!timing && !known[s])) return "default";
      const t = tuned[s];
      if (!t) return "cached";
      const ms = t.ms[trainer.plan[s].name];
      return ms === undefined ? "tuned" : `tuned, ${ms.toFixed(1)} ms`;
    };
    log(
      `matmul variants: ${SLOTS.map((s) => `${s} ${trainer.plan[s].name} (${how(s)})`).join(", ")}`,
    );
    const epochs: EpochResult[] = [];
    const history: EpochPoint[] = checkpoint ? [...checkpoint.history] : [];
    let trainMs = 0;
    const firstEpoch = (checkpoint?.epoch ?? 0) + 1;
    if (checkpoint && firstEpoch > config.epochs) {
      log(`${config.save} already holds ${checkpoint.epoch} epochs; nothing left to train`);
    }
    const stop = opts.signal ? () => opts.signal!.aborted : undefined;
    /** Logs a finished epoch after checking its loss; charts and saves it when asked. */
    const finish = async (
      epoch: number,
      total: number,
      ms: number,
      losses: (start: number, count: number) => Promise<Float32Array>,
    ) => {
      trainMs += ms;
      if (!Number.isFinite(total)) {
        const bad = firstBadLoss(await losses(0, nTrain), batchSize);
        throw nonFiniteLossError(
          total,
          epoch,
          trainer.batches.length,
          bad,
          shuffle,
          config.lr,
          config.save,
        );
      }
      const result = { epoch, loss: total / nTrain, ms };
      epochs.push(result);
      log(formatEpoch(result));
      const point: EpochPoint = { epoch, loss: result.loss };
      if (config.plot && nTest > 0) {
        // Outside the epoch's clock: the chart's accuracy per epoch.
        point.accuracy = await trainer.evaluate() / nTest;
      }
      history.push(point);
      if (config.save) {
        const [p, state] = [await trainer.readParams(), await trainer.readOptimizerState()];
        await writeCheckpoint(config.save, encodeCheckpoint(p, state, epoch, history, settings));
      }
    };
    if (overlap) {
      // Each epoch is one command buffer, encoded while the one before runs on the GPU, and
      // submitted as soon as that one is done: in Deno, starting its loss readback (mapAsync)
      // returns only then (a blocking device poll), and the readback resolves ~10 ms later
      // (the poll loop's sleep) while the next epoch runs. Lines and checks follow up to two
      // epochs behind. An epoch's time runs from the end of the one before (for the first,
      // from here) to the end of its own.
      type Running = {
        epoch: number;
        submitted: SubmittedEpoch;
        loss?: Promise<number>;
        ms: number;
      };
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
        await finish(r.epoch, await r.loss!, r.ms, r.submitted.readLosses);
      };
      const settleAll = async () => {
        while (running.length > 0) await settleOldest();
      };
      for (let epoch = firstEpoch; epoch <= config.epochs; epoch++) {
        if (opts.signal?.aborted) {
          await settleAll();
          throw interruptedError(epoch, config.save);
        }
        let submitted: SubmittedEpoch;
        try {
          submitted = await gpuChecked(gpu.device, `training epoch ${epoch}`, () => {
            if (shuffle) trainer.setOrder(shuffledIndices(nTrain, config.seed + epoch));
            const encoded = trainer.encodeEpoch();
            const previous = running.at(-1);
            if (previous) end(previous);
            return encoded.submit();
          });
        } catch (err) {
          await settleAll();
          throw err;
        }
        running.push({ epoch, submitted, ms: 0 });
        // Epoch e − 2's readback is done with before epoch e + 1 reuses its buffers.
        if (running.length >= EPOCH_READBACKS) await settleOldest();
      }
      await settleAll();
    }
    for (let epoch = firstEpoch; epoch <= config.epochs && !overlap; epoch++) {
      const interrupted = () => interruptedError(epoch, config.save);
      if (opts.signal?.aborted) throw interrupted();
      const progress = epochProgress(epoch, trainer.batches.length);
      const t0 = performance.now();
      let total: number;
      try {
        total = await gpuChecked(gpu.device, `training epoch ${epoch}`, () => {
          if (shuffle) trainer.setOrder(shuffledIndices(nTrain, config.seed + epoch));
          return trainer.trainEpoch(tty ? (done) => progress.tick(done) : undefined, stop);
        });
      } catch (err) {
        progress.clear();
        if (err instanceof EpochInterrupted) throw interrupted();
        throw err;
      }
      const ms = performance.now() - t0;
      progress.clear();
      await finish(epoch, total, ms, (s, c) => trainer.readLosses(s, c));
    }
    let profile: ProfileReport | undefined;
    if (profiling) {
      await profiler.collect();
      profile = profiler.report(trainMs);
      profiling = false;
    }
    const t0 = performance.now();
    const { correct, confusion } = nTest > 0
      ? await gpuChecked(gpu.device, "testing", () => trainer.evaluateConfusion())
      : { correct: 0, confusion: undefined };
    const test = {
      accuracy: nTest > 0 ? correct / nTest : 0,
      correct,
      total: nTest,
      ms: performance.now() - t0,
      ...(confusion ? { confusion } : {}),
    };
    log(formatTest(test));
    if (confusion) log(formatConfusion(confusion));
    if (profile) log(formatProfile(profile));
    if (config.plot) {
      const title = `MLP, ${optimizer.optimizer}, lr ${config.lr}, batch ${batchSize}` +
        `${shuffle ? ", shuffled" : ""}: ${nTrain} training / ${nTest} test images`;
      await writePlot(config.plot, history, title);
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
    trainer.destroy();
    profiler.destroy();
  }
}

function writeCheckpoint(file: string, bytes: Uint8Array): Promise<void> {
  return writeFileAtomicOrFail(file, bytes, "--save");
}
