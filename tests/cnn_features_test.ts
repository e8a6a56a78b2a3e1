/**
 * The fast MLP's features on `--model cnn` (issues 6 and 7), on the real
 * adapter with a few hundred synthetic 28×28 digits: checkpoints (`--save`,
 * `--resume` to the same weights, `--load`), the confusion matrix, the
 * `--plot` chart with conv1's filters, a loss that is no longer finite,
 * Ctrl-C (an aborted signal in process, and a real SIGINT to `fast/main.ts`), and
 * `deno task predict` on a saved CNN. Oracles: the CPU reference of
 * shared/model/cnn.ts and the files themselves.
 *
 * @module
 */

import assert from "node:assert/strict";
import { brightBandDigits, fileGpu } from "./fixtures.ts";
import { fastMainOutput, interruptAfterFirstEpoch } from "./interrupt.ts";
import { createCnnEngine } from "../fast/cnn/engine.ts";
import { decodeCheckpoint } from "../fast/checkpoint.ts";
import { cnnModel } from "../fast/cnn/model.ts";
import { EpochInterrupted } from "../fast/engine.ts";
import { predictFiles } from "../fast/predict.ts";
import { trainFast } from "../fast/train.ts";
import type { TrainConfig } from "../shared/io/cli.ts";
import { cnnPredict, type CnnShape, initCnnParams, MNIST_CNN } from "../shared/model/cnn.ts";
import { UserError } from "../shared/io/errors.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { decodeCnn, encodeCnn, encodeMlp } from "../shared/io/safetensors.ts";
import { initParams } from "../shared/model/mlp.ts";
import { type Dataset, limitDataset } from "../shared/data/dataset.ts";
import { OPTIMIZER_DEFAULTS } from "../shared/model/optim.ts";
import { confusionMatrix, filtersSvg } from "../shared/io/report.ts";

const gpu = await fileGpu();
const gpuErrors = gpu.errors;
const quiet = () => {};

function cnnConfig(over: Partial<TrainConfig>): TrainConfig {
  return {
    model: "cnn",
    epochs: 1,
    batchSize: 32,
    lr: 0.05,
    seed: 5,
    json: false,
    profile: false,
    noTune: true,
    ...over,
  };
}

const oneLine = (e: unknown) => e instanceof UserError && !e.message.includes("\n");

/** Pixels of the first `n` images as floats byte/255. */
function floats(images: Uint8Array, n: number): Float64Array {
  return Float64Array.from(images.subarray(0, n * 784), (b) => b / 255);
}

async function withDir(prefix: string, body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cnn --save: the checkpoint's tensors, layout and optimiser state; --resume = one run, bitwise", async () => {
  await withDir("cnn-resume-", async (dir) => {
    const data = brightBandDigits(100, 30);
    const flags = { optimizer: "adam" as const, lr: 0.002, shuffle: true, batchSize: 32 };
    const whole = `${dir}/whole.safetensors`, split = `${dir}/split.safetensors`;
    const one = await trainFast(cnnConfig({ ...flags, epochs: 3, save: whole }), {
      gpu,
      data,
      log: quiet,
    });
    await trainFast(cnnConfig({ ...flags, epochs: 2, save: split }), { gpu, data, log: quiet });
    const lines: string[] = [];
    const resumed = await trainFast(
      cnnConfig({ ...flags, epochs: 3, save: split, resume: true }),
      { gpu, data, log: (l) => lines.push(l) },
    );
    assert.match(
      lines[0],
      /^resuming from .*split\.safetensors: 2 epochs done, training to epoch 3/,
    );
    assert.deepEqual(resumed.resumed, { file: split, epoch: 2 });
    assert.equal(resumed.epochs.length, 1);
    assert.equal(resumed.epochs[0].epoch, 3);
    assert.equal(resumed.epochs[0].loss, one.epochs[2].loss, "epoch 3's loss");
    assert.equal(resumed.test.correct, one.test.correct);

    const a = decodeCheckpoint(cnnModel(), await Deno.readFile(whole), whole);
    const b = decodeCheckpoint(cnnModel(), await Deno.readFile(split), split);
    for (let l = 0; l < 3; l++) {
      assert.deepEqual(b.params.weights[l], a.params.weights[l], `W${l + 1}`);
      assert.deepEqual(b.params.biases[l], a.params.biases[l], `b${l + 1}`);
    }
    assert.deepEqual(b.optimizerState, a.optimizerState, "Adam's m, v and t");
    assert.equal(a.optimizerState.step, 3 * 4, "t = 3 epochs of 4 steps");
    assert.equal(a.epoch, 3);
    assert.deepEqual(b.history.map((h) => h.epoch), [1, 2, 3]);

    // The file as another program sees it.
    const { params, metadata, tensors } = decodeCnn(await Deno.readFile(whole), whole, MNIST_CNN);
    assert.equal(metadata.format, "webgpu-mnist-cnn");
    assert.deepEqual(JSON.parse(metadata.shape), MNIST_CNN);
    assert.match(metadata.layout, /\(ky, kx, c\) order/);
    assert.equal(metadata.model, "cnn");
    assert.equal(metadata.optimizer, "adam");
    assert.equal(metadata.batch_size, "32");
    assert.equal(metadata.shuffle, "true");
    const shapes = Object.fromEntries([...tensors].map(([n, t]) => [n, t.shape.join("x")]));
    assert.deepEqual(shapes, {
      "conv1.weight": "25x16",
      "conv1.bias": "16",
      "conv2.weight": "400x32",
      "conv2.bias": "32",
      "linear.weight": "512x10",
      "linear.bias": "10",
      ...Object.fromEntries(
        ["conv1", "conv2", "linear"].flatMap((l) =>
          ["m", "v"].flatMap((part) => [
            [`optim.${l}.weight.${part}`, shapes[`${l}.weight`]],
            [`optim.${l}.bias.${part}`, shapes[`${l}.bias`]],
          ])
        ),
      ),
    });
    // Its weights classify the test images as the GPU's test pass did.
    const predicted = cnnPredict(params, floats(data.testImages, 30), 30);
    const correct = predicted.filter((p, i) => p === data.testLabels[i]).length;
    assert.equal(correct, one.test.correct);
    for (const entry of Deno.readDirSync(dir)) assert.ok(!entry.name.endsWith(".tmp"));
  });
  assert.deepEqual(gpuErrors, []);
});

Deno.test("cnn --resume: another batch size, an MLP file, or no file are one line each", async () => {
  await withDir("cnn-refuse-", async (dir) => {
    const data = brightBandDigits(64, 10);
    const file = `${dir}/c.safetensors`;
    await trainFast(cnnConfig({ optimizer: "momentum", save: file }), { gpu, data, log: quiet });
    const m = decodeCheckpoint(cnnModel(), await Deno.readFile(file), file);
    assert.equal(m.optimizerState.parts.length, 1, "one part: the velocity");
    assert.equal(m.optimizerState.parts[0].length, 6, "a velocity per tensor");
    const refused = async (over: Partial<TrainConfig>, pattern: RegExp) => {
      await assert.rejects(
        () => trainFast(cnnConfig(over), { gpu, data, log: quiet }),
        (e: unknown) => oneLine(e) && pattern.test((e as Error).message),
      );
    };
    await refused(
      { optimizer: "momentum", batchSize: 16, epochs: 2, save: file, resume: true },
      /--resume: .*c\.safetensors was saved with --batch-size 32, this run has 16/,
    );
    await refused(
      { optimizer: "adam", epochs: 2, save: file, resume: true },
      /saved with --optimizer momentum, this run has adam/,
    );
    await refused(
      { epochs: 2, save: `${dir}/none.safetensors`, resume: true },
      /--resume: .*none\.safetensors does not exist/,
    );
    const mlp = `${dir}/mlp.safetensors`;
    await Deno.writeFile(mlp, encodeMlp(initParams(1)));
    await refused({ load: mlp }, /mlp\.safetensors: not a saved CNN: it holds an MLP/);
    const small: CnnShape = { ...MNIST_CNN, c1: 8 };
    const other = `${dir}/other.safetensors`;
    await Deno.writeFile(other, encodeCnn(initCnnParams(1, small)));
    await refused({ load: other }, /the CNN has .*8 and 32 channels.*needs .*16 and 32 channels/);
    await refused({ save: `${dir}/no/such/dir/c.safetensors` }, /directory .* does not exist/);
  });
});

Deno.test("cnn --load starts from the file's weights (= the same weights passed in code)", async () => {
  await withDir("cnn-load-", async (dir) => {
    const data = brightBandDigits(64, 10, 4);
    const start = initCnnParams(99);
    const file = `${dir}/start.safetensors`;
    await Deno.writeFile(file, encodeCnn(start));
    const lines: string[] = [];
    const loaded = await trainFast(cnnConfig({ load: file }), {
      gpu,
      data,
      log: (l) => lines.push(l),
    });
    assert.ok(lines.some((l) => l.includes(`starting from the weights in ${file}`)));
    const { trainCnn } = await import("../fast/cnn/model.ts");
    const direct = await trainCnn(
      { ...cnnConfig({}), ...OPTIMIZER_DEFAULTS, shuffle: false },
      { gpu, data, log: quiet, params: start },
    );
    assert.equal(loaded.epochs[0].loss, direct.epochs[0].loss);
    const fresh = await trainFast(cnnConfig({}), { gpu, data, log: quiet });
    assert.notEqual(loaded.epochs[0].loss, fresh.epochs[0].loss, "not initCnnParams(seed)");
  });
});

Deno.test("cnn: the confusion matrix on stderr and in the summary equals the CPU's predictions", async () => {
  await withDir("cnn-confusion-", async (dir) => {
    const data = brightBandDigits(96, 40, 6);
    const file = `${dir}/c.safetensors`;
    const lines: string[] = [];
    const s = await trainFast(cnnConfig({ epochs: 2, lr: 0.1, save: file }), {
      gpu,
      data,
      log: (l) => lines.push(l),
    });
    const { params } = decodeCnn(await Deno.readFile(file), file);
    const expected = confusionMatrix(
      cnnPredict(params, floats(data.testImages, 40), 40),
      data.testLabels,
    );
    assert.deepEqual(s.test.confusion, expected);
    const trace = expected.reduce((a, row, i) => a + row[i], 0);
    assert.equal(s.test.correct, trace);
    assert.equal(s.test.accuracy, trace / 40);
    const at = lines.findIndex((l) => l.startsWith("validation:"));
    assert.ok(at >= 0, lines.join("\n"));
    assert.match(lines[at + 1], /^true\\pred/);
  });
});

Deno.test("cnn --plot: loss, accuracy per epoch and conv1's 16 filters; filtersSvg's greys", async () => {
  await withDir("cnn-plot-", async (dir) => {
    const data = brightBandDigits(64, 20, 7);
    const plot = `${dir}/cnn.svg`, save = `${dir}/c.safetensors`;
    await trainFast(cnnConfig({ epochs: 2, plot, save }), { gpu, data, log: quiet });
    const svg = await Deno.readTextFile(plot);
    assert.match(svg, /^<svg /);
    assert.match(svg, /conv1's 16 filters \(5×5\)/);
    assert.equal(svg.match(/<title>filter \d+,/g)?.length, 16);
    assert.equal(svg.match(/<polyline /g)?.length, 2, "loss and accuracy lines");
    // Each plotted epoch has a measured accuracy.
    const { history } = decodeCheckpoint(cnnModel(), await Deno.readFile(save), save);
    assert.ok(history.every((h) => typeof h.accuracy === "number"), JSON.stringify(history));
  });
  // 2×2 kernel, 2 filters: filter c's pixel (ky, kx) is w[(ky·2 + kx)·2 + c], scaled to ±max.
  const strip = filtersSvg([1, 0, -1, 0.5, 0.5, 0, 0, -1], 2, 2);
  const greys = [...strip.svg.matchAll(/fill="rgb\((\d+),/g)].map((m) => Number(m[1]));
  assert.deepEqual(greys, [255, 0, 191, 128, 128, 191, 128, 0]);
  assert.ok(strip.height > 48);
});

Deno.test("cnn: a loss that is no longer finite names the epoch and step; the checkpoint stays", async () => {
  // The CNN's loss kernel is stable (log-sum-exp): a diverging run's loss stays finite, only
  // huge, up to lr ≈ 1e8 here; at 1e20 the weights overflow f32 and the loss becomes NaN.
  await withDir("cnn-nan-", async (dir) => {
    const data = brightBandDigits(128, 10);
    const file = `${dir}/c.safetensors`;
    await trainFast(cnnConfig({ save: file }), { gpu, data, log: quiet });
    const before = await Deno.readFile(file);
    let message = "";
    await assert.rejects(
      () =>
        trainFast(cnnConfig({ epochs: 3, lr: 1e20, save: file, resume: true }), {
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
    assert.match(message, /the training loss became (NaN|Infinity) in epoch 2 at step \d+ of 4/);
    assert.match(message, /--lr 100000000000000000000 is too large.*still holds epoch 1$/);
    const step = Number(message.match(/at step (\d+)/)![1]);
    assert.ok(step >= 2, `step ${step}: step 1 starts from good weights`);
    assert.deepEqual(await Deno.readFile(file), before, "the last good checkpoint is untouched");
  });
});

Deno.test("cnn: an aborted signal stops the epoch after the submitted steps (exit 130, checkpoint kept)", async () => {
  // The engine: stop() is asked between submits of 16 steps (once here: 24 steps), never after
  // the last; true when asked.
  const data = brightBandDigits(96, 8);
  const engine = await createCnnEngine(gpu.device, {
    params: initCnnParams(2),
    batchSize: 4,
    lr: 0.01,
    optimizer: OPTIMIZER_DEFAULTS,
    data: limitDataset(data, 96, 0),
  });
  let asked = 0;
  const progress: number[] = [];
  await assert.rejects(
    () => engine.trainEpoch((done) => progress.push(done), () => ++asked > 0),
    (e: unknown) => e instanceof EpochInterrupted && e.stepsDone === 16,
  );
  assert.equal(engine.steps, 24, "steps per epoch");
  assert.equal((await engine.readOptimizerState()).step, 16, "steps taken");
  assert.deepEqual(progress, [16], "the submitted chunk reported as it finished");
  assert.equal(asked, 1, "asked between the two chunks only");
  let asks = 0;
  const loss = await engine.trainEpoch(undefined, () => (asks++, false));
  assert.ok(Number.isFinite(loss) && loss > 0, `a whole epoch's loss: ${loss}`);
  assert.equal(asks, 1, "not asked before the first chunk nor after the last");
  engine.destroy();

  await withDir("cnn-abort-", async (dir) => {
    const file = `${dir}/c.safetensors`;
    const stop = new AbortController();
    await assert.rejects(
      () =>
        trainFast(cnnConfig({ epochs: 5, batchSize: 4, save: file }), {
          gpu,
          data,
          signal: stop.signal,
          log: (l) => {
            if (l.startsWith("[epoch 1 done]")) stop.abort();
          },
        }),
      (e: unknown) =>
        oneLine(e) && (e as UserError).exitCode === 130 &&
        /^interrupted during epoch 2; checkpoint at .*c\.safetensors holds epoch 1; continue with --resume$/
          .test((e as Error).message),
    );
    assert.equal(decodeCheckpoint(cnnModel(), await Deno.readFile(file), file).epoch, 1);
  });
});

Deno.test("deno task predict classifies with a saved CNN as the CPU reference does", async () => {
  await withDir("cnn-predict-", async (dir) => {
    const data = brightBandDigits(10, 12, 9);
    const params = initCnnParams(11);
    const model = `${dir}/cnn.safetensors`;
    await Deno.writeFile(model, encodeCnn(params));
    const images = `${dir}/t10k-images-idx3-ubyte`;
    await Deno.writeFile(images, encodeIdx([12, 28, 28], data.testImages));
    const results = await predictFiles(model, [images], 12);
    assert.deepEqual(
      results.map((r) => r.digit),
      [...cnnPredict(params, floats(data.testImages, 12), 12)],
    );
    assert.ok(results.every((r) => Math.abs(r.probabilities.reduce((a, b) => a + b) - 1) < 1e-9));
  });
});
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

Deno.test("cnn: a real SIGINT to fast/main.ts --model cnn exits 130 with the checkpoint line; --resume finishes", async () => {
  await withDir("cnn-sigint-", async (dir) => {
    await writeIdxDir(dir, brightBandDigits(200, 20, 8));
    const file = `${dir}/c.safetensors`;
    const flags = [
      "--model",
      "cnn",
      "--no-tune", // no timing on a GPU, and the repository's tune cache is neither read nor written
      "--data",
      dir,
      "--batch-size",
      "8",
      "--lr",
      "0.02",
      "--optimizer",
      "momentum",
      "--shuffle",
      "--save",
      file,
    ];
    const { epoch } = await interruptAfterFirstEpoch(flags, file);
    assert.equal(decodeCheckpoint(cnnModel(), await Deno.readFile(file), file).epoch, epoch - 1);
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
    const again = await fastMainOutput([...flags.slice(0, -1), whole, "--epochs", String(total)]);
    assert.equal(again.code, 0, new TextDecoder().decode(again.stderr));
    const a = decodeCnn(await Deno.readFile(file), file).params;
    const b = decodeCnn(await Deno.readFile(whole), whole).params;
    for (let l = 0; l < 3; l++) {
      assert.deepEqual(a.weights[l], b.weights[l], `W${l + 1}`);
      assert.deepEqual(a.biases[l], b.biases[l], `b${l + 1}`);
    }
  });
});
