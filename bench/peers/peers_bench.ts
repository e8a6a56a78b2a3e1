/**
 * One training epoch of our model in TensorFlow.js 4.22, on its WebGPU and
 * WebAssembly backends (see `bench/peers.ts` for exactly what is done and
 * what the clock covers), on a small subset: the first 1000 training images
 * (PEERS_TRAIN_LIMIT to change), batch 500, lr 0.01, seed 1337.
 *
 * tfjs has one global backend, so each case prepares its backend in its
 * first (warm-up, not measured) iteration, and disposes the other's tensors.
 * On llvmpipe the WebGPU backend's first step compiles its shaders for about
 * a minute; that lands in the warm-up too. Each measured iteration trains
 * one more epoch from where the last left off.
 *
 * Our fast trainer's engine trains the same epoch in the same group, as the
 * baseline, so `deno bench` prints how many times faster it is than each
 * (its epoch is `trainEpoch`: the steps and the one loss readback; the tuner's
 * cached or default plan).
 *
 * Run: deno bench --allow-read --allow-write=data --allow-env bench/peers_bench.ts
 *
 * @module
 */

import { limitDataset } from "../../shared/data/dataset.ts";
import { openGpu } from "../../shared/gpu/device.ts";
import { loadMnist } from "../../shared/data/mnist.ts";
import { initParams } from "../../shared/model/mlp.ts";
import { createMlpEngine } from "../../fast/mlp/engine.ts";
import { createPeer, type PeerBackend, type PeerSession } from "./peers.ts";

const trainLimit = Number(Deno.env.get("PEERS_TRAIN_LIMIT") ?? "") || 1000;
const data = await loadMnist({ trainLimit, testLimit: 1, announce: false });
let session: PeerSession | undefined;

async function sessionFor(backend: PeerBackend): Promise<PeerSession> {
  if (session?.backend !== backend) {
    session?.dispose();
    session = await createPeer({ backend, data, trainLimit, batchSize: 500, lr: 0.01, seed: 1337 });
    console.error(`${session.details}: setup ${session.setupMs.toFixed(0)} ms`);
  }
  return session;
}

const gpu = await openGpu();
const nTrain = Math.min(trainLimit, data.trainLabels.length);
const ours = await createMlpEngine(gpu, initParams(1337), limitDataset(data, nTrain), {
  batchSize: 500,
  lr: 0.01,
});

Deno.bench({
  name: `ours: fast epoch (${nTrain} images, batch 500)`,
  group: "tfjs epoch",
  baseline: true,
  n: 5,
  warmup: 1,
  async fn(b) {
    b.start();
    const sum = await ours.trainEpoch();
    b.end();
    if (!Number.isFinite(sum)) throw new Error(`fast: loss sum ${sum}`);
  },
});

for (const backend of ["webgpu", "wasm"] as const) {
  Deno.bench({
    name: `tfjs-${backend} epoch (${trainLimit} images, batch 500)`,
    group: "tfjs epoch",
    n: 3,
    warmup: 1,
    async fn(b) {
      const s = await sessionFor(backend);
      b.start();
      const e = await s.epoch();
      b.end();
      if (!Number.isFinite(e.loss)) throw new Error(`tfjs-${backend}: loss ${e.loss}`);
    },
  });
}
