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
import type { EncodedEpoch, SubmittedEpoch } from "../engine.ts";
import { outsidePass, record, type Recorder, runChunks, submit } from "../kit.ts";
import { EPOCH_READBACKS, readRange } from "./buffers.ts";
import { encodeEpochEnd, encodeStep, type StepContext } from "./encode.ts";

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
      ctx.to,
      `steps ${first}..${first + count - 1}${tail ? " and the loss sum" : ""}`,
    );
    for (let i = first; i < first + count; i++) encodeStep(ctx, rec, i);
    tail?.(rec);
    submit(rec);
    this.stepsTaken += count;
  }

  /** A whole epoch in one command buffer, not yet submitted (`MlpEngine.encodeEpoch`). */
  encodeEpoch(): EncodedEpoch {
    const { ctx } = this;
    const readback = this.epochReadback();
    const n = ctx.setup.batches.length;
    ctx.buffers.optimizerTable.ensure(this.stepsTaken);
    const rec = record(ctx.to, `epoch: steps 0..${n - 1} and the loss sum`);
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
 * One epoch in chunks of steps (`Engine.trainEpoch`), by the kit's loop
 * (`runChunks`: progress, a stop between chunks); a short first chunk starts
 * the GPU after encoding a few steps. The loss sum rides in the epoch's last
 * command buffer; its readback is the one await of the epoch's loss.
 */
export async function trainEpoch(
  chunks: ChunkedSteps,
  afterSubmit: (() => Promise<void>) | undefined,
  onProgress?: (stepsDone: number) => void,
  stop?: () => boolean,
): Promise<number> {
  const { ctx, stepsPerSubmit } = chunks;
  const readback = chunks.epochReadback();
  await runChunks(
    {
      device: ctx.device,
      steps: ctx.setup.batches.length,
      stepsPerSubmit,
      firstChunk: FIRST_CHUNK_STEPS,
      submit: (first, count, last) =>
        chunks.submit(first, count, last ? (rec) => encodeEpochEnd(ctx, rec, readback) : undefined),
      afterSubmit,
    },
    onProgress,
    stop,
  );
  return await submittedEpoch(ctx, readback).readLoss();
}
