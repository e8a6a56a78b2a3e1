/**
 * What the fast trainer's two models (the MLP of fast/run.ts, the CNN of
 * fast/cnn/engine.ts) share around their epoch loops: the files they read and
 * write (`--save`, `--load`, `--resume`, `--plot`) and the one-line errors of
 * the faults a user can meet (a loss that is no longer finite, Ctrl-C, a
 * checkpoint made with other flags).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import { writeFileAtomic } from "../shared/io/files.ts";
import type { Gpu } from "../shared/gpu/device.ts";
import type { MnistData } from "../shared/data/mnist.ts";
import type { OptimizerOptions } from "../shared/model/optim.ts";
import type { ProfileReport } from "../shared/gpu/profiler.ts";
import { type EpochPoint, lossAccuracySvg, type SvgStrip } from "../shared/io/report.ts";
import type { EpochResult, TrainSummary } from "../shared/io/summary.ts";

/** Throws a one-line `UserError` when `file` may not be written (permission, missing directory). */
export function checkWritable(flag: string, file: string): void {
  const dir = dirname(resolve(file));
  if (Deno.permissions.querySync({ name: "write", path: file }).state !== "granted") {
    throw new UserError(
      `${flag} ${file}: no permission to write there (deno run --allow-write=${dir} …)`,
    );
  }
  let isDir = false;
  try {
    isDir = Deno.statSync(dir).isDirectory;
  } catch { /* reported below */ }
  if (!isDir) throw new UserError(`${flag} ${file}: directory ${dir} does not exist`);
}

/** The bytes of a model file named by `flag` (`--resume`, `--load`); a missing file is one line. */
export async function readModelFile(file: string, flag: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(
        flag === "--resume"
          ? `--resume: ${file} does not exist (nothing to resume; run without --resume to start)`
          : `${flag} ${file}: no such file`,
      );
    }
    throw new UserError(`${flag} ${file}: cannot read (${(err as Error).message})`);
  }
}

/** `writeFileAtomic`, with a failure as a one-line `UserError` naming `flag` and `file`. */
export async function writeFileAtomicOrFail(
  file: string,
  bytes: Uint8Array,
  flag: string,
): Promise<void> {
  try {
    await writeFileAtomic(file, bytes);
  } catch (err) {
    const why = err instanceof Deno.errors.NotCapable
      ? "no write permission (run with --allow-write)"
      : (err as Error).message.split("\n")[0];
    throw new UserError(`${flag} ${file}: cannot write (${why})`);
  }
}

/**
 * The error of a run stopped (Ctrl-C) during `epoch`: exit code 130 and
 * where the last checkpoint is (nothing is written mid-epoch, so the file
 * at `save` holds epoch − 1, if any).
 */
export function interruptedError(epoch: number, save: string | undefined): UserError {
  const kept = !save
    ? "nothing saved (no --save)"
    : epoch - 1 >= 1
    ? `checkpoint at ${save} holds epoch ${epoch - 1}; continue with --resume`
    : `no checkpoint yet (${save} is first written at the end of epoch 1)`;
  return new UserError(`interrupted during epoch ${epoch}; ${kept}`, 130);
}

/** Where the first non-finite per-image loss of an epoch was. */
export interface BadLoss {
  /** 1-based step of the epoch. */
  step: number;
  /** Position in the epoch's order (the image id when not shuffled). */
  position: number;
  value: number;
}

/** The first non-finite entry of an epoch's per-image losses (by position), if any. */
export function firstBadLoss(losses: ArrayLike<number>, batchSize: number): BadLoss | undefined {
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
export function nonFiniteLossError(
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

/**
 * Throws a one-line `UserError` when a checkpoint's recorded settings differ
 * from this run's: `pairs` are `[what, saved, now]` (e.g. `["--seed", "5", "7"]`).
 */
export function checkSameSettings(
  file: string,
  pairs: readonly (readonly [string, string | undefined, string])[],
): void {
  for (const [what, saved, now] of pairs) {
    if (saved !== now) {
      throw new UserError(
        `--resume: ${file} was saved with ${what} ${saved ?? "(unknown)"}, this run has ${now}; ` +
          `use the same flags, or start afresh without --resume`,
      );
    }
  }
}

/** History of a checkpoint's metadata (JSON); a bad one is an empty history (only the chart needs it). */
export function parseHistory<T>(json: string | undefined): T[] {
  try {
    const h = JSON.parse(json ?? "[]");
    return Array.isArray(h) ? h : [];
  } catch {
    return [];
  }
}

/** Writes the `--plot` chart (loss and accuracy per epoch, and any `extra` SVG below it). */
export async function writePlot(
  file: string,
  history: EpochPoint[],
  title: string,
  extra?: SvgStrip,
): Promise<void> {
  await writeFileAtomicOrFail(
    file,
    new TextEncoder().encode(lossAccuracySvg(history, title, extra)),
    "--plot",
  );
}

/** What a finished fast run reports, for `fastSummary`. */
export interface FastRunResult {
  gpu: Gpu;
  data: MnistData;
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

/** The `TrainSummary` of a fast run (MLP or CNN); optimiser and shuffle only when not the defaults. */
export function fastSummary(r: FastRunResult): TrainSummary {
  return {
    trainer: "fast",
    adapter: r.gpu.description,
    data: { source: r.data.source, train: r.nTrain, test: r.nTest },
    config: {
      epochs: r.config.epochs,
      batchSize: r.config.batchSize,
      lr: r.config.lr,
      seed: r.config.seed,
      // The initial weights' name, unless they came from a file (or are the CNN's own).
      ...(r.config.model === "cnn" || r.config.load || r.config.resume
        ? {}
        : { init: r.config.init ?? "original" }),
      ...(r.optimizer.optimizer !== "sgd" ? { optimizer: r.optimizer.optimizer } : {}),
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
