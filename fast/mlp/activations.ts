/**
 * What one step of the fast MLP engine computes, for up to `maxRows` rows,
 * and the copies ("mirrors") of operands that some kernel variants read
 * instead of a buffer: the activations a_i and their gradients ∂z_i of every
 * layer, the per-image losses, the split output-layer gradient's partial
 * sums, the test pass's counts; then rgba32float textures of the hidden
 * layers' weights and activations (texture variants) and a uniform copy of
 * the output layer's weights (the CPU-shaped output layer). Layer i of an MLP
 * with sizes [n0, …, nL] maps n(i−1) to n_i; hidden layers are 1 … L − 1.
 *
 * A mirror is refreshed right after its operand is written, when the
 * kernels about to run read it (fast/mlp/step.ts, `encodeStages`). Made once
 * by fast/mlp/engine.ts; the parameters, dataset and tables are
 * fast/mlp/buffers.ts's. WebGPU and plain TypeScript only.
 *
 * @module
 */

import type { Allocator, BufferRange, MlpSetup, ParameterBuffers } from "./buffers.ts";
import { TEXTURE_ROW_FLOATS } from "./variants/matmul.ts";

/** Rows per chunk of the split output-layer weight gradient (`weightGradSplit.wgsl`). */
export const SPLIT_CHUNK = 32;

// ---------------------------------------------------------------------------
// Activations, their gradients, losses

/** What one step computes, for up to `maxRows` rows. Arrays are indexed by layer (1-based). */
export interface ActivationBuffers {
  /** a_i = relu(a(i−1)·W_i + b_i): [maxRows, n_i], i = 1 … L − 1 (a_0: the images). */
  acts: GPUBuffer[];
  /** ∂loss/∂z_i: [maxRows, n_i], i = 1 … L (∂z_L = softmax(z_L) − onehot(y), ÷ rows). */
  dz: GPUBuffer[];
  /** −log p_y of each training image, by position in the epoch's order: [nTrain]. */
  losses: GPUBuffer;
  /** The epoch's Σ losses: [1]. */
  lossTotal: GPUBuffer;
  /** Split output-layer weight gradient: partial sums, [⌈maxRows / 32⌉, n(L−1) · nL + nL]. */
  splitPartials?: GPUBuffer;
  /** Floats per row of `splitPartials`: ∂W_L and ∂b_L. */
  splitWidth: number;
  /** Test pass: logits z_L = a_(L−1)·W_L + b_L of a chunk, [maxRows, nL]. */
  testLogits: GPUBuffer;
  /** Test pass: confusion[t][p], [nL, nL] u32. */
  confusion: GPUBuffer;
}

/** The activation buffers of `setup`. */
export function activationBuffers(alloc: Allocator, setup: MlpSetup): ActivationBuffers {
  const S = GPUBufferUsage.STORAGE, CS = GPUBufferUsage.COPY_SRC, CD = GPUBufferUsage.COPY_DST;
  const { sizes, maxRows, nTrain } = setup;
  const L = sizes.length - 1, nL = sizes[L];
  const rows = (name: string, n: number) =>
    alloc.buffer(`${name} [${maxRows}, ${n}]`, maxRows * n * 4, S | CS);
  const acts: GPUBuffer[] = [], dz: GPUBuffer[] = [];
  for (let i = 1; i < L; i++) acts[i] = rows(`a${i}`, sizes[i]);
  for (let i = L; i >= 1; i--) dz[i] = rows(`dz${i}`, sizes[i]);
  const splitWidth = sizes[L - 1] * nL + nL;
  const splitRows = Math.ceil(maxRows / SPLIT_CHUNK);
  return {
    acts,
    dz,
    losses: alloc.buffer(`per-image losses [${nTrain}]`, nTrain * 4, S | CS),
    lossTotal: alloc.buffer("epoch loss total", 4, S | CS),
    splitPartials: setup.output.weightGrad === "split"
      ? alloc.buffer(
        `layer-${L} gradient partial sums [${splitRows}, ${splitWidth}]`,
        splitRows * splitWidth * 4,
        S,
      )
      : undefined,
    splitWidth,
    testLogits: rows("test logits", nL),
    confusion: alloc.buffer(`test confusion counts [${nL}, ${nL}]`, nL * nL * 4, S | CS | CD),
  };
}

// ---------------------------------------------------------------------------
// Mirrors: textures (rgba32float, 4 floats per texel along a row) and the uniform copy

/** A copy of an operand that some variants read instead of its buffer. */
export interface Mirror {
  /** The operand's buffer (or its range of the packed parameters). */
  src: GPUBuffer | BufferRange;
  /** Floats per row. */
  floatsPerRow: number;
  /** Rows to copy: all of the operand's (weights), or "batch": the step's rows. */
  rows: number | "batch";
  /** The texture [rows][floatsPerRow / 4] (texture variants)… */
  texture?: GPUTexture;
  /** …or a uniform buffer holding all of it (`outputLayer.wgsl`). */
  uniform?: GPUBuffer;
}

/**
 * The mirrors by operand: "W<i>", "a<i>", "dz<i>" for the texture variants
 * of the hidden layers, and "W<L>" (the uniform copy) for the CPU-shaped
 * output layer. `dummyTex` is bound where a variant reads no texture.
 */
export interface Mirrors {
  mirrors: Map<string, Mirror>;
  /** A 1 × 1 texture for a binding a variant does not read. */
  dummyTex: GPUTexture;
  /** The texture of `operand`, or `dummyTex` when it has none. */
  tex(operand: string): GPUTexture;
}

/**
 * The mirrors of `setup`. A texture is made only where it fits the device
 * (`maxTextureRows` a side) and its rows can be copied (`TEXTURE_ROW_FLOATS`
 * floats to a line); the texture
 * variants that would need one that is missing do not fit
 * (`variantFits` in fast/mlp/variants/matmul.ts).
 */
export function createMirrors(
  alloc: Allocator,
  setup: MlpSetup,
  params: ParameterBuffers,
  acts: ActivationBuffers,
): Mirrors {
  const { sizes, maxRows, maxTextureRows: maxTex } = setup;
  const L = sizes.length - 1;
  const mirrors = new Map<string, Mirror>();
  const dummyTex = alloc.texture("unused texture binding", 1, 1);
  const texture = (
    name: string,
    src: GPUBuffer | BufferRange,
    n: number,
    rows: number | "batch",
  ) => {
    const height = rows === "batch" ? maxRows : rows;
    if (n % TEXTURE_ROW_FLOATS !== 0 || n / 4 > maxTex || height > maxTex) return;
    const t = alloc.texture(`${name} texture [${height}][${n / 4}]`, n / 4, height);
    mirrors.set(name, { src, floatsPerRow: n, rows, texture: t });
  };
  for (let i = 1; i < L; i++) texture(`W${i}`, params.weights[i - 1], sizes[i], sizes[i - 1]);
  for (let i = 1; i + 1 < L; i++) texture(`a${i}`, acts.acts[i], sizes[i], "batch");
  for (let i = L - 1; i >= 1; i--) texture(`dz${i}`, acts.dz[i], sizes[i], "batch");
  if (setup.output.layer === "uniform") {
    const [k, n] = [sizes[L - 1], sizes[L]];
    const uniform = alloc.buffer(
      `W${L} uniform copy [${k}][${n}]`,
      Math.ceil((k * n) / 4) * 16,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    );
    mirrors.set(`W${L}`, { src: params.weights[L - 1], floatsPerRow: n, rows: k, uniform });
  }
  return {
    mirrors,
    dummyTex,
    tex: (operand) => mirrors.get(operand)?.texture ?? dummyTex,
  };
}

/** Copies mirror `m` from its operand: `rows` rows of it for an activation. */
export function copyMirror(enc: GPUCommandEncoder, m: Mirror, rows: number): void {
  const { src, floatsPerRow } = m;
  const n = m.rows === "batch" ? rows : m.rows;
  const buffer = src instanceof GPUBuffer ? src : src.buffer;
  const offset = src instanceof GPUBuffer ? 0 : src.offset;
  if (m.uniform) enc.copyBufferToBuffer(buffer, offset, m.uniform, 0, n * floatsPerRow * 4);
  if (m.texture) {
    enc.copyBufferToTexture(
      { buffer, offset, bytesPerRow: floatsPerRow * 4 },
      { texture: m.texture },
      [floatsPerRow / 4, n],
    );
  }
}
