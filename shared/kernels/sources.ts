/**
 * The WGSL source of every kernel under `shared/kernels/` (slow/, common/, mlp/, cnn/, optim/), imported
 * as text, by kernel name (the file name without `.wgsl`; names are unique across folders).
 *
 * Text imports (deno.json: `"unstable": ["raw-imports"]`) make the kernels
 * part of the module graph: no file access at run time (plain `deno bench`
 * has no permissions, and a web page has no file system), and a bundler
 * carries them along. A kernel file not listed here cannot be used;
 * tests/kernel_sources_test.ts checks that the list and the folder agree.
 *
 * Preludes: the uniform struct that every kernel of some folders reads is
 * written once, in a file of its own, and `kernelSource` prepends it to each of
 * them (`PRELUDES`; tests/kernel_sources_test.ts checks that each goes in front
 * of exactly the kernels of its folders, none of which keeps a copy): the
 * per-batch `struct Batch` (common/batch.wgsl) to the kernels under common/
 * (those both models use, `COMMON_KERNELS`), mlp/ (`MLP_KERNELS`) and cnn/
 * (`CNN_KERNELS`); `struct OptimizerStep` (optim/optimizerStep.wgsl) to those
 * under optim/. The slow kernels and gatherRows are returned as their files are.
 *
 * Below the list: `kernelSource` (a kernel by name), and the one way the host
 * fits a kernel to its shapes: `specialize` sets `const NAME = …;` lines (and
 * refuses a name the kernel lacks, so kernel and host cannot drift), then
 * `unrollLoops` writes out the loops marked `// unroll`.
 *
 * @module
 */

import adamStep from "./optim/adamStep.wgsl" with { type: "text" };
import addBias from "./slow/addBias.wgsl" with { type: "text" };
import argmax from "./slow/argmax.wgsl" with { type: "text" };
import bytesToFloats from "./slow/bytesToFloats.wgsl" with { type: "text" };
import cnnConvInputGradPoolTexture from "./cnn/cnnConvInputGradPoolTexture.wgsl" with {
  type: "text",
};
import cnnConvPoolTexture from "./cnn/cnnConvPoolTexture.wgsl" with { type: "text" };
import cnnConvTexture from "./cnn/cnnConvTexture.wgsl" with { type: "text" };
import cnnConvWeightGradImage from "./cnn/cnnConvWeightGradImage.wgsl" with { type: "text" };
import cnnConvWeightGradTexture from "./cnn/cnnConvWeightGradTexture.wgsl" with { type: "text" };
import cnnLoadBatch from "./cnn/cnnLoadBatch.wgsl" with { type: "text" };
import cnnLossGrad from "./cnn/cnnLossGrad.wgsl" with { type: "text" };
import cnnMatmul from "./cnn/cnnMatmul.wgsl" with { type: "text" };
import cnnMatmulTransA from "./cnn/cnnMatmulTransA.wgsl" with { type: "text" };
import cnnMatmulTransAVec4 from "./cnn/cnnMatmulTransAVec4.wgsl" with { type: "text" };
import cnnMatmulTransB from "./cnn/cnnMatmulTransB.wgsl" with { type: "text" };
import cnnMatmulTransBVec4 from "./cnn/cnnMatmulTransBVec4.wgsl" with { type: "text" };
import cnnMatmulVec4 from "./cnn/cnnMatmulVec4.wgsl" with { type: "text" };
import cnnSumSlices from "./cnn/cnnSumSlices.wgsl" with { type: "text" };
import cnnToTexture from "./cnn/cnnToTexture.wgsl" with { type: "text" };
import col2im from "./cnn/col2im.wgsl" with { type: "text" };
import col2imVec4 from "./cnn/col2imVec4.wgsl" with { type: "text" };
import columnSums from "./slow/columnSums.wgsl" with { type: "text" };
import crossEntropy from "./slow/crossEntropy.wgsl" with { type: "text" };
import gatherRows from "./gatherRows.wgsl" with { type: "text" };
import im2col from "./cnn/im2col.wgsl" with { type: "text" };
import im2colVec4 from "./cnn/im2colVec4.wgsl" with { type: "text" };
import inputGradReluMask from "./mlp/inputGradReluMask.wgsl" with { type: "text" };
import inputGradReluMaskBlocked from "./mlp/inputGradReluMaskBlocked.wgsl" with {
  type: "text",
};
import inputGradReluMaskTexture from "./mlp/inputGradReluMaskTexture.wgsl" with {
  type: "text",
};
import inputGradReluMaskTiled from "./mlp/inputGradReluMaskTiled.wgsl" with { type: "text" };
import matmul from "./slow/matmul.wgsl" with { type: "text" };
import matmulBiasRelu from "./mlp/matmulBiasRelu.wgsl" with { type: "text" };
import matmulBiasReluBlocked from "./mlp/matmulBiasReluBlocked.wgsl" with { type: "text" };
import matmulBiasReluTexture from "./mlp/matmulBiasReluTexture.wgsl" with { type: "text" };
import matmulBiasReluTiled from "./mlp/matmulBiasReluTiled.wgsl" with { type: "text" };
import matmulTransA from "./slow/matmulTransA.wgsl" with { type: "text" };
import matmulTransB from "./slow/matmulTransB.wgsl" with { type: "text" };
import maxPool from "./cnn/maxPool.wgsl" with { type: "text" };
import maxPoolBackward from "./cnn/maxPoolBackward.wgsl" with { type: "text" };
import maxPoolBackwardTexture from "./cnn/maxPoolBackwardTexture.wgsl" with { type: "text" };
import maxPoolBackwardVec4 from "./cnn/maxPoolBackwardVec4.wgsl" with { type: "text" };
import maxPoolTexture from "./cnn/maxPoolTexture.wgsl" with { type: "text" };
import momentumStep from "./optim/momentumStep.wgsl" with { type: "text" };
import nonzeroGroups from "./mlp/nonzeroGroups.wgsl" with { type: "text" };
import nonzeroRows from "./mlp/nonzeroRows.wgsl" with { type: "text" };
import relu from "./slow/relu.wgsl" with { type: "text" };
import reluBackward from "./slow/reluBackward.wgsl" with { type: "text" };
import sgdStep from "./optim/sgdStep.wgsl" with { type: "text" };
import sgdUpdate from "./slow/sgdUpdate.wgsl" with { type: "text" };
import softmax from "./slow/softmax.wgsl" with { type: "text" };
import batchStruct from "./common/batch.wgsl" with { type: "text" };
import optimizerStepStruct from "./optim/optimizerStep.wgsl" with { type: "text" };
import softmaxCrossEntropyBackward from "./slow/softmaxCrossEntropyBackward.wgsl" with {
  type: "text",
};
import outputLayer from "./mlp/outputLayer.wgsl" with { type: "text" };
import outputLayerRows from "./mlp/outputLayerRows.wgsl" with {
  type: "text",
};
import sumLosses from "./common/sumLosses.wgsl" with { type: "text" };
import argmaxConfusion from "./common/argmaxConfusion.wgsl" with { type: "text" };
import outputLogits from "./mlp/outputLogits.wgsl" with { type: "text" };
import weightGrad from "./mlp/weightGrad.wgsl" with { type: "text" };
import weightGradBlocked from "./mlp/weightGradBlocked.wgsl" with { type: "text" };
import weightGradRow from "./mlp/weightGradRow.wgsl" with { type: "text" };
import weightGradSplit from "./mlp/weightGradSplit.wgsl" with { type: "text" };
import weightGradSplitSum from "./mlp/weightGradSplitSum.wgsl" with { type: "text" };
import weightGradTexture from "./mlp/weightGradTexture.wgsl" with { type: "text" };
import weightGradTiled from "./mlp/weightGradTiled.wgsl" with { type: "text" };

/** Kernel name (the file name without `.wgsl`) → its WGSL source. */
export const KERNEL_SOURCES: Readonly<Record<string, string>> = {
  adamStep,
  addBias,
  argmax,
  argmaxConfusion,
  bytesToFloats,
  cnnConvInputGradPoolTexture,
  cnnConvPoolTexture,
  cnnConvTexture,
  cnnConvWeightGradImage,
  cnnConvWeightGradTexture,
  cnnLoadBatch,
  cnnLossGrad,
  cnnMatmul,
  cnnMatmulTransA,
  cnnMatmulTransAVec4,
  cnnMatmulTransB,
  cnnMatmulTransBVec4,
  cnnMatmulVec4,
  cnnSumSlices,
  cnnToTexture,
  col2im,
  col2imVec4,
  columnSums,
  crossEntropy,
  gatherRows,
  im2col,
  im2colVec4,
  inputGradReluMask,
  inputGradReluMaskBlocked,
  inputGradReluMaskTexture,
  inputGradReluMaskTiled,
  matmul,
  matmulBiasRelu,
  matmulBiasReluBlocked,
  matmulBiasReluTexture,
  matmulBiasReluTiled,
  matmulTransA,
  matmulTransB,
  maxPool,
  maxPoolBackward,
  maxPoolBackwardTexture,
  maxPoolBackwardVec4,
  maxPoolTexture,
  momentumStep,
  nonzeroGroups,
  nonzeroRows,
  relu,
  reluBackward,
  sgdStep,
  sgdUpdate,
  softmax,
  softmaxCrossEntropyBackward,
  outputLayer,
  outputLayerRows,
  outputLogits,
  sumLosses,
  weightGrad,
  weightGradBlocked,
  weightGradRow,
  weightGradSplit,
  weightGradSplitSum,
  weightGradTexture,
  weightGradTiled,
};

/**
 * The prelude shared/kernels/common/batch.wgsl: `struct Batch {start, count, lr, rowOrder}`,
 * the per-batch uniform entry of every MLP and CNN kernel.
 */
export const BATCH_STRUCT: string = batchStruct;

/** Bytes of `struct Batch` (four 4-byte fields): the size each engine binds of an entry. */
export const BATCH_BYTES = 16;

/** The kernels both models use: every kernel under shared/kernels/common/. */
export const COMMON_KERNELS: ReadonlySet<string> = new Set(["argmaxConfusion", "sumLosses"]);

/** The MLP's kernels: every kernel under shared/kernels/mlp/. */
export const MLP_KERNELS: ReadonlySet<string> = new Set([
  "inputGradReluMask",
  "inputGradReluMaskBlocked",
  "inputGradReluMaskTexture",
  "inputGradReluMaskTiled",
  "matmulBiasRelu",
  "matmulBiasReluBlocked",
  "matmulBiasReluTexture",
  "matmulBiasReluTiled",
  "nonzeroGroups",
  "nonzeroRows",
  "outputLayer",
  "outputLayerRows",
  "outputLogits",
  "weightGrad",
  "weightGradBlocked",
  "weightGradRow",
  "weightGradSplit",
  "weightGradSplitSum",
  "weightGradTexture",
  "weightGradTiled",
]);

/** The CNN's kernels: every kernel under shared/kernels/cnn/. */
export const CNN_KERNELS: ReadonlySet<string> = new Set([
  "cnnConvInputGradPoolTexture",
  "cnnConvPoolTexture",
  "cnnConvTexture",
  "cnnConvWeightGradImage",
  "cnnConvWeightGradTexture",
  "cnnLoadBatch",
  "cnnLossGrad",
  "cnnMatmul",
  "cnnMatmulTransA",
  "cnnMatmulTransAVec4",
  "cnnMatmulTransB",
  "cnnMatmulTransBVec4",
  "cnnMatmulVec4",
  "cnnSumSlices",
  "cnnToTexture",
  "col2im",
  "col2imVec4",
  "im2col",
  "im2colVec4",
  "maxPool",
  "maxPoolBackward",
  "maxPoolBackwardTexture",
  "maxPoolBackwardVec4",
  "maxPoolTexture",
]);

/**
 * The prelude shared/kernels/optim/optimizerStep.wgsl: `struct OptimizerStep`,
 * the uniform of every optimiser kernel (laid out by `optimizerUniform`).
 */
const OPTIMIZER_STEP_STRUCT: string = optimizerStepStruct;

/** The kernels `kernelSource` prepends `OPTIMIZER_STEP_STRUCT` to: every kernel under shared/kernels/optim/. */
const OPTIMIZER_STEP_KERNELS: ReadonlySet<string> = new Set([
  "adamStep",
  "momentumStep",
  "sgdStep",
]);

/** A struct written once, in its own file, that `kernelSource` puts in front of each of `kernels`. */
interface Prelude {
  /** Its file, under shared/kernels/ (not a kernel: not in `KERNEL_SOURCES`). */
  file: string;
  /** The file's text. */
  source: string;
  /** The folders (under shared/kernels/, with a trailing "/") whose kernels it goes in front of. */
  folders: readonly string[];
  /** The kernels it goes in front of: every kernel of its folders, and no other. */
  kernels: ReadonlySet<string>;
}

/** Every prelude; no kernel is in two. */
export const PRELUDES: readonly Prelude[] = [
  {
    file: "common/batch.wgsl",
    source: BATCH_STRUCT,
    folders: ["common/", "mlp/", "cnn/"],
    kernels: new Set([...COMMON_KERNELS, ...MLP_KERNELS, ...CNN_KERNELS]),
  },
  {
    file: "optim/optimizerStep.wgsl",
    source: OPTIMIZER_STEP_STRUCT,
    folders: ["optim/"],
    kernels: OPTIMIZER_STEP_KERNELS,
  },
];

/**
 * The WGSL source of kernel `name`, a file `shared/kernels/<folder>/<name>.wgsl`
 * (see the module doc), with its prelude in front (`PRELUDES`), if any.
 */
export function kernelSource(name: string): string {
  const src = KERNEL_SOURCES[name];
  if (src === undefined) {
    throw new Error(`no kernel ${name}.wgsl in shared/kernels/sources.ts`);
  }
  const prelude = PRELUDES.find((p) => p.kernels.has(name));
  return prelude ? `${prelude.source}\n${src}` : src;
}

/**
 * `src` with each `const NAME = …;` line of `constants` set to the given
 * value (numbers as `u32`). A kernel marks each constant its host sets as
 * `const NAME = SET_BY_HOST;` (a name WGSL does not know, so such a line
 * could not compile anyway). Throws when a name has no such line, or when a
 * `SET_BY_HOST` line is left unset, naming them: a kernel and its host
 * cannot drift apart silently.
 */
export function specialize(src: string, constants: Record<string, number | boolean>): string {
  let out = src;
  for (const [name, value] of Object.entries(constants)) {
    const re = new RegExp(`^const ${name} = [^;]+;`, "m");
    if (!re.test(out)) throw new Error(`kernel has no 'const ${name} = …;' line to specialise`);
    const lit = typeof value === "boolean" ? String(value) : `${value >>> 0}u`;
    out = out.replace(re, `const ${name} = ${lit};`);
  }
  const unset = [...out.matchAll(/^const (\w+) = SET_BY_HOST;/gm)].map((m) => m[1]);
  if (unset.length > 0) {
    // The kernel's name, from its header line "// name: formula" (a prelude's is capitalised).
    const name = /^\/\/ ([a-z]\w*):/m.exec(src)?.[1] ?? "?";
    throw new Error(`kernel ${name}: the host did not set ${unset.join(", ")} (SET_BY_HOST)`);
  }
  return out;
}

/**
 * The value of a WGSL integer expression made of `u32` literals, names in
 * `consts`, `+ - * / %` and parentheses; `undefined` for anything else.
 */
export function evalConstInt(
  expr: string,
  consts: ReadonlyMap<string, number>,
): number | undefined {
  const tokens = expr.match(/\d+u?|\w+|[-+*/%()]|\S/g) ?? [];
  let at = 0;
  const atom = (): number | undefined => {
    const t = tokens[at++];
    if (t === undefined) return undefined;
    if (t === "(") {
      const v = sum();
      return tokens[at++] === ")" ? v : undefined;
    }
    if (/^\d+u?$/.test(t)) return parseInt(t);
    return consts.get(t);
  };
  const product = (): number | undefined => {
    let v = atom();
    while (v !== undefined && ["*", "/", "%"].includes(tokens[at])) {
      const op = tokens[at++], r = atom();
      if (r === undefined || (op !== "*" && r === 0)) return undefined;
      v = op === "*" ? v * r : op === "/" ? Math.floor(v / r) : v % r;
    }
    return v;
  };
  const sum = (): number | undefined => {
    let v = product();
    while (v !== undefined && (tokens[at] === "+" || tokens[at] === "-")) {
      const op = tokens[at++], r = product();
      if (r === undefined) return undefined;
      v = op === "+" ? v + r : v - r;
    }
    return v;
  };
  const v = sum();
  return at === tokens.length ? v : undefined;
}

/**
 * `src` with every loop that follows a `// unroll` line written out: the
 * loop must read `for (var X = 0u; X < B; X++) {`, B a literal (`4u`) or the
 * name of a `const B = …;` line whose value is an integer expression of
 * literals and earlier such consts (`RI / 4u`; so: after `specialize`); each copy of the
 * body is wrapped in braces with X replaced by its value. Nested marked loops
 * are expanded too. The result computes the same as `src`, in the same order;
 * it exists because llvmpipe keeps arrays indexed by a loop counter in memory,
 * while with constant indices they become registers. Throws on a marker
 * without such a loop, so a kernel cannot silently stay rolled.
 */
export function unrollLoops(src: string): string {
  const consts = new Map<string, number>();
  for (const m of src.matchAll(/^const (\w+) = ([^;]+);/gm)) {
    const value = evalConstInt(m[2], consts);
    if (value !== undefined) consts.set(m[1], value);
  }
  const marker = /^([ \t]*)\/\/ unroll\n/m;
  const loop = /^[ \t]*for \(var (\w+) = 0u; \1 < (\w+); \1\+\+\) \{\n/;
  let out = src;
  for (let m = marker.exec(out); m; m = marker.exec(out)) {
    const headAt = m.index + m[0].length;
    const head = loop.exec(out.slice(headAt));
    const bound = head && (/^\d+u$/.test(head[2]) ? parseInt(head[2]) : consts.get(head[2]));
    if (!head || bound === undefined || bound === null) {
      const line = out.slice(headAt, out.indexOf("\n", headAt));
      throw new Error(
        `'// unroll' must precede 'for (var i = 0u; i < LITERAL_OR_CONST; i++) {', not '${line.trim()}'`,
      );
    }
    const bodyAt = headAt + head[0].length;
    let depth = 1, end = bodyAt;
    for (; depth > 0 && end < out.length; end++) {
      if (out[end] === "{") depth++;
      else if (out[end] === "}") depth--;
    }
    if (depth > 0) throw new Error(`unbalanced braces after '// unroll'`);
    const body = out.slice(bodyAt, end - 1).replace(/[ \t]*$/, "");
    const counter = new RegExp(`\\b${head[1]}\\b`, "g");
    const indent = m[1];
    let copies = "";
    for (let n = 0; n < bound; n++) {
      copies += `${indent}{\n${body.replace(counter, `${n}u`)}${indent}}\n`;
    }
    const after = out[end] === "\n" ? end + 1 : end;
    out = out.slice(0, m.index) + copies + out.slice(after);
  }
  return out;
}
