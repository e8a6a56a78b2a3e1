/**
 * Checkpoints of the fast trainer, for every model: what `--save` writes at
 * the end of each epoch and `--resume` continues from, exactly.
 *
 * A checkpoint is the model file `deno task predict --model FILE` reads (the
 * MLP's or the CNN's tensors and metadata), with:
 * - the optimiser's state as `optim.<tensor>.<part>` tensors, shaped as
 *   their parameter tensor (the parts of shared/model/optim.ts's `OPTIMIZERS`
 *   table: momentum's `velocity`, or Adam's `m` and `v`);
 * - metadata `model`, the optimiser's name and hyper-parameters (those with
 *   `inEveryCheckpoint`, and those it reads), `epoch`, `optimizer_step`,
 *   the run's settings (seed, lr, batch size, shuffle, data) and `history`
 *   (JSON: loss and accuracy per epoch, for the chart).
 *
 * Not here: which file, when, and what a failed write says (fast/run.ts,
 * fast/files.ts).
 *
 * @module
 */

import type { ImageSize, Tensor } from "../shared/io/safetensors.ts";
import type { DataShape } from "../shared/data/dataset.ts";
import { UserError } from "../shared/io/errors.ts";
import type { EpochPoint } from "../shared/io/report.ts";
import {
  HYPER_NAMES,
  HYPER_PARAMETERS,
  isOptimizerName,
  type OptimizerOptions,
  OPTIMIZERS,
} from "../shared/model/optim.ts";
import type { OptimizerState } from "./engine.ts";

/** How a model is written to and read from safetensors (fast/mlp/model.ts, fast/cnn/model.ts). */
export interface ModelCodec<P> {
  /** `"mlp"` or `"cnn"`: the checkpoint's `model`. */
  readonly name: "mlp" | "cnn";
  /** The parameter tensors by file name, in the engines' order W1, b1, …, WL, bL. */
  tensors(params: P): Map<string, Tensor>;
  /**
   * The model file: its tensors and metadata (the images it takes are
   * `image`), then `extra` metadata and `more` tensors.
   */
  encode(
    params: P,
    image: ImageSize,
    extra: Record<string, string>,
    more: Map<string, Tensor>,
  ): Uint8Array;
  /**
   * Reads a model file, built as the file says, with the image size and
   * classes it takes (`shape`); a file of another model is a one-line `UserError`.
   */
  decode(
    bytes: Uint8Array,
    file: string,
  ): {
    params: P;
    shape: DataShape;
    metadata: Record<string, string>;
    tensors: Map<string, Tensor>;
  };
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
  /** The images' height and width (the MLP's file records them unless 28 × 28). */
  image: ImageSize;
}

/** A checkpoint read back: what `--resume` needs to continue exactly. */
export interface Checkpoint<P> {
  params: P;
  /** The image size and classes the model takes. */
  shape: DataShape;
  optimizerState: OptimizerState;
  /** Epochs done. */
  epoch: number;
  /** Loss (and test accuracy, when measured) of every epoch done. */
  history: EpochPoint[];
  /** The file's metadata (strings), including the settings `--resume` checks. */
  metadata: Record<string, string>;
}

/** A checkpoint of `model` after `epoch` epochs (see the module doc). */
export function encodeCheckpoint<P>(
  model: ModelCodec<P>,
  params: P,
  state: OptimizerState,
  epoch: number,
  history: EpochPoint[],
  s: CheckpointSettings,
): Uint8Array {
  const o = s.optimizer;
  const optimizer = OPTIMIZERS[o.optimizer];
  const shapes = [...model.tensors(params)].map(([name, t]) => [name, t.shape] as const);
  const more = new Map<string, Tensor>();
  optimizer.state.forEach((part, k) => {
    shapes.forEach(([name, shape], t) => {
      more.set(`optim.${name}.${part.name}`, { shape, data: state.parts[k][t] });
    });
  });
  const hyper = HYPER_NAMES
    .filter((h) => HYPER_PARAMETERS[h].inEveryCheckpoint || optimizer.hyper.includes(h))
    .map((h) => [HYPER_PARAMETERS[h].flag.replaceAll("-", "_"), String(o[h])]);
  return model.encode(params, s.image, {
    model: model.name,
    optimizer: o.optimizer,
    ...Object.fromEntries(hyper),
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

/** Reads a checkpoint written by `encodeCheckpoint`; a bad file is a one-line `UserError`. */
export function decodeCheckpoint<P>(
  model: ModelCodec<P>,
  bytes: Uint8Array,
  file: string,
): Checkpoint<P> {
  const { params, shape, metadata, tensors } = model.decode(bytes, file);
  const epoch = Number(metadata.epoch);
  const step = Number(metadata.optimizer_step);
  const optimizer = metadata.optimizer ?? "";
  if (
    !Number.isSafeInteger(epoch) || epoch < 1 || !Number.isSafeInteger(step) || step < 0 ||
    !isOptimizerName(optimizer)
  ) {
    throw new UserError(
      `${file}: not a checkpoint of the fast trainer (no epoch, optimizer_step or optimizer in ` +
        `its metadata); use --load to start from its weights`,
    );
  }
  const names = [...model.tensors(params).keys()];
  const parts = OPTIMIZERS[optimizer].state.map((part) =>
    names.map((name) => {
      const key = `optim.${name}.${part.name}`;
      const t = tensors.get(key);
      if (!t || t.data.length !== tensors.get(name)!.data.length) {
        throw new UserError(`${file}: optimiser state '${key}' is missing or bad`);
      }
      return t.data;
    })
  );
  return {
    params,
    shape,
    optimizerState: { step, parts },
    epoch,
    // A bad history only loses the chart its earlier epochs; training is unaffected.
    history: parseHistory(metadata.history),
    metadata,
  };
}

/**
 * Throws a one-line `UserError` when checkpoint `c` of `model` was made with
 * other settings than this run's `s`.
 */
export function checkResumable(
  model: "mlp" | "cnn",
  c: Checkpoint<unknown>,
  file: string,
  s: CheckpointSettings,
): void {
  const m = c.metadata;
  const pairs: [string, string | undefined, string][] = [
    ["--model", m.model, model],
    ["--optimizer", m.optimizer, s.optimizer.optimizer],
    ["--batch-size", m.batch_size, String(s.batchSize)],
    ["--seed", m.seed, String(s.seed)],
    ["--shuffle", m.shuffle, String(s.shuffle)],
    ["training images", m.train_images, String(s.trainImages)],
  ];
  for (const [what, saved, now] of pairs) {
    if (saved !== now) {
      throw new UserError(
        `--resume: ${file} was saved with ${what} ${saved ?? "(unknown)"}, this run has ${now}; ` +
          `use the same flags, or start afresh without --resume`,
      );
    }
  }
}

/** History of a checkpoint's metadata (JSON); a bad one is an empty history. */
function parseHistory(json: string | undefined): EpochPoint[] {
  try {
    const h = JSON.parse(json ?? "[]");
    return Array.isArray(h) ? h : [];
  } catch {
    return [];
  }
}
