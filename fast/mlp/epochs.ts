/**
 * The fast MLP engine's epochs: runs of training steps encoded into one
 * command buffer each (`ChunkedSteps`), a whole epoch in one (`encodeEpoch`,
 * for overlapped epochs), and `trainEpoch`: an epoch in chunks, with
 * progress, a stop between chunks, and the epoch's loss read back once.
 *
 * Not here: what a step records (fast/mlp/encode.ts, step.ts) and the
 * engine's other calls (fast/mlp/engine.ts). WebGPU and plain TypeScript
 * only.
 *
 * @module
 */

import { readMapped } from "../../shared/gpu/device.ts";
import { type EncodedEpoch, EpochInterrupted, type SubmittedEpoch } from "../engine.ts";
import { EPOCH_READBACKS, readRange } from "./buffers.ts";
import {
  encodeEpochEnd,
  encodeStep,
  outsidePass,
  record,
  type Recorder,
  type StepContext,
  submit,
} from "./encode.ts";

/** Steps in an epoch's first command buffer: the GPU starts after a few steps are encoded. */
const FIRST_CHUNK_STEPS = 8;

/** Submits runs of training steps and keeps count of the optimiser's steps and the epochs. */
export class ChunkedSteps {
  /** Optimiser steps taken (Adam's t of the last one). */
  stepsTaken = 0;
  /** Epochs begun; epoch e reads its loss back through readback e % EPOCH_READBACKS. */
  #epochsBegun = 0;
  constructor(readonly ctx: StepContext, readonly stepsPerSubmit: number) {}

  /** The readback (0 .. EPOCH_READBACKS − 1) of a new epoch. */
  epochReadback(): number {
    return this.#epochsBegun++ % EPOCH_READBACKS;
  }

  /**
   * Encodes steps `first .. first+count-1` into one command buffer, then
   * `tail` (if any) into the same one, and submits it.
   */
  submit(first: number, count: number, tail?: (rec: Recorder) => void): void {
    const { ctx } = this;
    const n = ctx.setup.batches.length;
    if (first < 0 || count < 0 || first + count > n) {
      throw new RangeError(`steps ${first}..${first + count - 1} outside 0..${n - 1}`);
    }
    ctx.buffers.optimizerTable.ensure(this.stepsTaken - first);
    const rec = record(
      ctx.device,
      `steps ${first}..${first + count - 1}${tail ? " and the loss sum" : ""}`,
    );
    for (let i = first; i < first + count; i++) encodeStep(ctx, rec, i);
    tail?.(rec);
    submit(ctx.device, rec);
    this.stepsTaken += count;
  }

  /** A whole epoch in one command buffer, not yet submitted (`MlpEngine.encodeEpoch`). */
  encodeEpoch(): EncodedEpoch {
    const { ctx } = this;
    const readback = this.epochReadback();
    const n = ctx.setup.batches.length;
    ctx.buffers.optimizerTable.ensure(this.stepsTaken);
    const rec = record(ctx.device, `epoch: steps 0..${n - 1} and the loss sum`);
    for (let i = 0; i < n; i++) encodeStep(ctx, rec, i);
    encodeEpochEnd(ctx, rec, readback);
    const commands = outsidePass(rec).finish();
    return {
      submit: () => {
        ctx.device.queue.submit([commands]);
        this.stepsTaken += n;
        return submittedEpoch(ctx, readback);
      },
    };
  }
}

/**
 * The readbacks of an epoch that ended with `encodeEpochEnd(ctx, rec, readback)`
 * and was submitted.
 */
function submittedEpoch(ctx: StepContext, readback: number): SubmittedEpoch {
  const b = ctx.buffers;
  let loss: Promise<number> | undefined;
  return {
    readLoss: () => {
      if (!loss) {
        loss = readMapped(b.epochStaging[readback]).then((bytes) => new Float32Array(bytes)[0]);
        loss.catch(() => {}); // a readback nobody awaits (the run failed) is no unhandled error
      }
      return loss;
    },
    readLosses: (start, count) =>
      readRange(ctx.device, b.lossCopies?.[readback] ?? b.losses, start, count),
  };
}

/**
 * One epoch in chunks of steps (`Engine.trainEpoch`). A short first chunk
 * starts the GPU after encoding a few steps; each next chunk is encoded while
 * the one before runs. With `onProgress` or `stop`, at most two chunks are in
 * flight: after submitting chunk i + 1, chunk i is awaited and reported; then,
 * unless chunk i + 1 was the epoch's last, `stop` is asked (between chunks: an
 * epoch whose every step was submitted is never interrupted).
 */
export async function trainEpoch(
  chunks: ChunkedSteps,
  afterSubmit: (() => Promise<void>) | undefined,
  onProgress?: (stepsDone: number) => void,
  stop?: () => boolean,
): Promise<number> {
  const { ctx, stepsPerSubmit } = chunks;
  const n = ctx.setup.batches.length;
  const readback = chunks.epochReadback();
  let previous: { done: Promise<void>; steps: number } | undefined; // the chunk before the last
  const firstChunk = Math.min(stepsPerSubmit, FIRST_CHUNK_STEPS);
  for (let first = 0, count = 0; first < n; first += count) {
    count = Math.min(first === 0 ? firstChunk : stepsPerSubmit, n - first);
    // The loss sum rides in the epoch's last command buffer.
    const last = first + count === n;
    chunks.submit(first, count, last ? (rec) => encodeEpochEnd(ctx, rec, readback) : undefined);
    await afterSubmit?.();
    if (!onProgress && !stop) continue;
    // Keep the GPU fed with this chunk while waiting for the one before.
    const done = ctx.device.queue.onSubmittedWorkDone();
    if (previous) {
      await previous.done;
      onProgress?.(previous.steps);
    }
    previous = { done, steps: first + count };
    if (!last && stop?.()) {
      await done;
      throw new EpochInterrupted(first + count);
    }
  }
  if (previous && onProgress) {
    await previous.done;
    onProgress(previous.steps);
  }
  return await submittedEpoch(ctx, readback).readLoss();
}
