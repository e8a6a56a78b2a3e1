/**
 * What the run loop (fast/run.ts) asks of a model's engine: the contract
 * between "how a run goes" (epochs, progress, Ctrl-C, checkpoints, the
 * test pass) and "how a model trains on the GPU" (fast/mlp/, fast/cnn/).
 *
 * An engine owns its GPU objects (buffers, pipelines, bind groups, all made
 * when it is created) and the dataset it was given; it uses WebGPU and plain
 * TypeScript only — no files, no `Deno.*` — so a web page can drive it too.
 * It is not the place for flags, logs or files: those are the run loop's.
 *
 * @module
 */

import type { OptimizerOptions, OptimizerState as TensorState } from "../shared/model/optim.ts";

/**
 * An optimiser's state as float32 (shared/model/optim.ts's `OptimizerState`):
 * `parts[k]` is part k of the optimiser's `state` (momentum's velocity; Adam's
 * m, then v) per parameter tensor, in the order W1, b1, …, WL, bL; no
 * parts for SGD. `step` is the number of steps taken (Adam's t of the last one).
 */
export type OptimizerState = TensorState<Float32Array>;

/** A test pass: `confusion[t][p]` test images of class t predicted as p; `correct` is its trace. */
export interface TestCounts {
  correct: number;
  confusion: number[][];
}

/** Thrown by `Engine.trainEpoch` when its `stop` callback asked to stop. */
export class EpochInterrupted extends Error {
  /** Steps of the epoch that ran. */
  readonly stepsDone: number;
  constructor(stepsDone: number) {
    super(`epoch interrupted after ${stepsDone} steps`);
    this.name = "EpochInterrupted";
    this.stepsDone = stepsDone;
  }
}

/** A model's engine on one device, with parameters `P` (see the module doc). */
export interface Engine<P> {
  /** Training steps (batches) per epoch. */
  readonly steps: number;
  /** The optimiser and its settings. */
  readonly optimizer: OptimizerOptions;
  /**
   * Visits the training images in `order` (a permutation of 0..nTrain-1)
   * from the next step on (`--shuffle`).
   */
  setOrder(order: Uint32Array): void;
  /**
   * Runs one epoch, chunks of steps per command buffer, and returns the sum
   * over its images of −log p_y (one readback; NaN or ±∞ when a step's loss
   * was not finite — `readLosses` then says where). `onProgress(stepsDone)`
   * is called as chunks finish, without making the GPU wait for it. With
   * `stop`, at most two chunks are in flight, and `stop()` is asked between
   * chunks: when true, the submitted work runs to its end and
   * `EpochInterrupted` is thrown.
   */
  trainEpoch(onProgress?: (stepsDone: number) => void, stop?: () => boolean): Promise<number>;
  /** Per-image losses of the last epoch at positions `start..start+count-1` of its order. */
  readLosses(start: number, count: number): Promise<Float32Array>;
  /** Correct test predictions (first-maximum argmax), counted on the GPU. */
  evaluate(): Promise<number>;
  /** The test pass with its confusion counts, counted on the GPU (one readback). */
  evaluateConfusion(): Promise<TestCounts>;
  /** The current parameters, read back from the GPU. */
  readParams(): Promise<P>;
  /** The optimiser's state, read back from the GPU. */
  readOptimizerState(): Promise<OptimizerState>;
  /** Sets the optimiser's state (from a checkpoint) before the next step. */
  writeOptimizerState(state: OptimizerState): void;
  /** Frees the GPU objects (the device stays open). */
  destroy(): void;
}

/**
 * An engine that can run epochs back to back (the MLP's, on a GPU): each
 * epoch one command buffer, encoded while the one before runs.
 */
export interface OverlappingEngine<P> extends Engine<P> {
  /** Epochs whose readbacks may be pending at once: epoch e's loss is read before e + readbacks is submitted. */
  readonly readbacks: number;
  /**
   * Encodes a whole epoch into one command buffer (its steps, then the loss
   * sum and its copy into a readback buffer, and with the engine's
   * `overlapEpochs` option a copy of the per-image losses) without
   * submitting it, so that it can be encoded while the previous epoch runs.
   * Submit with `submit()`; start the loss readback with `readLoss()` of the
   * result, after the next epoch is encoded. The readback buffers rotate
   * among `readbacks` epochs: epoch e's loss must have been read (settled)
   * before epoch e + readbacks is submitted.
   */
  encodeEpoch(): EncodedEpoch;
}

/** An epoch that `encodeEpoch` encoded. */
export interface EncodedEpoch {
  /** Submits the epoch's command buffer. */
  submit(): SubmittedEpoch;
}

/** An epoch that `EncodedEpoch.submit` submitted. */
export interface SubmittedEpoch {
  /**
   * Starts the loss readback (once; later calls return the same promise)
   * and gives the sum over the epoch's images of −log p_y. In Deno the
   * `mapAsync` under it returns only once the GPU has run everything
   * submitted (a blocking device poll), then resolves ~10 ms later (its
   * polling sleep): call it after submitting the next epoch's work, or
   * just before, as the run loop does.
   */
  readLoss(): Promise<number>;
  /**
   * Per-image losses of this epoch at positions `start..start+count-1`. With
   * the `overlapEpochs` option, from a copy made at the epoch's end: valid
   * until epoch e + 3 is submitted; without it, from the live per-image
   * losses: valid until the next epoch is submitted.
   */
  readLosses(start: number, count: number): Promise<Float32Array>;
}
