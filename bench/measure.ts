/**
 * Measures the fast trainer on the adapter at hand (figures in bench/RESULTS.md):
 * every matmul variant on every shape of a step (GFLOP/s, median of several
 * runs, readback overhead subtracted), then whole epochs on an MNIST-sized
 * training set with the default plan and with the fastest variant per shape,
 * reporting the epoch's achieved rate (2 × multiply-adds of all matmuls ÷
 * epoch time) next to the fastest single variant's.
 *
 * Usage: deno run --allow-read --allow-env bench/measure.ts [--data DIR]
 *        [--train N] [--batch-size N] [--epochs N] [--json]
 *
 * The images are the chosen data's training digits repeated up to N
 * (default 60,000): the speed does not depend on what the pixels are.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import { batchRanges, initParams, stepMultiplyAdds } from "../shared/model/mlp.ts";
import { createMlpEngine } from "../fast/mlp/engine.ts";
import type { Dataset } from "../shared/data/dataset.ts";
import {
  shapeMultiplyAdds,
  type Slot,
  SLOTS,
  tuneCandidates,
  VARIANTS,
} from "../fast/mlp/variants/matmul.ts";
import { median } from "../fast/mlp/variants/tuner.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    data: { type: "string" },
    train: { type: "string", default: "60000" },
    "batch-size": { type: "string", default: "500" },
    epochs: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});
const nTrain = Number(values.train), batchSize = Number(values["batch-size"]);
const epochs = Number(values.epochs);
const mnist = await loadMnist({ dataDir: values.data, announce: false });
const have = mnist.trainLabels.length;
const trainImages = new Uint8Array(nTrain * 784), trainLabels = new Uint8Array(nTrain);
for (let i = 0; i < nTrain; i++) {
  trainImages.set(mnist.trainImages.subarray((i % have) * 784, (i % have + 1) * 784), i * 784);
  trainLabels[i] = mnist.trainLabels[i % have];
}
const data: Dataset = { ...mnist, trainImages, trainLabels };
const gpu = await openGpu();
const out = (line: string) => console.error(line);
out(`adapter: ${gpu.description}; ${nTrain} images, batch ${batchSize}`);

// ---- every variant on every shape --------------------------------------
const params = initParams(1337);
const tuner = await createMlpEngine(gpu, params, data, {
  batchSize,
  lr: 0,
  tuneSlots: SLOTS,
});
const maxTex = gpu.device.limits.maxTextureDimension2D;
const variantRates: Record<string, Record<string, number>> = {};
const best: Partial<Record<Slot, string>> = {};
let bestRate = 0;
const overheads: number[] = [];
for (let r = 0; r < 5; r++) {
  overheads.push(await tuner.timeVariant("forward1", VARIANTS[0], batchSize, 0));
}
const overhead = median(overheads);
for (const slot of SLOTS) {
  const shape = tuner.shapes[slot];
  const flop = 2 * shapeMultiplyAdds(shape, batchSize);
  variantRates[slot] = {};
  for (const v of tuneCandidates(shape, gpu.software, tuner.maxRows, maxTex)) {
    const once = (await tuner.timeVariant(slot, v, batchSize, 1)) - overhead; // and warm-up
    const runs = once > 500 ? 1 : 5;
    // Repeat a dispatch within one submit until the work is ~20 ms or more, so
    // a GPU's launch and readback latency do not swamp a sub-millisecond kernel.
    const reps = Math.min(128, Math.max(1, Math.ceil(20 / Math.max(once, 0.05))));
    const ms: number[] = [];
    for (let r = 0; r < runs; r++) {
      ms.push(((await tuner.timeVariant(slot, v, batchSize, reps)) - overhead) / reps);
    }
    const rate = flop / median(ms) / 1e6;
    variantRates[slot][v.name] = rate;
    if (!(best[slot] && variantRates[slot][best[slot]!] >= rate)) best[slot] = v.name;
    bestRate = Math.max(bestRate, rate);
    out(
      `  ${slot.padEnd(12)} ${v.name.padEnd(16)} ${median(ms).toFixed(2).padStart(9)} ms  ${
        rate.toFixed(2).padStart(6)
      } GFLOP/s`,
    );
  }
}
tuner.destroy();
out(
  `readback overhead ${overhead.toFixed(1)} ms (subtracted); fastest single variant ${
    bestRate.toFixed(2)
  } GFLOP/s`,
);

// ---- whole epochs ---------------------------------------------------------
let epochFlop = 0;
for (const [, c] of batchRanges(nTrain, batchSize)) epochFlop += 2 * stepMultiplyAdds(c);
const epochRuns: Record<string, { ms: number[]; gflops: number[] }> = {};
for (const [name, plan] of [["default", {}], ["fastest", best]] as const) {
  const trainer = await createMlpEngine(gpu, initParams(1337), data, {
    batchSize,
    lr: 0.01,
    plan,
  });
  const ms: number[] = [];
  for (let e = 0; e < epochs; e++) {
    const t0 = performance.now();
    await trainer.trainEpoch();
    ms.push(performance.now() - t0);
  }
  trainer.destroy();
  epochRuns[name] = { ms, gflops: ms.map((m) => epochFlop / m / 1e6) };
  out(
    `epoch (${name} plan: ${SLOTS.map((s) => trainer.plan[s].name).join(", ")}): ${
      ms.map((m) => m.toFixed(0)).join(", ")
    } ms = ${epochRuns[name].gflops.map((g) => g.toFixed(2)).join(", ")} GFLOP/s ` +
      `(${
        (100 * Math.max(...epochRuns[name].gflops) / bestRate).toFixed(0)
      }% of the fastest variant)`,
  );
}
if (values.json) {
  console.log(JSON.stringify({
    adapter: gpu.description,
    nTrain,
    batchSize,
    overheadMs: overhead,
    variantRates,
    best,
    bestRate,
    epochRuns,
  }));
}
