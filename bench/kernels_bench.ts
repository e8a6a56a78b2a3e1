/**
 * Matmul kernels on the shapes the model uses, and the GFLOP/s they reach.
 *
 * Cases: the forward `x·W` of each layer (784→512, 512→128, 128→10), the
 * weight gradients `aᵀ·∂z` and the input gradients `∂z·Wᵀ` (none for the
 * first layer), at a batch size per variant. Each iteration encodes one
 * dispatch, submits it and awaits the queue, so `Deno.bench`'s time includes
 * one submit-and-wait round trip (~11 ms on llvmpipe); the GPU time of the
 * dispatch alone comes from timestamp queries (`shared/gpu/profiler.ts`). At the
 * end a table gives both as GFLOP/s (2·m·k·n flops per matmul), since
 * `Deno.bench` reports times only.
 *
 * The naive kernels are the slow trainer's (`shared/kernels/slow/matmul*.wgsl`,
 * one thread per output). On llvmpipe they ran at 0.4–1.3 GFLOP/s on a quiet
 * 2-core machine and far less on a busy one (bench/RESULTS.md), so the naive
 * variant uses batch 50, not the trainer's 500 (784→512 at batch 500 is
 * 0.4 GFLOP, a second or more a dispatch); set BENCH_BATCH to override every
 * variant's.
 *
 * Adding a variant is one line in `VARIANTS`. Every variant is checked once
 * against the CPU reference (`shared/model/mlp.ts`) before it is timed.
 *
 * Run: deno bench --allow-read --allow-env bench/kernels_bench.ts
 *
 * @module
 */

import { openGpu, readBuffer } from "../shared/gpu/device.ts";
import { matmul, matmulTransA, matmulTransB } from "../shared/model/mlp.ts";
import { formatProfile, GpuProfiler } from "../shared/gpu/profiler.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import { envNumber, envString } from "./env.ts";
import { kernelSource } from "../shared/kernels/sources.ts";

/** The three matmul shapes of training, named as in shared/model/mlp.ts. */
export type MatmulOp = "matmul" | "matmulTransA" | "matmulTransB";

/**
 * One benchmark case: `op` on the dims in shared/model/mlp.ts's argument order
 * (matmul and matmulTransA: m, k, n; matmulTransB: m, n, k).
 */
export interface MatmulCase {
  name: string;
  op: MatmulOp;
  dims: [number, number, number];
}

/** Sizes of A, B and C, in floats, for `op` on `dims`. */
function operandSizes(op: MatmulOp, [d0, d1, d2]: number[]): [number, number, number] {
  if (op === "matmul") return [d0 * d1, d1 * d2, d0 * d2]; // A[m,k] B[k,n] C[m,n]
  if (op === "matmulTransA") return [d0 * d1, d0 * d2, d1 * d2]; // A[m,k] B[m,n] C[k,n]
  return [d0 * d1, d2 * d1, d0 * d2]; // A[m,n] B[k,n] C[m,k]
}

/** Rows and columns of C. */
function outputShape(op: MatmulOp, [d0, d1, d2]: number[]): [number, number] {
  if (op === "matmul") return [d0, d2];
  if (op === "matmulTransA") return [d1, d2];
  return [d0, d2];
}

/** The cases at batch size `batch` (the model 784→512→128→10). */
function modelCases(batch: number): MatmulCase[] {
  return [
    { name: "fwd 784→512", op: "matmul", dims: [batch, 784, 512] },
    { name: "fwd 512→128", op: "matmul", dims: [batch, 512, 128] },
    { name: "fwd 128→10", op: "matmul", dims: [batch, 128, 10] },
    { name: "∂W 784×512", op: "matmulTransA", dims: [batch, 784, 512] },
    { name: "∂W 512×128", op: "matmulTransA", dims: [batch, 512, 128] },
    { name: "∂W 128×10", op: "matmulTransA", dims: [batch, 128, 10] },
    { name: "∂a 512←128", op: "matmulTransB", dims: [batch, 128, 512] },
    { name: "∂a 128←10", op: "matmulTransB", dims: [batch, 10, 128] },
  ];
}

/** The buffers a case runs on: uniform `shape` (the dims as u32), A, B, C. */
export interface CaseBuffers {
  shape: GPUBuffer;
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
}

/** What a variant's `setup` makes for one case. */
export interface PreparedKernel {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** A matmul implementation to time: its WGSL per op and how to dispatch it. */
export interface MatmulVariant {
  name: string;
  /** Batch size of its cases. */
  batch: number;
  /** The WGSL source of the kernel for a case (its op; its dims, for kernels specialised per shape). */
  wgsl: (c: MatmulCase) => string;
  /** Pipeline, bind group and workgroup count for one case. */
  setup: (
    device: GPUDevice,
    module: GPUShaderModule,
    c: MatmulCase,
    bufs: CaseBuffers,
  ) => PreparedKernel;
}

/**
 * The setup of a kernel with bindings (uniform shape, A, B, C) in group 0
 * and entry point `main`, where each workgroup writes a
 * `tile[0]` (columns) × `tile[1]` (rows) block of C.
 */
function standardSetup(tile: [number, number] = [8, 8]): MatmulVariant["setup"] {
  return (device, module, c, bufs) => {
    const pipeline = device.createComputePipeline({
      label: `${c.op} pipeline`,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const bindGroup = device.createBindGroup({
      label: `${c.op} bind group`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: bufs.shape } },
        { binding: 1, resource: { buffer: bufs.a } },
        { binding: 2, resource: { buffer: bufs.b } },
        { binding: 3, resource: { buffer: bufs.c } },
      ],
    });
    const [rows, cols] = outputShape(c.op, c.dims);
    return {
      pipeline,
      bindGroup,
      workgroups: [Math.ceil(cols / tile[0]), Math.ceil(rows / tile[1]), 1],
    };
  };
}

const envBatch = envNumber("BENCH_BATCH", 0) || undefined;

/** The variants timed; add a line to time another. */
export const VARIANTS: MatmulVariant[] = [
  // The slow trainer's kernels, one thread per output (see the module doc for the batch).
  { name: "naive", batch: envBatch ?? 50, wgsl: (c) => kernelSource(c.op), setup: standardSetup() },
];

// ---------------------------------------------------------------------------

const gpu = await openGpu({ timestamps: true });
const { device } = gpu;
const profiler = new GpuProfiler(gpu);

function randomFloats(n: number, seed: number): Float32Array<ArrayBuffer> {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

function storage(label: string, data: Float32Array<ArrayBuffer> | number): GPUBuffer {
  const size = 4 * (typeof data === "number" ? data : data.length);
  const buf = device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  if (typeof data !== "number") device.queue.writeBuffer(buf, 0, data);
  return buf;
}

function cpuReference(op: MatmulOp, a: Float32Array, b: Float32Array, d: number[]): Float64Array {
  const ref = op === "matmul" ? matmul : op === "matmulTransA" ? matmulTransA : matmulTransB;
  return ref(a, b, d[0], d[1], d[2]);
}

async function readFloats(buf: GPUBuffer): Promise<Float32Array> {
  return new Float32Array(await readBuffer(device, buf));
}

interface Row {
  variant: string;
  c: MatmulCase;
  flops: number;
  wallMs: number[];
  /** Iterations run, the warm-up included. */
  runs: number;
}
const rows: Row[] = [];

for (const variant of VARIANTS) {
  const modules = new Map<string, GPUShaderModule>(); // by source: one per distinct kernel
  for (const c of modelCases(variant.batch)) {
    const code = variant.wgsl(c);
    let module = modules.get(code);
    if (!module) {
      module = device.createShaderModule({ label: `${variant.name} ${c.op} shader`, code });
      modules.set(code, module);
    }
    const [na, nb, nc] = operandSizes(c.op, c.dims);
    const aData = randomFloats(na, 1), bData = randomFloats(nb, 2);
    const shape = device.createBuffer({
      label: `${c.name} shape`,
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(shape, 0, new Uint32Array([...c.dims, 0]));
    const bufs = {
      shape,
      a: storage(`${c.name} A`, aData),
      b: storage(`${c.name} B`, bData),
      c: storage(`${c.name} C`, nc),
    };
    const k = variant.setup(device, module, c, bufs);
    const kernel = `${variant.name} ${c.name}`;
    const flops = 2 * c.dims[0] * c.dims[1] * c.dims[2];
    const run = async (timestampWrites?: GPUComputePassTimestampWrites) => {
      const enc = device.createCommandEncoder({ label: `${kernel} encoder` });
      const pass = enc.beginComputePass({ label: `${kernel} pass`, timestampWrites });
      pass.setPipeline(k.pipeline);
      pass.setBindGroup(0, k.bindGroup);
      pass.dispatchWorkgroups(...k.workgroups);
      pass.end();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    };

    // Check the variant once against the CPU reference before timing it.
    await run();
    const got = await readFloats(bufs.c);
    const want = cpuReference(c.op, aData, bData, c.dims);
    const inner = c.op === "matmulTransA" ? c.dims[0] : c.op === "matmul" ? c.dims[1] : c.dims[1];
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= 1e-5 * inner)) {
        throw new Error(`${kernel}: C[${i}] = ${got[i]}, CPU reference ${want[i]}`);
      }
    }

    const row: Row = { variant: variant.name, c, flops, wallMs: [], runs: 0 };
    rows.push(row);
    Deno.bench({
      name: `${kernel} (batch ${variant.batch})`,
      group: c.name,
      baseline: variant === VARIANTS[0],
      // A few iterations: a naive 784→512 dispatch takes ~0.3 s on llvmpipe.
      n: variant.name === "naive" ? 3 : 10,
      warmup: 1,
      async fn(b) {
        const warmup = row.runs++ === 0; // the table leaves the warm-up out, as Deno.bench does
        const timestampWrites = warmup ? undefined : profiler.passTimestamps(kernel, flops);
        b.start();
        const t0 = performance.now();
        await run(timestampWrites);
        const ms = performance.now() - t0;
        b.end();
        if (!warmup) row.wallMs.push(ms);
        await profiler.collect();
      },
    });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

globalThis.addEventListener("unload", () => {
  const total = rows.reduce((s, r) => s + r.wallMs.reduce((x, y) => x + y, 0), 0);
  const report = profiler.report(total);
  const header = ["kernel", "m·k·n", "MFLOP", "wall ms", "wall GFLOP/s", "GPU ms", "GPU GFLOP/s"];
  const table = [header];
  for (const r of rows) {
    const name = `${r.variant} ${r.c.name}`;
    const k = report.kernels.find((x) => x.kernel === name);
    const wall = median(r.wallMs);
    table.push([
      name,
      r.c.dims.join("·"),
      (r.flops / 1e6).toFixed(1),
      wall.toFixed(2),
      (r.flops / wall / 1e6).toFixed(3),
      k ? (k.ms / k.calls).toFixed(2) : "-",
      k?.gflops != null ? k.gflops.toFixed(3) : "-",
    ]);
  }
  const widths = header.map((_, c) => Math.max(...table.map((t) => t[c].length)));
  console.log(`\nmatmul GFLOP/s on ${gpu.description} (wall: median of submit+wait per dispatch;`);
  console.log(`GPU: mean of timestamp queries${gpu.timestamps ? "" : ", unavailable here"})`);
  for (const t of table) {
    console.log(
      t.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))
        .join("  "),
    );
  }
  if (envString("BENCH_PROFILE")) console.log(formatProfile(report));
});
