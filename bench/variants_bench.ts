/**
 * Every fast matmul variant at every shape the model uses, on the adapter at
 * hand: `deno bench bench/variants_bench.ts`. One group per shape (forward
 * 784→512 from image bytes, forward 512→128, input gradient 128→512, weight
 * gradients 512×128 and 784×512), at batch 500 (`BENCH_BATCH` to change).
 *
 * Each iteration submits `reps` dispatches of the variant in one command
 * buffer and waits once (the same `reps` for every variant of a shape, so
 * Deno.bench's comparisons hold), so the ~11 ms readback of Deno's device
 * polling is shared by enough work to be small; the GFLOP/s table printed at
 * the end subtracts it (measured alone, 0 reps) and uses the median iteration.
 *
 * @module
 */

import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import { initParams } from "../shared/model/mlp.ts";
import { createMlpEngine } from "../fast/mlp/engine.ts";
import { shapeMultiplyAdds, SLOTS, tuneCandidates, VARIANTS } from "../fast/mlp/variants/matmul.ts";
import { median } from "../fast/mlp/variants/tuner.ts";
import { envNumber } from "./env.ts";

const batch = envNumber("BENCH_BATCH", 500);
const mnist = await loadMnist({ trainLimit: batch, testLimit: 16, announce: false });
const gpu = await openGpu();
const trainer = await createMlpEngine(gpu, initParams(1337), mnist, {
  batchSize: batch,
  lr: 0,
  tuneSlots: SLOTS,
});
const maxTex = gpu.device.limits.maxTextureDimension2D;

const overheads: number[] = [];
for (let i = 0; i < 5; i++) {
  overheads.push(await trainer.timeVariant("forward1", VARIANTS[0], batch, 0));
}
const overhead = median(overheads);

const rows: { slot: string; variant: string; ms: number; gflops: number }[] = [];
for (const slot of SLOTS) {
  const shape = trainer.shapes[slot];
  const flop = 2 * shapeMultiplyAdds(shape, batch);
  const variants = tuneCandidates(shape, gpu.software, trainer.maxRows, maxTex);
  // One probe each (also the warm-up); then every variant of this shape repeats its dispatch
  // the same number of times per iteration — enough for ~30 ms of the fastest one's work — so
  // Deno.bench's times and "x faster" lines compare like with like.
  const once = new Map<string, number>();
  for (const v of variants) {
    once.set(v.name, Math.max(0.05, (await trainer.timeVariant(slot, v, batch, 1)) - overhead));
  }
  const fastest = Math.min(...once.values());
  const reps = Math.min(64, Math.max(1, Math.ceil(30 / fastest)));
  for (const v of variants) {
    const times: number[] = [];
    Deno.bench({
      name: `${slot} ${v.name} ×${reps}`,
      group: slot,
      n: once.get(v.name)! * reps > 300 ? 2 : 6,
      warmup: 1,
      async fn() {
        const ms = await trainer.timeVariant(slot, v, batch, reps);
        times.push((ms - overhead) / reps);
      },
    });
    rows.push({
      slot,
      variant: v.name,
      get ms() {
        return median(times);
      },
      get gflops() {
        return flop / median(times) / 1e6;
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  console.log(
    `\nmatmul variants on ${gpu.description}, batch ${batch} ` +
      `(readback overhead ${overhead.toFixed(1)} ms subtracted, per dispatch):`,
  );
  console.log(
    `${"shape".padEnd(12)} ${"variant".padEnd(16)} ${"ms".padStart(9)} ${"GFLOP/s".padStart(9)}`,
  );
  for (const r of rows) {
    if (!Number.isFinite(r.ms)) continue;
    console.log(
      `${r.slot.padEnd(12)} ${r.variant.padEnd(16)} ${r.ms.toFixed(3).padStart(9)} ${
        r.gflops.toFixed(2).padStart(9)
      }`,
    );
  }
  trainer.destroy();
});
