/**
 * Saved models in the safetensors format: an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range,
 * then the raw little-endian data. PyTorch, numpy and others read it.
 *
 * Only float32 tensors are written or accepted. The parser trusts nothing in
 * the header: every length and offset is checked against the file's real
 * size before anything is allocated, and every problem is a one-line
 * `UserError` naming the file.
 *
 * Below the format: the two models' files — the MLP (`encodeMlp`,
 * `decodeMlp`; metadata `format` "webgpu-mnist-mlp") and the CNN
 * (`encodeCnn`, `decodeCnn`; "webgpu-mnist-cnn"), each with its tensor names
 * and layout, as `deno task predict` and the fast trainer's checkpoints
 * (fast/checkpoint.ts) read them.
 *
 * @module
 */

import { UserError } from "./errors.ts";
import type { MlpParams } from "../model/mlp.ts";
import { type DataShape, MNIST_SHAPE, sizeText } from "../data/dataset.ts";
import {
  CNN_LAYER_NAMES,
  cnnDims,
  cnnLayerSizes,
  type CnnParams,
  type CnnShape,
} from "../model/cnn.ts";

/** A named float32 tensor. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** The tensors and string metadata of one file. */
export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** The largest header we read (the format's own reference sets 100 MB). */
const MAX_HEADER = 100_000_000;

/** Serialises tensors (in insertion order) and metadata. */
export function encodeSafetensors(
  tensors: Map<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`tensor ${name}: shape ${t.shape} does not hold ${t.data.length} values`);
    }
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned.
  const jsonBytes = new Uint8Array(raw.length + (8 - ((8 + raw.length) % 8)) % 8).fill(0x20);
  jsonBytes.set(raw);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const t of tensors.values()) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at); // float32 little-endian, as every platform Deno runs on
    at += bytes.length;
  }
  return out;
}

/** Parses a safetensors file's bytes; `name` is used in error messages. */
export function decodeSafetensors(bytes: Uint8Array, name: string): SafetensorsFile {
  const fail = (what: string): never => {
    throw new UserError(`${name}: not a valid safetensors file: ${what}`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes, shorter than the 8-byte header length`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    fail(`header length ${headerLen} exceeds the file (${bytes.length} bytes)`);
  }
  const dataStart = 8 + Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, dataStart),
    ));
  } catch {
    fail("header is not valid UTF-8 JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail("__metadata__ is not an object");
      }
      for (const v of Object.values(value as object)) {
        if (typeof v !== "string") fail("__metadata__ values must be strings");
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) fail(`tensor '${key}' has no description`);
    if (e.dtype !== "F32") {
      fail(`tensor '${key}' has dtype ${String(e.dtype)}, only F32 is supported`);
    }
    const shape = e.shape;
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) fail(`tensor '${key}' has a bad shape`);
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) fail(`tensor '${key}' has bad data_offsets`);
    const [begin, end] = offs as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLen) {
      fail(`tensor '${key}' data [${begin}, ${end}) lies outside the ${dataLen} data bytes`);
    }
    if (end - begin !== count * 4) {
      fail(`tensor '${key}' holds ${end - begin} bytes, shape [${shape}] needs ${count * 4}`);
    }
    ranges.push([begin, end, key]);
    // Copy: the source may be unaligned for a Float32Array view.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(key, { shape: shape as number[], data });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      fail(`tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
    }
  }
  return { tensors, metadata };
}

/** Tensor names of layer `l` (0-based): `layer1.weight` [in, out], `layer1.bias` [out]. */
function layerTensorNames(l: number): { weight: string; bias: string } {
  return { weight: `layer${l + 1}.weight`, bias: `layer${l + 1}.bias` };
}

/** The parameter tensors of `params` by file name, in the order W1, b1, W2, b2, W3, b3. */
export function mlpNamedTensors(params: MlpParams): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  for (let l = 0; l < params.weights.length; l++) {
    const n = layerTensorNames(l);
    tensors.set(n.weight, {
      shape: [params.sizes[l], params.sizes[l + 1]],
      data: params.weights[l],
    });
    tensors.set(n.bias, { shape: [params.sizes[l + 1]], data: params.biases[l] });
  }
  return tensors;
}

/** The image size an MLP takes: `height × width` = its first layer's inputs. */
export type ImageSize = Pick<DataShape, "height" | "width">;

/**
 * The MLP as safetensors. Weights are stored `[in, out]` (z = x·W + b); a
 * PyTorch `nn.Linear` holds the transpose. The metadata records the layer
 * sizes (`sizes`: pixels, hidden layers, classes), the image size when it is
 * not MNIST's 28 × 28 (`image`, "HxW"; absent, as in files written before
 * it existed, it is 28x28) and the layout, plus whatever `extra` the caller
 * adds; `more` tensors follow the parameters (a checkpoint's optimiser state).
 * Without `image`: 28 × 28 for 784 inputs, else one row of pixels.
 */
export function encodeMlp(
  params: MlpParams,
  extra: Record<string, string> = {},
  more: Map<string, Tensor> = new Map(),
  image: ImageSize = params.sizes[0] === MNIST_SHAPE.height * MNIST_SHAPE.width
    ? MNIST_SHAPE
    : { height: 1, width: params.sizes[0] },
): Uint8Array<ArrayBuffer> {
  if (image.height * image.width !== params.sizes[0]) {
    throw new Error(`encodeMlp: ${sizeText(image)} images do not give ${params.sizes[0]} inputs`);
  }
  const tensors = mlpNamedTensors(params);
  for (const [name, t] of more) tensors.set(name, t);
  const mnistSize = image.height === MNIST_SHAPE.height && image.width === MNIST_SHAPE.width;
  return encodeSafetensors(tensors, {
    format: "webgpu-mnist-mlp",
    sizes: params.sizes.join(","),
    ...(mnistSize ? {} : { image: sizeText(image) }),
    layout: "weight[in][out], z = x·weight + bias, ReLU between layers, softmax at the end",
    ...extra,
  });
}

/**
 * The image size and classes of an MLP file: `image` metadata ("HxW"), or
 * 28x28 when it has none (files written before it existed); classes are the
 * last layer's width. A size that does not give the first layer's inputs is
 * a one-line `UserError`.
 */
function mlpShape(metadata: Record<string, string>, sizes: number[], name: string): DataShape {
  const inputs = sizes[0], classes = sizes[sizes.length - 1];
  if (metadata.image === undefined) {
    if (inputs !== MNIST_SHAPE.height * MNIST_SHAPE.width) {
      throw new UserError(
        `${name}: the MLP takes ${inputs} inputs, but its metadata has no 'image' size ` +
          `(only 28x28 may go without)`,
      );
    }
    return { ...MNIST_SHAPE, classes };
  }
  const m = /^([1-9][0-9]*)x([1-9][0-9]*)$/.exec(metadata.image);
  if (!m || Number(m[1]) * Number(m[2]) !== inputs) {
    throw new UserError(
      `${name}: metadata 'image' '${metadata.image}' is not an HxW size of the MLP's ${inputs} inputs`,
    );
  }
  return { height: Number(m[1]), width: Number(m[2]), classes };
}

/**
 * Reads an MLP saved by `encodeMlp`, with the image size and classes it
 * takes (`shape`). When `expectSizes` is given, a file of another shape is
 * refused with a message naming both.
 */
export function decodeMlp(
  bytes: Uint8Array,
  name: string,
  expectSizes?: readonly number[],
): {
  params: MlpParams;
  shape: DataShape;
  metadata: Record<string, string>;
  tensors: Map<string, Tensor>;
} {
  const { tensors, metadata } = decodeSafetensors(bytes, name);
  if (metadata.format === "webgpu-mnist-cnn") {
    throw new UserError(
      `${name}: holds a CNN (saved with --model cnn), not an MLP; add --model cnn`,
    );
  }
  const sizes = (metadata.sizes ?? "").split(",").map(Number);
  if (sizes.length < 2 || !sizes.every((s) => Number.isSafeInteger(s) && s > 0)) {
    throw new UserError(`${name}: not a saved MLP (metadata 'sizes' is missing or bad)`);
  }
  if (expectSizes && sizes.join(",") !== expectSizes.join(",")) {
    throw new UserError(
      `${name}: model has layers ${sizes.join("→")}, this program needs ${expectSizes.join("→")}`,
    );
  }
  const shape = mlpShape(metadata, sizes, name);
  const weights: Float32Array[] = [], biases: Float32Array[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const n = layerTensorNames(l);
    const w = tensors.get(n.weight), b = tensors.get(n.bias);
    if (!w || !b) throw new UserError(`${name}: tensor '${!w ? n.weight : n.bias}' is missing`);
    if (
      w.shape.join(",") !== `${sizes[l]},${sizes[l + 1]}` || b.shape.join(",") !== `${sizes[l + 1]}`
    ) {
      throw new UserError(`${name}: layer ${l + 1} tensors do not match sizes ${sizes.join(",")}`);
    }
    weights.push(w.data);
    biases.push(b.data);
  }
  return { params: { sizes, weights, biases }, shape, metadata, tensors };
}

// ---------------------------------------------------------------------------
// Saved CNNs (`--model cnn`)

/** The `format` metadata of a saved CNN (the MLP's is `webgpu-mnist-mlp`). */
const CNN_FORMAT = "webgpu-mnist-cnn";

/** The `layout` metadata of a saved CNN: how to read its tensors without this code. */
const CNN_LAYOUT =
  "NHWC activations; conv1.weight [k*k, C1] and conv2.weight [k*k*C1, C2] are [in][out] " +
  "with rows in (ky, kx, c) order (the im2col columns: z = cols·weight + bias, valid " +
  "convolution, stride 1), each followed by ReLU and a 2x2 max-pool (stride 2, odd last " +
  "row/column dropped); linear.weight [F, classes] with F = pooled (y, x, c) flattened; " +
  "input pixels byte/255; softmax at the end";

/** The parameter tensors of `p` by file name, in the order W1, b1, W2, b2, W3, b3. */
export function cnnNamedTensors(p: CnnParams): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  cnnLayerSizes(p.shape).forEach(([k, n], l) => {
    tensors.set(`${CNN_LAYER_NAMES[l]}.weight`, {
      shape: [k, n],
      data: Float32Array.from(p.weights[l]),
    });
    tensors.set(`${CNN_LAYER_NAMES[l]}.bias`, { shape: [n], data: Float32Array.from(p.biases[l]) });
  });
  return tensors;
}

/**
 * The CNN as safetensors: `conv1.weight` `[k·k, C1]`, `conv1.bias` `[C1]`,
 * `conv2.weight` `[k·k·C1, C2]`, `conv2.bias`, `linear.weight` `[F, classes]`,
 * `linear.bias`; metadata `format` (`CNN_FORMAT`), `shape` (JSON of the
 * `CnnShape`), `layout` (`CNN_LAYOUT`), plus `extra`; and `more` tensors
 * after the parameters (a checkpoint's optimiser state).
 */
export function encodeCnn(
  params: CnnParams,
  extra: Record<string, string> = {},
  more: Map<string, Tensor> = new Map(),
): Uint8Array<ArrayBuffer> {
  const tensors = cnnNamedTensors(params);
  for (const [name, t] of more) tensors.set(name, t);
  return encodeSafetensors(tensors, {
    format: CNN_FORMAT,
    shape: JSON.stringify(params.shape),
    layout: CNN_LAYOUT,
    ...extra,
  });
}

/** Whether a file's metadata says it holds a CNN (`encodeCnn`). */
export function isCnnFile(metadata: Record<string, string>): boolean {
  return metadata.format === CNN_FORMAT;
}

function shapeText(s: CnnShape): string {
  return `${s.height}x${s.width} input, ${s.kernel}x${s.kernel} kernels, ${s.c1} and ${s.c2} ` +
    `channels, ${s.classes} classes`;
}

/**
 * Reads a CNN saved by `encodeCnn`; every problem is a one-line `UserError`
 * naming `name`. With `expect`, a CNN of another shape is refused naming both.
 */
export function decodeCnn(
  bytes: Uint8Array,
  name: string,
  expect?: CnnShape,
): {
  params: CnnParams;
  shape: DataShape;
  metadata: Record<string, string>;
  tensors: Map<string, Tensor>;
} {
  const { tensors, metadata } = decodeSafetensors(bytes, name);
  if (!isCnnFile(metadata)) {
    const what = metadata.format === "webgpu-mnist-mlp" || metadata.sizes !== undefined
      ? "it holds an MLP (use it with --model mlp)"
      : `its metadata 'format' is ${metadata.format ?? "missing"}`;
    throw new UserError(`${name}: not a saved CNN: ${what}`);
  }
  let shape: CnnShape;
  try {
    const s = JSON.parse(metadata.shape ?? "");
    const keys = ["height", "width", "kernel", "c1", "c2", "classes"] as const;
    if (!keys.every((k) => Number.isSafeInteger(s?.[k]) && s[k] > 0)) throw new Error();
    shape = Object.fromEntries(keys.map((k) => [k, s[k]])) as unknown as CnnShape;
    cnnDims(shape);
  } catch {
    throw new UserError(`${name}: metadata 'shape' of the CNN is missing or bad`);
  }
  if (expect && JSON.stringify(cnnLayerSizes(shape)) !== JSON.stringify(cnnLayerSizes(expect))) {
    throw new UserError(
      `${name}: the CNN has ${shapeText(shape)}; this program needs ${shapeText(expect)}`,
    );
  }
  const weights: Float32Array[] = [], biases: Float32Array[] = [];
  cnnLayerSizes(shape).forEach(([k, n], l) => {
    for (const [part, dims] of [["weight", [k, n]], ["bias", [n]]] as const) {
      const t = tensors.get(`${CNN_LAYER_NAMES[l]}.${part}`);
      const tensorName = `${CNN_LAYER_NAMES[l]}.${part}`;
      if (!t) throw new UserError(`${name}: tensor '${tensorName}' is missing`);
      if (t.shape.join(",") !== dims.join(",")) {
        throw new UserError(
          `${name}: tensor '${tensorName}' has shape [${t.shape}], the CNN's shape needs [${dims}]`,
        );
      }
      (part === "weight" ? weights : biases).push(t.data);
    }
  });
  const { height, width, classes } = shape;
  return {
    params: { shape, weights, biases },
    shape: { height, width, classes },
    metadata,
    tensors,
  };
}
