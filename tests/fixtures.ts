/**
 * Test data made in code (synthetic digits for the trainers and the fast
 * trainer's engine), and the device a test file shares.
 */

import { type Gpu, openGpu, type OpenGpuOptions } from "../shared/gpu/device.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { type Dataset, MNIST_SHAPE } from "../shared/data/dataset.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import type { TrainConfig } from "../shared/io/cli.ts";

/**
 * A trainer config for hand-made runs: `epochs` and `batchSize` as given, lr 0.05, seed 5, no
 * tuning, no JSON or profile; `over` sets anything else.
 */
export function trainConfig(
  over: Partial<TrainConfig> & Pick<TrainConfig, "epochs" | "batchSize">,
): TrainConfig {
  return { lr: 0.05, seed: 5, json: false, profile: false, noTune: true, ...over };
}

/** `n` synthetic digits: random bytes with many zeros (like MNIST), labels 0–9. */
export function synthetic(n: number, seed: number): { images: Uint8Array; labels: Uint8Array } {
  const rand = mulberry32(seed);
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < images.length; i++) images[i] = rand() < 0.6 ? 0 : Math.floor(rand() * 256);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = Math.floor(rand() * 10);
  return { images, labels };
}

/** `nTrain` training and `nTest` test synthetic digits (28 × 28, labels 0–9: MNIST's shape). */
export function engineData(nTrain: number, nTest: number, seed = 7): Dataset {
  const tr = synthetic(nTrain, seed), te = synthetic(nTest, seed + 1);
  return {
    source: "synthetic",
    ...MNIST_SHAPE,
    trainImages: tr.images,
    trainLabels: tr.labels,
    testImages: te.images,
    testLabels: te.labels,
  };
}

/**
 * Learnable digits for whole training runs: `engineData`'s random bytes with
 * the label's tenth of the image (78 pixels) set bright.
 */
export function learnableDigits(nTrain: number, nTest: number, seed = 21): Dataset {
  const d = engineData(nTrain, nTest, seed);
  for (
    const [images, labels, n] of [
      [d.trainImages, d.trainLabels, nTrain],
      [d.testImages, d.testLabels, nTest],
    ] as const
  ) {
    for (let i = 0; i < n; i++) {
      const y = labels[i];
      for (let p = y * 78; p < y * 78 + 78; p++) images[i * 784 + p] = 255;
    }
  }
  return d;
}

/**
 * Learnable digits drawn pixel by pixel from one stream: the label's tenth of
 * the image bright, the rest sparse random bytes.
 */
export function brightBandDigits(nTrain: number, nTest: number, seed = 3): Dataset {
  const rand = mulberry32(seed);
  const make = (n: number) => {
    const images = new Uint8Array(n * 784);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const y = Math.floor(rand() * 10);
      labels[i] = y;
      for (let p = 0; p < 784; p++) {
        images[i * 784 + p] = p >= y * 78 && p < y * 78 + 78
          ? 255
          : rand() < 0.7
          ? 0
          : Math.floor(rand() * 256);
      }
    }
    return { images, labels };
  };
  const tr = make(nTrain), te = make(nTest);
  return {
    source: "synthetic",
    ...MNIST_SHAPE,
    trainImages: tr.images,
    trainLabels: tr.labels,
    testImages: te.images,
    testLabels: te.labels,
  };
}

/**
 * Makes this `deno test` process skip the C libraries' exit handlers: glibc's
 * `_exit` is registered with `on_exit`, so `exit()` ends the process with its
 * status before `_dl_fini` runs libEGL's destructor. That destructor races a
 * thread of Deno's test runner that is leaving at the same moment, and glibc
 * then aborts after the summary ("corrupted size vs. prev_size";
 * bench/RESULTS.md, _Exit aborts_, and `bench/exit_abort/`). Once per process
 * (marked in its environment); Linux with glibc only, elsewhere nothing. Runs
 * when this module is imported.
 */
export function skipExitHandlers(): void {
  const mark = "MNIST_TESTS_SKIP_EXIT_HANDLERS";
  if (Deno.build.os !== "linux" || Deno.env.get(mark) === "1") return;
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
      on_exit: { parameters: ["pointer", "pointer"], result: "i32" },
    });
  } catch {
    return; // not glibc
  }
  const exit = libc.symbols.dlsym(null, new TextEncoder().encode("_exit\0"));
  if (exit && libc.symbols.on_exit(exit, null) === 0) Deno.env.set(mark, "1");
}

skipExitHandlers();

/** The one device a test file shares, and the uncaptured GPU errors not yet claimed by a test. */
export interface FileGpu extends Gpu {
  /** Uncaptured errors since the last test ended (a test may inspect and empty it). */
  errors: string[];
}

/**
 * Opens the device a test file's tests share, and ties its life to the file:
 * after each test, once the queue is idle, an uncaptured GPU error that the
 * test left in `errors` fails that test; after the last test every object
 * made on it goes with `device.destroy()`. A device left open at exit was a
 * suspect of the abort recorded in bench/RESULTS.md (_Exit aborts_).
 */
export async function fileGpu(opts: Omit<OpenGpuOptions, "onError"> = {}): Promise<FileGpu> {
  const errors: string[] = [];
  const gpu = await openGpu({ ...opts, onError: (m) => errors.push(m) });
  Deno.test.afterEach(async () => {
    await gpu.device.queue.onSubmittedWorkDone();
    if (errors.length > 0) {
      throw new Error(`uncaptured GPU error(s) in this test: ${errors.splice(0).join(" | ")}`);
    }
  });
  Deno.test.afterAll(() => gpu.device.destroy());
  return { ...gpu, errors };
}

/**
 * Writes `data` as the four uncompressed IDX files in `dir`, under MNIST's
 * names (for `--data dir`); images of `data`'s height and width.
 */
export async function writeIdxDir(dir: string, data: Dataset): Promise<void> {
  const nTrain = data.trainLabels.length, nTest = data.testLabels.length;
  const { height: h, width: w } = data;
  const files: [string, Uint8Array][] = [
    ["train-images-idx3-ubyte", encodeIdx([nTrain, h, w], data.trainImages)],
    ["train-labels-idx1-ubyte", encodeIdx([nTrain], data.trainLabels)],
    ["t10k-images-idx3-ubyte", encodeIdx([nTest, h, w], data.testImages)],
    ["t10k-labels-idx1-ubyte", encodeIdx([nTest], data.testLabels)],
  ];
  for (const [name, bytes] of files) await Deno.writeFile(`${dir}/${name}`, bytes);
}
