/**
 * A per-kernel GPU profiler both trainers can use (`--profile`).
 *
 * With `timestamp-query` on the device, every profiled compute pass writes a
 * GPU timestamp when it begins and when it ends (`timestampWrites`);
 * `collect()` resolves those into a buffer, reads them back once and adds each
 * pass's duration to its kernel. Without the feature the profiler falls back
 * to wall-clock time per dispatch, from `passTimestamps()` to `markDone()`,
 * which is meaningful only for a trainer that waits after each dispatch (the
 * slow one); the report says which of the two it holds.
 *
 * Usage:
 *
 * ```ts
 * const prof = new GpuProfiler(gpu, { enabled: config.profile });
 * const pass = enc.beginComputePass({
 *   label: "matmul pass",
 *   timestampWrites: prof.passTimestamps("matmul", 2 * m * k * n),
 * });
 * // … dispatch, end, submit, await …
 * prof.markDone(); // wall-clock mode only; a no-op otherwise
 * await prof.collect(); // at a point where the GPU work was submitted (per epoch)
 * console.error(formatProfile(prof.report(epochWallMs)));
 * ```
 *
 * Disabled, every method returns at its first line and no GPU object is made.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/**
 * Where profiling hooks into an engine: called for each compute pass with its
 * kernel's name and floating-point operations; returns the pass's
 * `timestampWrites`, or undefined when the pass is not timed.
 */
export type PassTimestamps = (
  kernel: string,
  flops: number,
) => GPUComputePassTimestampWrites | undefined;

/** How the figures of a report were measured. */
export type ProfileMode = "timestamps" | "wall-clock" | "off";

/** One kernel's line of a report. */
export interface KernelProfile {
  kernel: string;
  /** Profiled passes (dispatches) of this kernel. */
  calls: number;
  /** Total milliseconds of those passes. */
  ms: number;
  /** `ms` as a fraction of the wall time given to `report`. */
  share: number;
  /** Floating-point operations of those calls, when given. */
  flops: number | null;
  /** `flops / ms`, in GFLOP/s, when flops were given. */
  gflops: number | null;
}

/** What `GpuProfiler.report` returns; also the `--json` summary's `profile`. */
export interface ProfileReport {
  mode: ProfileMode;
  /** The wall time the shares are relative to (the caller's, e.g. an epoch's). */
  wallMs: number;
  /** Sum of the kernels' `ms`: the time the GPU was busy with profiled passes. */
  gpuMs: number;
  /**
   * `wallMs − gpuMs`: waiting, encoding, submitting, readbacks (in wall-clock
   * mode, what falls outside the timed dispatches).
   */
  outsideMs: number;
  /** `outsideMs / wallMs`. */
  outsideShare: number;
  /** Kernels, most time first. */
  kernels: KernelProfile[];
  /** Passes not profiled because the query set was full (collect more often). */
  dropped: number;
  /** Passes whose timestamps were missing or ran backwards (counted, not timed). */
  invalid: number;
  /** What the figures mean or why they may be off, for people. */
  notes: string[];
}

/** Options of `GpuProfiler`. */
export interface GpuProfilerOptions {
  /** Profile at all (default true). Disabled, the profiler is a no-op. */
  enabled?: boolean;
  /**
   * Passes that can be timed between two `collect()`s (default 32768); more
   * are run untimed and counted as `dropped`.
   */
  capacityPasses?: number;
  /**
   * Passes per query set (default and most 2048: WebGPU allows 4096 queries
   * per set); further sets are made as passes come, up to `capacityPasses`.
   */
  passesPerQuerySet?: number;
}

interface KernelTotals {
  calls: number;
  ns: number;
  flops: number;
  hasFlops: boolean;
}

interface PendingPass {
  kernel: string;
  flops: number | undefined;
  /** performance.now() at `passTimestamps` (wall-clock mode). */
  startMs: number;
}

/** The most queries a WebGPU query set may hold. */
const MAX_QUERIES = 4096;

/** Times compute passes per kernel; see the module doc. */
export class GpuProfiler {
  /** How this profiler measures; "off" when disabled. */
  readonly mode: ProfileMode;
  readonly #device: GPUDevice | undefined;
  readonly #capacity: number;
  readonly #perSet: number;
  /** Query sets, each with the buffer its timestamps resolve into. */
  #sets: { queries: GPUQuerySet; resolved: GPUBuffer }[] = [];
  #pending: PendingPass[] = [];
  #totals = new Map<string, KernelTotals>();
  #dropped = 0;
  #invalid = 0;

  constructor(gpu: Gpu, opts: GpuProfilerOptions = {}) {
    const capacity = opts.capacityPasses ?? 32768;
    const perSet = opts.passesPerQuerySet ?? MAX_QUERIES / 2;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacityPasses must be a positive integer, got ${capacity}`);
    }
    if (!Number.isInteger(perSet) || perSet < 1 || perSet * 2 > MAX_QUERIES) {
      throw new RangeError(`passesPerQuerySet must be 1..${MAX_QUERIES / 2}, got ${perSet}`);
    }
    this.#capacity = capacity;
    this.#perSet = perSet;
    if (opts.enabled === false) {
      this.mode = "off";
      return;
    }
    this.#device = gpu.device;
    this.mode = gpu.timestamps ? "timestamps" : "wall-clock";
  }

  /** Whether the profiler records anything. */
  get enabled(): boolean {
    return this.mode !== "off";
  }

  /**
   * The `timestampWrites` for the next compute pass, which runs `kernel`
   * doing `flops` floating-point operations (optional, for GFLOP/s).
   * Undefined when disabled, in wall-clock mode, or when the query set is
   * full (then the pass is counted in `dropped`).
   */
  passTimestamps(kernel: string, flops?: number): GPUComputePassTimestampWrites | undefined {
    if (this.mode === "off") return undefined;
    if (this.#pending.length >= this.#capacity) {
      this.#dropped++;
      return undefined;
    }
    const index = this.#pending.length;
    this.#pending.push({ kernel, flops, startMs: performance.now() });
    if (this.mode === "wall-clock") return undefined;
    const slot = index % this.#perSet;
    return {
      querySet: this.#querySet(Math.floor(index / this.#perSet)),
      beginningOfPassWriteIndex: 2 * slot,
      endOfPassWriteIndex: 2 * slot + 1,
    };
  }

  /**
   * Wall-clock mode: the passes since the last `markDone` have finished (the
   * caller awaited them); each is charged the wall time from its
   * `passTimestamps` call to now (several pending passes split that time
   * evenly). A no-op in timestamp mode and when disabled.
   */
  markDone(): void {
    if (this.mode !== "wall-clock" || this.#pending.length === 0) return;
    const now = performance.now();
    const spanMs = now - this.#pending[0].startMs;
    for (const p of this.#pending) {
      this.#add(p.kernel, spanMs / this.#pending.length * 1e6, p.flops);
    }
    this.#pending = [];
  }

  /**
   * Reads the timestamps of every pass since the last `collect` (one
   * readback, ~11 ms on llvmpipe) and adds them to the totals; call it where
   * the trainer waits anyway, e.g. at the end of an epoch, and before the
   * `capacityPasses` are reached. All passes handed timestamp writes
   * must have been submitted. In wall-clock mode it waits for the queue and
   * calls `markDone`.
   */
  async collect(): Promise<void> {
    if (this.mode === "off" || this.#pending.length === 0) return;
    const device = this.#device!;
    if (this.mode === "wall-clock") {
      await device.queue.onSubmittedWorkDone();
      this.markDone();
      return;
    }
    const passes = this.#pending;
    this.#pending = [];
    const bytes = passes.length * 2 * 8;
    const staging = device.createBuffer({
      label: "profiler timestamps readback",
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = device.createCommandEncoder({ label: "profiler resolve encoder" });
    for (let s = 0; s * this.#perSet < passes.length; s++) {
      const count = Math.min(this.#perSet, passes.length - s * this.#perSet);
      const { queries, resolved } = this.#sets[s];
      enc.resolveQuerySet(queries, 0, count * 2, resolved, 0);
      enc.copyBufferToBuffer(resolved, 0, staging, s * this.#perSet * 16, count * 16);
    }
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    // WebGPU resolves timestamps as nanoseconds (u64); differences of two
    // fit a double exactly for any realistic pass length.
    const stamps = new BigUint64Array(staging.getMappedRange());
    for (let i = 0; i < passes.length; i++) {
      const begin = stamps[2 * i], end = stamps[2 * i + 1];
      if (begin === 0n || end < begin) {
        this.#invalid++;
        this.#add(passes[i].kernel, 0, passes[i].flops);
      } else {
        this.#add(passes[i].kernel, Number(end - begin), passes[i].flops);
      }
    }
    staging.unmap();
    staging.destroy();
  }

  /**
   * The totals so far against `totalWallMs` (the wall time they were taken
   * in, e.g. the sum of the epochs' times). Call `collect` first.
   */
  report(totalWallMs: number): ProfileReport {
    const kernels: KernelProfile[] = [];
    let gpuMs = 0;
    for (const [kernel, t] of this.#totals) {
      const ms = t.ns / 1e6;
      gpuMs += ms;
      kernels.push({
        kernel,
        calls: t.calls,
        ms,
        share: totalWallMs > 0 ? ms / totalWallMs : 0,
        flops: t.hasFlops ? t.flops : null,
        gflops: t.hasFlops && ms > 0 ? t.flops / (ms * 1e6) : null,
      });
    }
    kernels.sort((a, b) => b.ms - a.ms || a.kernel.localeCompare(b.kernel));
    const outsideMs = totalWallMs - gpuMs;
    const notes: string[] = [];
    if (this.mode === "off") notes.push("profiling is off");
    if (this.mode === "wall-clock") {
      notes.push(
        "the device lacks timestamp-query: kernel times are wall-clock per dispatch " +
          "(encode + submit + wait), meaningful only when each dispatch is awaited; passes " +
          "awaited together share their wall time evenly",
      );
    }
    if (this.#pending.length > 0) {
      notes.push(`${this.#pending.length} passes not yet collected are left out`);
    }
    if (this.#dropped > 0) {
      notes.push(
        `${this.#dropped} passes were not timed: more than ${this.#capacity} between collects`,
      );
    }
    if (this.#invalid > 0) {
      notes.push(`${this.#invalid} passes had missing or backward timestamps (counted as 0 ms)`);
    }
    if (this.mode === "timestamps" && totalWallMs > 0 && gpuMs > totalWallMs * 1.05) {
      notes.push(
        "GPU time exceeds wall time: this adapter's timestamps may not be in nanoseconds",
      );
    }
    return {
      mode: this.mode,
      wallMs: totalWallMs,
      gpuMs,
      outsideMs,
      outsideShare: totalWallMs > 0 ? outsideMs / totalWallMs : 0,
      kernels,
      dropped: this.#dropped,
      invalid: this.#invalid,
      notes,
    };
  }

  /** Forgets the totals (e.g. between epochs); pending passes are kept. */
  reset(): void {
    this.#totals.clear();
    this.#dropped = 0;
    this.#invalid = 0;
  }

  /** Frees the query set and buffers. */
  destroy(): void {
    for (const { queries, resolved } of this.#sets) {
      queries.destroy();
      resolved.destroy();
    }
    this.#sets = [];
    this.#pending = [];
  }

  #querySet(index: number): GPUQuerySet {
    while (this.#sets.length <= index) {
      const n = this.#sets.length;
      this.#sets.push({
        queries: this.#device!.createQuerySet({
          label: `profiler timestamps ${n}`,
          type: "timestamp",
          count: this.#perSet * 2,
        }),
        resolved: this.#device!.createBuffer({
          label: `profiler timestamps ${n} resolved`,
          size: this.#perSet * 2 * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      });
    }
    return this.#sets[index].queries;
  }

  #add(kernel: string, ns: number, flops: number | undefined): void {
    let t = this.#totals.get(kernel);
    if (!t) this.#totals.set(kernel, t = { calls: 0, ns: 0, flops: 0, hasFlops: false });
    t.calls++;
    t.ns += ns;
    if (flops !== undefined) {
      t.flops += flops;
      t.hasFlops = true;
    }
  }
}

function pad(s: string, width: number, right = false): string {
  return right ? s.padStart(width) : s.padEnd(width);
}

/** The report as a table for people, one line per kernel plus the time outside. */
export function formatProfile(report: ProfileReport): string {
  if (report.mode === "off") return "profile: off";
  const title = report.mode === "timestamps"
    ? "GPU profile (timestamp queries)"
    : "GPU profile (wall clock per dispatch; no timestamp-query)";
  const rows: string[][] = [["kernel", "calls", "total ms", "ms/call", "share", "GFLOP/s"]];
  for (const k of report.kernels) {
    rows.push([
      k.kernel,
      String(k.calls),
      k.ms.toFixed(2),
      (k.calls > 0 ? k.ms / k.calls : 0).toFixed(3),
      `${(k.share * 100).toFixed(1)}%`,
      k.gflops === null ? "-" : k.gflops.toFixed(2),
    ]);
  }
  rows.push([
    report.mode === "timestamps" ? "(outside GPU work)" : "(outside dispatches)",
    "",
    report.outsideMs.toFixed(2),
    "",
    `${(report.outsideShare * 100).toFixed(1)}%`,
    "",
  ]);
  rows.push(["(wall)", "", report.wallMs.toFixed(2), "", "100.0%", ""]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = [title];
  for (const r of rows) {
    lines.push(r.map((cell, c) => pad(cell, widths[c], c > 0)).join("  ").trimEnd());
  }
  for (const n of report.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}
