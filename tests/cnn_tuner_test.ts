/**
 * The CNN's tuner (fast/cnn/tuner.ts): the fastest choice of convolution
 * variants is the one kept; with `--tune` every choice that fits is timed on
 * the real adapter and the pick remembered per adapter and shape; a
 * remembered pick is used without timing, unless `--no-tune` or the pick no
 * longer fits; and a tuned run trains exactly as the default run does (the
 * timing engines leave the run's weights alone).
 */

import assert from "node:assert/strict";
import { fileGpu, learnableDigits, trainConfig } from "./fixtures.ts";
import { cnnCandidates } from "../fast/cnn/variants.ts";
import { cacheKey, chooseVariants, fastest, variantsName } from "../fast/cnn/tuner.ts";
import { type TuneCacheFile, tuneCacheFile } from "../fast/files.ts";
import { trainFast } from "../fast/train.ts";
import type { EngineSetup } from "../fast/run.ts";
import { type CnnParams, type CnnShape, initCnnParams, MNIST_CNN } from "../shared/model/cnn.ts";
import { OPTIMIZER_DEFAULTS } from "../shared/model/optim.ts";
import type { TrainConfig } from "../shared/io/cli.ts";

const gpu = await fileGpu();

/** A tune cache in memory: what a run would read from and write to the file. */
function memoryCache(): TuneCacheFile & { writes: number; text: string } {
  const cache = {
    text: "{}",
    writes: 0,
    read: () => JSON.parse(cache.text),
    write: (all: object) => {
      cache.text = JSON.stringify(all);
      cache.writes++;
      return Promise.resolve(true);
    },
  };
  return cache;
}

/**
 * The set-up of a momentum CNN run of `shape` (default MNIST's) on 16 learnable digits at batch 8,
 * `over` its flags.
 */
function setupOf(
  over: Partial<TrainConfig>,
  log: string[],
  shape: CnnShape = MNIST_CNN,
): EngineSetup<CnnParams> {
  const data = learnableDigits(16, 8);
  return {
    gpu,
    params: initCnnParams(3, shape),
    data,
    nTrain: 16,
    nTest: 8,
    config: trainConfig({ model: "cnn", epochs: 1, batchSize: 8, noTune: false, ...over }),
    optimizer: { ...OPTIMIZER_DEFAULTS, optimizer: "momentum" },
    shuffle: false,
    overlap: false,
    log: (line) => log.push(line),
  };
}

Deno.test("fastest: the choice with the least milliseconds a step, the first of equals", () => {
  const all = cnnCandidates(MNIST_CNN, 32, 8192);
  assert.equal(all.length, 3, "MNIST's CNN at batch 32: im2col, conv2 texture, both textures");
  const ms = (a: number, b: number, c: number) =>
    Object.fromEntries(all.map((v, i) => [variantsName(v), [a, b, c][i]]));
  assert.deepEqual(fastest(all, ms(3, 1, 2)), all[1]);
  assert.deepEqual(fastest(all, ms(1, 2, 3)), all[0]);
  assert.deepEqual(fastest(all, ms(3, 2, 1)), all[2]);
  assert.deepEqual(fastest(all, ms(2, 1, 1)), all[1], "equals: the first");
});

Deno.test("chooseVariants: --tune times every choice that fits and remembers the fastest; the cache is used after, unless --no-tune or it no longer fits", async () => {
  const cache = memoryCache();
  const log: string[] = [];
  const tuned = await chooseVariants(setupOf({ tune: true }, log), cache);
  const names = cnnCandidates(MNIST_CNN, 8, gpu.device.limits.maxTextureDimension2D)
    .map(variantsName);
  assert.equal(tuned.how, "tuned");
  assert.deepEqual(Object.keys(tuned.msPerStep!).sort(), [...names].sort(), "every choice timed");
  for (const ms of Object.values(tuned.msPerStep!)) assert.ok(ms > 0 && Number.isFinite(ms));
  const best = fastest(
    cnnCandidates(MNIST_CNN, 8, gpu.device.limits.maxTextureDimension2D),
    tuned.msPerStep!,
  );
  assert.deepEqual(tuned.variants, best, "the fastest kept");
  assert.match(log.join("\n"), /timing the CNN's 3 choices/);
  const remembered = Object.values(JSON.parse(cache.text)[gpu.description]);
  assert.deepEqual(remembered, [variantsName(best)], "remembered for this adapter");
  assert.equal(cache.writes, 1);

  // Next run: the cache's pick, no timing (even with --tune), nothing written.
  const again: string[] = [];
  const cached = await chooseVariants(setupOf({ tune: true }, again), cache);
  assert.deepEqual(cached, { variants: best, how: "cached" });
  assert.deepEqual(again, [], "no timing");
  assert.equal(cache.writes, 1);

  // --no-tune: the engine's defaults, whatever the cache says.
  assert.deepEqual(
    await chooseVariants(setupOf({ noTune: true }, []), cache),
    { how: "default" },
  );

  // Without --tune a CPU adapter takes the default where the cache has nothing; a GPU times.
  const untimed = gpu.software ? "default" : "tuned";
  // The pick is remembered per batch size: batch 16 finds none.
  assert.equal((await chooseVariants(setupOf({ batchSize: 16 }, []), cache)).how, untimed);

  // A pick that is no variant is not used: without --tune, the default on a CPU adapter; with
  // --tune, timed again and the entry replaced.
  const stale = memoryCache();
  const key = cacheKey(MNIST_CNN, 8);
  assert.ok(key in JSON.parse(cache.text)[gpu.description], "the key the run above wrote");
  stale.text = JSON.stringify({ [gpu.description]: { [key]: "conv1 winograd, conv2 fft" } });
  assert.equal((await chooseVariants(setupOf({}, []), stale)).how, untimed);
  const retimed = await chooseVariants(setupOf({ tune: true }, []), stale);
  assert.equal(retimed.how, "tuned");
  assert.equal(JSON.parse(stale.text)[gpu.description][key], variantsName(retimed.variants!));

  // Nor one that does not fit the shape: 12 channels in conv1 leave the im2col variants only.
  const c12 = { ...MNIST_CNN, c1: 12 };
  const narrow = memoryCache();
  narrow.text = JSON.stringify({
    [gpu.description]: { [cacheKey(c12, 8)]: "conv1 texture, conv2 texture" },
  });
  assert.deepEqual(await chooseVariants(setupOf({ tune: true }, [], c12), narrow), {
    how: "default",
  });
});

Deno.test("trainFast --model cnn --tune: the default run's losses and test counts exactly; the next run takes the remembered pick", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cnn-tune-" });
  try {
    const data = learnableDigits(40, 20);
    const config = (over: Partial<TrainConfig>) =>
      trainConfig({
        model: "cnn",
        epochs: 2,
        batchSize: 8,
        optimizer: "momentum",
        ...over,
      });
    const quiet = () => {};
    const plain = await trainFast(config({}), { gpu, data, log: quiet, tuneCachePath: null });
    const lines: string[] = [];
    const cachePath = `${dir}/cache.json`;
    const tuned = await trainFast(config({ noTune: false, tune: true }), {
      gpu,
      data,
      log: (l) => lines.push(l),
      tuneCachePath: cachePath,
    });
    assert.deepEqual(tuned.epochs.map((e) => e.loss), plain.epochs.map((e) => e.loss));
    assert.deepEqual(tuned.test.confusion, plain.test.confusion);
    assert.match(lines.join("\n"), /CNN variants: conv1 \w+, conv2 \w+ \(tuned: /);
    const picked = Object.values(tuneCacheFile(cachePath)!.read()[gpu.description]);
    assert.equal(picked.length, 1);

    const next: string[] = [];
    await trainFast(config({ noTune: false, epochs: 1 }), {
      gpu,
      data,
      log: (l) => next.push(l),
      tuneCachePath: cachePath,
    });
    assert.ok(next.includes(`CNN variants: ${picked[0]} (cached)`), next.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
