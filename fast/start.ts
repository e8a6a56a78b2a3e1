/**
 * Where a fast run starts, read and checked before its data and device are:
 * the files (--save and --plot writable; --resume's checkpoint, --load's
 * weights, with the shape of their model), and the settings a checkpoint of
 * this run records, checked against --resume's file (the same model,
 * optimiser, batch size, seed, order and data) and said in one line.
 *
 * Not here: the data and the device (shared/io/prepare.ts), the file formats
 * (fast/checkpoint.ts, shared/io/safetensors.ts), writing files
 * (fast/files.ts), the epochs (fast/epoch_loop.ts).
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import type { Dataset, DataShape } from "../shared/data/dataset.ts";
import type { OptimizerOptions } from "../shared/model/optim.ts";
import {
  type Checkpoint,
  type CheckpointSettings,
  checkResumable,
  decodeCheckpoint,
} from "./checkpoint.ts";
import { checkWritable, readModelFile } from "./files.ts";
import type { Model } from "./run.ts";

/**
 * The files a run starts from, read before the data and the device: a
 * missing checkpoint or a file that cannot be written should not wait for
 * them and an epoch. Returns the checkpoint (--resume) and the weights
 * (its, --load's, or `given`), and for a file, its name and the shape of
 * its model (checked against the data once that is loaded).
 */
export async function startingPoint<P>(
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

/** What `startSettings` records besides the flags: the run's optimiser, order and data. */
export interface RunFacts {
  optimizer: OptimizerOptions;
  shuffle: boolean;
  data: Dataset;
  nTrain: number;
  nTest: number;
  log: (line: string) => void;
}

/**
 * The settings a checkpoint of this run records; with a --resume
 * `checkpoint`, checks that its settings are these (a one-line `UserError`
 * if not) and says where the run resumes; with --load, which file it starts from.
 */
export function startSettings<P>(
  model: Model<P>,
  config: TrainConfig,
  checkpoint: Checkpoint<P> | undefined,
  { optimizer, shuffle, data, nTrain, nTest, log }: RunFacts,
): CheckpointSettings {
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
  return settings;
}
