/**
 * Faults of the fast trainer (issue 7), on the real adapter: a loss that is
 * no longer finite, Ctrl-C (a real SIGINT to a real `fast/main.ts`), a
 * device that refuses the buffers, and batch-size limits. Each ends in one
 * line with the right exit code, and never spoils the last checkpoint.
 *
 * @module
 */

import assert from "node:assert/strict";
import { brightBandDigits, fileGpu, trainConfig } from "./fixtures.ts";
import { fastMainOutput, interruptAfterFirstEpoch, interruptTwice } from "./interrupt.ts";
import { childDeadline } from "./deadline.ts";
import type { TrainConfig } from "../shared/io/cli.ts";
import { UsageError, UserError } from "../shared/io/errors.ts";
import { gpuChecked, openGpu } from "../shared/gpu/device.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import { type Dataset, MNIST_SHAPE } from "../shared/data/dataset.ts";
import { batchRanges, initParams, pixelsToFloats, trainStep } from "../shared/model/mlp.ts";
import { decodeMlp } from "../shared/io/safetensors.ts";
import { trainFast } from "../fast/train.ts";

const gpu = await fileGpu();
const gpuErrors = gpu.errors;
const quiet = () => {};

const configOf = (over: Partial<TrainConfig>) => trainConfig({ epochs: 1, batchSize: 32, ...over });

const oneLine = (e: unknown) => e instanceof UserError && !e.message.includes("\n");

Deno.test("faults: a loss that is no longer finite names the epoch and step; the checkpoint stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults-nan-" });
  try {
    const data = brightBandDigits(200, 20);
    const file = `${dir}/ckpt.safetensors`;
    await trainFast(configOf({ epochs: 1, save: file }), { gpu, data, log: quiet });
    const before = await Deno.readFile(file);
    // Epoch 2 with a learning rate that blows up (--resume does not fix lr).
    let message = "";
    await assert.rejects(
      () =>
        trainFast(configOf({ epochs: 3, lr: 100, save: file, resume: true }), {
          gpu,
          data,
          log: quiet,
        }),
      (e: unknown) => {
        assert.ok(oneLine(e), String(e));
        assert.equal((e as UserError).exitCode, 1);
        message = (e as Error).message;
        return true;
      },
    );
    assert.match(message, /in epoch 2 at step \d+ of 7/);
    assert.match(message, /try a smaller --lr/);
    assert.match(message, /still holds epoch 1/);
    // The step named is the first whose images have a non-finite loss, as the
    // CPU reference finds it for the same weights, data and learning rates.
    const step = Number(message.match(/at step (\d+)/)![1]);
    assert.equal(step, cpuFirstBadStep(data, configOf({}).seed, 32, 0.05, 100));
    assert.deepEqual(await Deno.readFile(file), before, "the last good checkpoint is untouched");
    assert.deepEqual(gpuErrors, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The CPU reference's answer to "which step first had a non-finite loss": one
 * epoch at `lr1`, then the 1-based step of the second epoch (at `lr2`) whose
 * mean loss, taken before its update, is not finite.
 */
function cpuFirstBadStep(
  data: Dataset,
  seed: number,
  batchSize: number,
  lr1: number,
  lr2: number,
): number {
  const params = initParams(seed);
  const n = data.trainLabels.length;
  const step = ([s, c]: [number, number], lr: number) =>
    trainStep(
      params,
      pixelsToFloats(data.trainImages, s, c),
      data.trainLabels.subarray(s, s + c),
      lr,
    );
  for (const r of batchRanges(n, batchSize)) step(r, lr1);
  const bad = batchRanges(n, batchSize).findIndex((r) => !Number.isFinite(step(r, lr2)));
  assert.ok(bad >= 0, "the CPU reference blows up too");
  return bad + 1;
}

/** Writes `data` as the four MNIST IDX files into `dir`. */
async function writeIdxDir(dir: string, data: Dataset) {
  const nTrain = data.trainLabels.length, nTest = data.testLabels.length;
  await Deno.writeFile(
    `${dir}/train-images-idx3-ubyte`,
    encodeIdx([nTrain, 28, 28], data.trainImages),
  );
  await Deno.writeFile(`${dir}/train-labels-idx1-ubyte`, encodeIdx([nTrain], data.trainLabels));
  await Deno.writeFile(
    `${dir}/t10k-images-idx3-ubyte`,
    encodeIdx([nTest, 28, 28], data.testImages),
  );
  await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, encodeIdx([nTest], data.testLabels));
}

Deno.test("faults: Ctrl-C stops after the running chunk, keeps the last epoch's checkpoint, exits 130; --resume finishes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults-sigint-" });
  try {
    await writeIdxDir(dir, brightBandDigits(300, 60, 8));
    const file = `${dir}/ckpt.safetensors`;
    const flags = [
      "--data",
      dir,
      "--batch-size",
      "32",
      "--lr",
      "0.05",
      "--optimizer",
      "momentum",
      "--shuffle",
      "--no-tune",
      "--save",
      file,
    ];
    const { epoch } = await interruptAfterFirstEpoch(flags, file);
    const saved = decodeMlp(await Deno.readFile(file), file).metadata;
    assert.equal(saved.epoch, String(epoch - 1), "the checkpoint holds the last completed epoch");
    for (const entry of Deno.readDirSync(dir)) {
      assert.ok(!entry.name.endsWith(".tmp"), `no partial file left: ${entry.name}`);
    }

    // --resume to epoch E + 1 = the same weights as an uninterrupted run.
    const total = epoch + 1;
    const resumed = await fastMainOutput([...flags, "--epochs", String(total), "--resume"]);
    const resumedErr = new TextDecoder().decode(resumed.stderr);
    const resumedOut = new TextDecoder().decode(resumed.stdout);
    assert.equal(resumed.code, 0, resumedErr);
    assert.ok(resumedOut.includes(`[epoch ${total} done]`), resumedOut + resumedErr);
    const whole = `${dir}/whole.safetensors`;
    const data = await loadMnist({ dataDir: dir, announce: false });
    await trainFast(
      configOf({
        epochs: total,
        batchSize: 32,
        lr: 0.05,
        seed: 1337,
        optimizer: "momentum",
        shuffle: true,
        save: whole,
      }),
      { gpu, data, log: quiet, tuneCachePath: null },
    );
    const a = decodeMlp(await Deno.readFile(file), file).params;
    const b = decodeMlp(await Deno.readFile(whole), whole).params;
    for (let l = 0; l < 3; l++) {
      assert.deepEqual(a.weights[l], b.weights[l], `W${l + 1}`);
      assert.deepEqual(a.biases[l], b.biases[l], `b${l + 1}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("faults: buffers past the device's limits are one line naming the set-up and --batch-size", async () => {
  // 65,600 rows of 512 floats: 134 MB activations, over the 128 MiB a
  // storage binding may have by default (llvmpipe keeps the default).
  const n = 65600;
  assert.ok(n * 512 * 4 > gpu.device.limits.maxStorageBufferBindingSize);
  const data: Dataset = {
    source: "synthetic",
    ...MNIST_SHAPE,
    trainImages: new Uint8Array(n * 784),
    trainLabels: new Uint8Array(n),
    testImages: new Uint8Array(784),
    testLabels: new Uint8Array(1),
  };
  const errors: string[] = [];
  const own = await openGpu({ onError: (m) => errors.push(m) });
  try {
    await assert.rejects(
      () => trainFast(configOf({ batchSize: n }), { gpu: own, data, log: quiet }),
      (e: unknown) => {
        assert.ok(oneLine(e), String(e));
        const msg = (e as Error).message;
        assert.match(msg, /setting up the fast trainer/);
        assert.match(msg, /smaller --batch-size/);
        return true;
      },
    );
    assert.deepEqual(errors, [], "nothing escaped the error scopes");
  } finally {
    own.device.destroy();
  }
});

Deno.test("faults: gpuChecked turns an out-of-range buffer into one line naming what was done", async () => {
  const huge = gpu.device.limits.maxBufferSize + 4;
  await assert.rejects(
    () =>
      gpuChecked(gpu.device, "making a test buffer", () =>
        gpu.device.createBuffer({
          label: "too large",
          size: huge,
          usage: GPUBufferUsage.STORAGE,
        })),
    (e: unknown) => oneLine(e) && /while making a test buffer/.test((e as Error).message),
  );
});

Deno.test("faults: --batch-size equal to the training set trains; one more is exit 2", async () => {
  const data = brightBandDigits(96, 10);
  const s = await trainFast(configOf({ batchSize: 96, trainLimit: 96 }), {
    gpu,
    data,
    log: quiet,
    tuneCachePath: null,
  });
  assert.ok(Number.isFinite(s.epochs[0].loss));
  await assert.rejects(
    () => trainFast(configOf({ batchSize: 97 }), { gpu, data, log: quiet }),
    (e: unknown) => e instanceof UsageError && e.exitCode === 2 && oneLine(e),
  );
});

Deno.test("faults: fast/main.ts, a real process: a loss that is no longer finite is one line and exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults-nan-cli-" });
  try {
    await writeIdxDir(dir, brightBandDigits(200, 20));
    const out = await fastMainOutput(
      ["--data", dir, "--batch-size", "32", "--lr", "100", "--epochs", "3", "--no-tune"],
    );
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    // stdout holds results only: the epoch lines before the bad one, if any.
    const stdout = new TextDecoder().decode(out.stdout);
    assert.ok(stdout.split("\n").every((l) => l === "" || l.startsWith("[epoch ")), stdout);
    const errors = stderr.split("\n").filter((l) => l.startsWith("error: "));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0], /in epoch \d+ at step \d+ of 7.*try a smaller --lr/);
    assert.ok(!/^\s+at /m.test(stderr), "no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("faults: a second Ctrl-C exits at once (130), without waiting for the orderly stop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults-sigint2-" });
  try {
    // Chunks of 32 steps of 128 images: the orderly stop after the first Ctrl-C takes a
    // while, and the second (sent every 5 ms from then on) ends the process before it.
    await writeIdxDir(dir, brightBandDigits(8192, 20, 8));
    const file = `${dir}/ckpt.safetensors`;
    const flags = ["--data", dir, "--batch-size", "128", "--no-tune", "--save", file];
    const { code, stderr } = await interruptTwice(flags);
    assert.equal(code, 130, stderr);
    assert.ok(!stderr.includes("interrupted during epoch"), `no orderly stop:\n${stderr}`);
    assert.ok(!/^\s+at /m.test(stderr), "no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("faults: without --allow-write, --save and --plot are refused in one line before any work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults-perm-" });
  try {
    await writeIdxDir(dir, brightBandDigits(64, 8));
    const main = new URL("../fast/main.ts", import.meta.url).pathname;
    for (const flag of ["--save", "--plot"]) {
      const file = `${dir}/out.${flag === "--save" ? "safetensors" : "svg"}`;
      const deadline = childDeadline(`fast/main.ts ${flag} without --allow-write`);
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-env",
          main,
          ...["--data", dir, "--epochs", "1", "--batch-size", "32", "--no-tune", flag, file],
        ],
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
        signal: deadline.signal,
      }).output();
      deadline.check();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.equal(
        stderr.trim(),
        `error: ${flag} ${file}: no permission to write there (deno run --allow-write=${dir} …)`,
      );
      await assert.rejects(() => Deno.stat(file), Deno.errors.NotFound);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
