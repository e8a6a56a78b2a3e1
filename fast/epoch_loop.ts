/**
 * The fast trainer's epochs, after the run has its engine (fast/run.ts):
 * one after another (a progress line on a terminal, Ctrl-C within an epoch)
 * or overlapped (on GPUs, each epoch submitted while the one before runs);
 * each finished epoch's loss checked, logged, charted (--plot) and saved
 * (--save); and the one-line errors a user meets there (Ctrl-C, a loss that
 * is no longer finite).
 *
 * Not here: the files and settings a run starts from (fast/start.ts), the
 * engine and the test pass (fast/run.ts), the GPU work of an epoch (the
 * model's engine, fast/engine.ts's contract).
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import { type Gpu, gpuChecked } from "../shared/gpu/device.ts";
import type { EpochPoint } from "../shared/io/report.ts";
import { shuffledIndices } from "../shared/model/rng.ts";
import { epochProgress, type EpochResult } from "../shared/io/summary.ts";
import { formatEpoch } from "../shared/io/prepare.ts";
import { type CheckpointSettings, encodeCheckpoint } from "./checkpoint.ts";
import {
  type Engine,
  EpochInterrupted,
  type OverlappingEngine,
  type SubmittedEpoch,
} from "./engine.ts";
import { writeFileAtomicOrFail } from "./files.ts";
import type { Model } from "./run.ts";

// ---------------------------------------------------------------------------
// Epochs

/** The state of a run's epochs, shared by the two ways of running them. */
export interface EpochLoop<P> {
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
export async function runEpochs<P>(loop: EpochLoop<P>): Promise<void> {
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
export async function runOverlappedEpochs<P>(
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
