/**
 * Features of the fast MLP trainer against CPU references, on the real
 * adapter: momentum and Adam steps (the optimiser kernels of shared/model/optim.ts
 * over the packed parameters), shuffled epochs, checkpoints (`--save`,
 * `--resume`, `--load`, and `deno task predict` reading them), the confusion
 * matrix and the `--plot` chart.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TrainConfig } from "../shared/io/cli.ts";
import { UserError } from "../shared/io/errors.ts";
import {
  batchRanges,
  cloneParams,
  initParams,
  lossAndGradients,
  type MlpParams,
  pixelsToFloats,
  predict,
} from "../shared/model/mlp.ts";
import {
  newOptimizerState,
  OPTIMIZER_DEFAULTS,
  type OptimizerOptions,
  OPTIMIZERS,
  optimizerStep,
} from "../shared/model/optim.ts";
import { confusionMatrix } from "../shared/io/report.ts";
import { shuffledIndices } from "../shared/model/rng.ts";
import { decodeMlp, decodeSafetensors, encodeMlp } from "../shared/io/safetensors.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { EpochInterrupted } from "../fast/engine.ts";
import { createMlpEngine } from "../fast/mlp/engine.ts";
import type { Dataset } from "../shared/data/dataset.ts";
import { packedLayout } from "../fast/mlp/buffers.ts";
import { predictFiles } from "../fast/predict.ts";
import { trainFast } from "../fast/train.ts";
import { trainCnn } from "../fast/cnn/model.ts";
import { decodeCheckpoint } from "../fast/checkpoint.ts";
import { mlpModel } from "../fast/mlp/model.ts";

import { engineData, fileGpu, learnableDigits, trainConfig } from "./fixtures.ts";

const gpu = await fileGpu();

/** Max over all parameters of |a − b| / (|b| + floor). */
function maxRelDiff(a: MlpParams, b: MlpParams, floor = 1e-3): number {
  let worst = 0;
  const all = (p: MlpParams) => [...p.weights, ...p.biases];
  const as = all(a), bs = all(b);
  for (let t = 0; t < as.length; t++) {
    for (let i = 0; i < as[t].length; i++) {
      const d = Math.abs(as[t][i] - bs[t][i]) / (Math.abs(bs[t][i]) + floor);
      if (!(d <= worst)) worst = d; // NaN-safe: a NaN difference wins
    }
  }
  return worst;
}

/**
 * What the steps changed, compared per tensor relative to the tensor's
 * largest change: max |Δa − Δb| / max |Δb|, Δ = p − start. (Adam's update
 * has the size lr whatever the gradient, so a gradient near zero, equal up to
 * f32 rounding, may move a weight by ±lr: a plain relative comparison of the
 * weights would see noise there.)
 */
function maxDeltaDiff(a: MlpParams, b: MlpParams, start: MlpParams): number {
  let worst = 0;
  const as = tensorsOf(a), bs = tensorsOf(b), ss = tensorsOf(start);
  for (let t = 0; t < as.length; t++) {
    let scale = 0, diff = 0;
    for (let i = 0; i < as[t].length; i++) {
      scale = Math.max(scale, Math.abs(bs[t][i] - ss[t][i]));
      const d = Math.abs((as[t][i] - ss[t][i]) - (bs[t][i] - ss[t][i]));
      if (!(d <= diff)) diff = d;
    }
    const rel = diff / Math.max(scale, 1e-30);
    if (!(rel <= worst)) worst = rel;
  }
  return worst;
}

/** The tensors of `p` in the packed order W1, b1, W2, b2, W3, b3. */
function tensorsOf(p: MlpParams): Float32Array[] {
  return p.weights.flatMap((w, l) => [w, p.biases[l]]);
}

/**
 * A CPU training loop: for each epoch, the batches of `batchRanges` over the
 * order `orderOf(epoch)` (identity when absent), lossAndGradients, then
 * shared/model/optim.ts's step over all tensors. Returns each step's mean loss.
 */
function cpuTrain(
  params: MlpParams,
  data: Dataset,
  batchSize: number,
  lr: number,
  opts: OptimizerOptions,
  epochs: number,
  orderOf?: (epoch: number) => Uint32Array,
): number[] {
  const tensors = tensorsOf(params);
  const state = newOptimizerState(opts.optimizer, tensors.map((t) => t.length));
  const losses: number[] = [];
  for (let e = 1; e <= epochs; e++) {
    const order = orderOf?.(e);
    for (const [s, c] of batchRanges(data.trainLabels.length, batchSize)) {
      const x = new Float32Array(c * 784);
      const y = new Uint8Array(c);
      for (let r = 0; r < c; r++) {
        const i = order ? order[s + r] : s + r;
        x.set(pixelsToFloats(data.trainImages, i, 1), r * 784);
        y[r] = data.trainLabels[i];
      }
      const g = lossAndGradients(params, x, y);
      losses.push(g.loss);
      optimizerStep(tensors, g.weights.flatMap((w, l) => [w, g.biases[l]]), state, lr, opts);
    }
  }
  return losses;
}

Deno.test("packedLayout: every tensor 256-byte aligned, in order, without overlap", () => {
  const p = packedLayout([784, 512, 128, 10]);
  assert.deepEqual(p.lengths, [784 * 512, 512, 512 * 128, 128, 128 * 10, 10]);
  for (let t = 0; t < p.offsets.length; t++) {
    assert.equal(p.offsets[t] % 256, 0);
    const end = p.offsets[t] + p.lengths[t] * 4;
    assert.ok(end <= (p.offsets[t + 1] ?? p.bytes));
  }
});

/**
 * Runs two epochs of `optimizer` on 45 images in batches of 16 (16, 16, 13)
 * on the GPU and on the CPU; checks every step's loss within 1e-4 relative
 * and the parameters' changes within `tolerance` of the largest change.
 */
async function checkOptimizer(opts: OptimizerOptions, lr: number, tolerance: number) {
  const data = engineData(45, 8);
  const params = initParams(1337);
  const trainer = await createMlpEngine(gpu, params, data, {
    batchSize: 16,
    lr,
    optimizer: opts,
  });
  try {
    const cpu = cloneParams(params);
    const cpuLosses = cpuTrain(cpu, data, 16, lr, opts, 2);
    // Two epochs: the second rewrites the per-step uniforms (Adam's t = 4..6).
    const gpuLosses: number[] = [];
    for (let e = 0; e < 2; e++) {
      trainer.runSteps(0, 3);
      for (const [s, c] of trainer.batches) {
        const ls = await trainer.readLosses(s, c);
        gpuLosses.push(ls.reduce((a, b) => a + b, 0) / c);
      }
    }
    const got = await trainer.readParams();
    const rel = maxDeltaDiff(got, cpu, params);
    assert.ok(
      rel < tolerance,
      `the steps' changes differ from the CPU loop's by ${rel} (relative)`,
    );
    gpuLosses.forEach((l, i) =>
      assert.ok(
        Math.abs(l - cpuLosses[i]) <= 1e-4 * cpuLosses[i],
        `step ${i + 1}: ${l} vs ${cpuLosses[i]}`,
      )
    );
    const state = await trainer.readOptimizerState();
    assert.equal(state.step, 6);
    assert.equal(state.parts.length, OPTIMIZERS[opts.optimizer].state.length);
    for (const part of state.parts) assert.equal(part.length, 6);
    assert.ok(state.parts[0][0].some((x) => x !== 0), "the state moved");
  } finally {
    trainer.destroy();
  }
}

Deno.test("fast momentum: two epochs of steps (last batch partial) equal the CPU loop", async () => {
  await checkOptimizer({ ...OPTIMIZER_DEFAULTS, optimizer: "momentum" }, 0.05, 1e-4);
});

Deno.test("fast adam: two epochs of steps (last batch partial) equal the CPU loop", async () => {
  // ε = 1e-4: Adam moves a weight by ~lr·g/(|g| + ε), so with the default
  // ε = 1e-8 a gradient of ~1e-8 (sums that cancel, equal to f32 rounding,
  // ~1e-11 apart) sets the step: measured 0.5% of lr apart from float64.
  await checkOptimizer({ ...OPTIMIZER_DEFAULTS, optimizer: "adam", eps: 1e-4 }, 0.001, 1e-4);
});

Deno.test("fast adam, default ε: the steps' changes within 2% of the largest (f32 gradients)", async () => {
  await checkOptimizer({ ...OPTIMIZER_DEFAULTS, optimizer: "adam" }, 0.001, 2e-2);
});

Deno.test("fast adamw (λ = 10): two epochs of steps (last batch partial) equal the CPU loop", async () => {
  // lr·λ = 1% a step: the decoupled decay moves a weight about as much as Adam's step does.
  await checkOptimizer(
    { ...OPTIMIZER_DEFAULTS, optimizer: "adamw", eps: 1e-4, weightDecay: 10 },
    0.001,
    1e-4,
  );
});

Deno.test("fast shuffle: the epochs' batches are those of a CPU loop over shuffledIndices", async () => {
  const data = engineData(37, 5, 3); // batches of 13: 13, 13, 11
  const opts: OptimizerOptions = { ...OPTIMIZER_DEFAULTS, optimizer: "momentum" };
  const params = initParams(9);
  const seed = 9;
  const orderOf = (e: number) => shuffledIndices(37, seed + e);
  assert.notDeepEqual(orderOf(1), orderOf(2), "the order differs per epoch");
  const trainer = await createMlpEngine(gpu, params, data, {
    batchSize: 13,
    lr: 0.05,
    optimizer: opts,
    shuffle: true,
  });
  try {
    const cpu = cloneParams(params);
    const cpuLosses = cpuTrain(cpu, data, 13, 0.05, opts, 2, orderOf);
    const gpuLosses: number[] = [];
    for (let e = 1; e <= 2; e++) {
      trainer.setOrder(orderOf(e));
      trainer.runSteps(0, 3);
      for (const [s, c] of trainer.batches) {
        const ls = await trainer.readLosses(s, c);
        gpuLosses.push(ls.reduce((a, b) => a + b, 0) / c);
      }
    }
    const rel = maxRelDiff(await trainer.readParams(), cpu);
    assert.ok(rel < 1e-4, `params differ from the CPU loop by ${rel}`);
    gpuLosses.forEach((l, i) =>
      assert.ok(Math.abs(l - cpuLosses[i]) <= 1e-4 * cpuLosses[i], `step ${i + 1}: ${l}`)
    );
  } finally {
    trainer.destroy();
  }
});

/** A config for hand-made runs (the flags' defaults otherwise). */
const configOf = (over: Partial<TrainConfig>) => trainConfig({ epochs: 3, batchSize: 64, ...over });

const quiet = () => {};

Deno.test("fast Ctrl-C: the MLP's epoch stops after the submitted chunk, not at the epoch's end", async () => {
  // What trainFast does with an aborted signal: trainEpoch's stop callback is asked between
  // chunks, once the next one was submitted. 400 images in batches of 4 are 100 steps in chunks of 8 (the short
  // first one), 32, 32 and 28. A request that comes during the first chunk is seen after the
  // second was submitted: 40 steps run, then the epoch is abandoned with 60 steps to go.
  const data = engineData(400, 8, 19);
  const params = initParams(3);
  const opts = { batchSize: 4, lr: 0.05 };
  const stopped = await createMlpEngine(gpu, params, data, opts);
  const reference = await createMlpEngine(gpu, params, data, opts);
  try {
    assert.equal(stopped.batches.length, 100);
    let asked = 0;
    await assert.rejects(
      () => stopped.trainEpoch(undefined, () => ++asked >= 2),
      (e: unknown) => e instanceof EpochInterrupted && e.stepsDone === 40,
    );
    assert.equal(asked, 2, "asked once per submitted chunk, never again after stopping");
    reference.runSteps(0, 40);
    const [got, want] = [await stopped.readParams(), await reference.readParams()];
    assert.deepEqual(got.weights, want.weights, "exactly the first 40 steps ran");
    assert.deepEqual(got.biases, want.biases);
    reference.runSteps(40, 60);
    const whole = await reference.readParams();
    assert.notDeepEqual(got.weights, whole.weights, "the rest of the epoch did not run");
    // Between chunks only: a stop asked for once the last chunk was submitted is not seen, and
    // the epoch that ran in full returns its loss. 4 chunks: asked once each of the first
    // three was submitted, not after the 4th (the last).
    asked = 0;
    const loss = await reference.trainEpoch(undefined, () => ++asked > 3);
    assert.ok(Number.isFinite(loss));
    assert.equal(asked, 3, "asked between chunks, never after the last");
  } finally {
    stopped.destroy();
    reference.destroy();
  }
});

Deno.test("fast Ctrl-C through trainFast: the signal is read between chunks, the epoch abandoned mid-way", async () => {
  // The run loop asks the signal at each epoch's start and, through the engine's stop, after
  // each submitted chunk (100 steps of 4 images: chunks of 8, 32, 32, 28). A signal that reads
  // aborted from its third read on (epoch 1's start, then after chunks 1 and 2) stops epoch 1
  // after 40 steps: nothing logged, nothing saved, exit code 130.
  const dir = await Deno.makeTempDir({ prefix: "fast-abort-" });
  try {
    const file = `${dir}/never.safetensors`;
    let reads = 0;
    const signal = {
      get aborted() {
        return ++reads >= 3;
      },
    } as unknown as AbortSignal;
    const lines: string[] = [];
    await assert.rejects(
      () =>
        trainFast(configOf({ epochs: 3, batchSize: 4, lr: 0.05, save: file }), {
          gpu,
          data: learnableDigits(400, 8),
          log: (l) => lines.push(l),
          signal,
          tuneCachePath: null,
        }),
      (e: unknown) =>
        e instanceof UserError && e.exitCode === 130 &&
        /^interrupted during epoch 1;/.test(e.message),
    );
    assert.equal(reads, 3, "read at the epoch's start and after the first two chunks");
    assert.ok(!lines.some((l) => l.startsWith("[epoch")), lines.join("\n"));
    await assert.rejects(() => Deno.stat(file), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --save/--resume: 3 epochs in one go = 2 epochs + resume for 1 (Adam, shuffled)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-resume-" });
  try {
    const data = learnableDigits(200, 50); // batches of 64: 64, 64, 64, 8
    const common = { optimizer: "adam" as const, lr: 0.002, shuffle: true };
    const whole = `${dir}/whole.safetensors`, parts = `${dir}/parts.safetensors`;
    const one = await trainFast(configOf({ ...common, epochs: 3, save: whole }), {
      gpu,
      data,
      log: quiet,
      tuneCachePath: null,
    });
    await trainFast(configOf({ ...common, epochs: 2, save: parts }), {
      gpu,
      data,
      log: quiet,
      tuneCachePath: null,
    });
    const lines: string[] = [];
    const rest = await trainFast(configOf({ ...common, epochs: 3, save: parts, resume: true }), {
      gpu,
      data,
      log: (l) => lines.push(l),
      tuneCachePath: null,
    });
    assert.deepEqual(rest.epochs.map((e) => e.epoch), [3], "only epoch 3 runs");
    assert.deepEqual(rest.resumed, { file: parts, epoch: 2 });
    assert.ok(lines.some((l) => l.startsWith("resuming from")));
    assert.equal(rest.epochs[0].loss, one.epochs[2].loss, "the same epoch-3 loss");
    const a = decodeMlp(await Deno.readFile(whole), whole).params;
    const b = decodeMlp(await Deno.readFile(parts), parts).params;
    assert.equal(maxRelDiff(b, a, 1e-6), 0, "bitwise the same weights");
    assert.equal(rest.test.correct, one.test.correct);
    // The checkpoint holds what resuming needs.
    const meta = decodeMlp(await Deno.readFile(parts), parts).metadata;
    assert.equal(meta.epoch, "3");
    assert.equal(meta.optimizer, "adam");
    assert.equal(meta.optimizer_step, String(3 * 4));
    assert.equal(JSON.parse(meta.history).length, 3);
    // Another batch size is refused with one line naming it.
    await assert.rejects(
      () =>
        trainFast(configOf({ ...common, batchSize: 50, epochs: 4, save: parts, resume: true }), {
          gpu,
          data,
          log: quiet,
          tuneCachePath: null,
        }),
      (e: unknown) =>
        e instanceof UserError && /--batch-size 64, this run has 50/.test(e.message) &&
        !e.message.includes("\n"),
    );
    await assert.rejects(
      () =>
        trainFast(configOf({ epochs: 1, save: `${dir}/none.safetensors`, resume: true }), {
          gpu,
          data,
          log: quiet,
        }),
      (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --save/--resume with adamw: m, v, t and λ round-trip; 1 epoch + resume = 2 in one go", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-adamw-" });
  try {
    const data = learnableDigits(100, 20); // batches of 32: 32, 32, 32, 4
    const common = { optimizer: "adamw" as const, lr: 0.002, weightDecay: 0.5, batchSize: 32 };
    const whole = `${dir}/whole.safetensors`, parts = `${dir}/parts.safetensors`;
    const run = (over: Partial<TrainConfig>) =>
      trainFast(configOf({ ...common, ...over }), { gpu, data, log: quiet, tuneCachePath: null });
    const one = await run({ epochs: 2, save: whole });
    await run({ epochs: 1, save: parts });
    const rest = await run({ epochs: 2, save: parts, resume: true });
    assert.deepEqual(rest.resumed, { file: parts, epoch: 1 });
    assert.equal(rest.epochs[0].loss, one.epochs[1].loss, "the same epoch-2 loss");
    const a = decodeCheckpoint(mlpModel(null), await Deno.readFile(whole), whole);
    const b = decodeCheckpoint(mlpModel(null), await Deno.readFile(parts), parts);
    assert.deepEqual(b.params, a.params, "bitwise the same weights");
    assert.deepEqual(b.optimizerState, a.optimizerState, "bitwise the same m, v and t");
    assert.equal(a.optimizerState.step, 2 * 4);
    assert.equal(a.optimizerState.parts.length, 2, "m and v");
    assert.ok(a.optimizerState.parts[1][0].some((x) => x > 0), "v moved");
    assert.equal(a.metadata.optimizer, "adamw");
    assert.equal(a.metadata.weight_decay, "0.5");
    const tensors = decodeSafetensors(await Deno.readFile(whole), whole).tensors;
    const stateNames = [...tensors.keys()].filter((n) => n.startsWith("optim.")).sort();
    const names = [1, 2, 3].flatMap((l) => [`layer${l}.weight`, `layer${l}.bias`]);
    assert.deepEqual(stateNames, names.flatMap((n) => [`optim.${n}.m`, `optim.${n}.v`]).sort());
    // λ is read on resume from this run's flags, as lr is; the optimiser must match.
    await assert.rejects(
      () =>
        trainFast(
          configOf({
            ...common,
            optimizer: "adam",
            weightDecay: undefined,
            epochs: 3,
            save: parts,
            resume: true,
          }),
          { gpu, data, log: quiet, tuneCachePath: null },
        ),
      (e: unknown) =>
        e instanceof UserError && /--optimizer adamw, this run has adam/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --save with momentum: the velocity is saved; predict reads the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-save-" });
  try {
    const data = learnableDigits(128, 60);
    const file = `${dir}/m.safetensors`;
    const summary = await trainFast(
      configOf({ epochs: 2, optimizer: "momentum", save: file }),
      { gpu, data, log: quiet, tuneCachePath: null },
    );
    const bytes = await Deno.readFile(file);
    const { tensors } = decodeSafetensors(bytes, file);
    assert.deepEqual(tensors.get("optim.layer1.weight.velocity")?.shape, [784, 512]);
    assert.ok(!tensors.has("optim.layer1.weight.m"));
    // `deno task predict --model FILE` on the test images, as an IDX file.
    const images = `${dir}/t10k-images-idx3-ubyte`;
    await Deno.writeFile(
      images,
      encodeIdx([60, 28, 28], data.testImages.subarray(0, 60 * 784)),
    );
    const predictions = await predictFiles(file, [images], 60);
    const right = predictions.filter((p, i) => p.digit === data.testLabels[i]).length;
    assert.equal(right, summary.test.correct, "predict agrees with the GPU's test count");
    // The CPU's confusion matrix of the saved weights is the GPU's.
    const params = decodeMlp(bytes, file).params;
    const pred = predict(params, pixelsToFloats(data.testImages, 0, 60), 60);
    assert.deepEqual(
      summary.test.confusion,
      confusionMatrix(pred, data.testLabels.subarray(0, 60)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --load starts from the saved weights; a wrong shape is one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-load-" });
  try {
    const data = learnableDigits(100, 20);
    const file = `${dir}/w.safetensors`;
    await Deno.writeFile(file, encodeMlp(initParams(99)));
    const loaded = await trainFast(configOf({ epochs: 1, load: file }), {
      gpu,
      data,
      log: quiet,
      tuneCachePath: null,
    });
    const direct = await trainFast(configOf({ epochs: 1 }), {
      gpu,
      data,
      log: quiet,
      tuneCachePath: null,
      params: initParams(99),
    });
    assert.equal(loaded.epochs[0].loss, direct.epochs[0].loss);
    const other = `${dir}/other.safetensors`;
    await Deno.writeFile(
      other,
      encodeMlp({
        sizes: [784, 16, 10],
        weights: [new Float32Array(784 * 16), new Float32Array(160)],
        biases: [new Float32Array(16), new Float32Array(10)],
      }),
    );
    await assert.rejects(
      () => trainFast(configOf({ epochs: 1, load: other }), { gpu, data, log: quiet }),
      (e: unknown) =>
        e instanceof UserError && e.message.includes(other) && /784→16→10/.test(e.message) &&
        !e.message.includes("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --plot: an SVG with loss and test accuracy for every epoch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fast-plot-" });
  try {
    const data = learnableDigits(128, 40);
    const file = `${dir}/chart.svg`;
    const lines: string[] = [];
    const summary = await trainFast(configOf({ epochs: 3, plot: file }), {
      gpu,
      data,
      log: (l) => lines.push(l),
      tuneCachePath: null,
    });
    const svg = await Deno.readTextFile(file);
    assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
    assert.equal(svg.match(/<polyline/g)?.length, 2, "a loss line and an accuracy line");
    assert.equal(svg.match(/<circle/g)?.length, 6, "3 epochs × (loss, accuracy)");
    // The confusion matrix is printed for people and is in the summary.
    assert.ok(lines.some((l) => l.startsWith("true\\pred")));
    const m = summary.test.confusion!;
    assert.equal(m.flat().reduce((a, b) => a + b, 0), 40);
    assert.equal(m.reduce((a, row, t) => a + row[t], 0), summary.test.correct);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fast --model cnn: trainFast hands the optimiser and shuffle flags to trainCnn", async () => {
  const data = learnableDigits(96, 32);
  const config = configOf({
    model: "cnn",
    epochs: 1,
    batchSize: 48,
    lr: 0.001,
    optimizer: "adam",
    beta1: 0.8,
    shuffle: true,
  });
  const viaFast = await trainFast(config, { gpu, data, log: quiet });
  const direct = await trainCnn(
    { ...config, ...OPTIMIZER_DEFAULTS, optimizer: "adam", beta1: 0.8, shuffle: true },
    { gpu, data, log: quiet },
  );
  assert.equal(viaFast.epochs[0].loss, direct.epochs[0].loss);
  assert.equal(viaFast.test.correct, direct.test.correct);
  const sgd = await trainCnn({ ...config, ...OPTIMIZER_DEFAULTS, shuffle: false }, {
    gpu,
    data,
    log: quiet,
  });
  assert.notEqual(sgd.epochs[0].loss, viaFast.epochs[0].loss, "the flags made a difference");
});
