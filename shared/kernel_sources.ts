/**
 * The WGSL source of every kernel in `shared/kernels/`, imported as text.
 *
 * Text imports (deno.json: `"unstable": ["raw-imports"]`) make the kernels
 * part of the module graph: no file access at run time (plain `deno bench`
 * has no permissions, and a web page has no file system), and a bundler
 * carries them along. A kernel file not listed here cannot be used;
 * tests/kernel_sources_test.ts checks that the list and the folder agree.
 *
 * @module
 */

import adamStep from "./kernels/adamStep.wgsl" with { type: "text" };
import addBias from "./kernels/addBias.wgsl" with { type: "text" };
import argmax from "./kernels/argmax.wgsl" with { type: "text" };
import bytesToFloats from "./kernels/bytesToFloats.wgsl" with { type: "text" };
import cnnLoadBatch from "./kernels/cnnLoadBatch.wgsl" with { type: "text" };
import cnnLossGrad from "./kernels/cnnLossGrad.wgsl" with { type: "text" };
import cnnMatmul from "./kernels/cnnMatmul.wgsl" with { type: "text" };
import cnnMatmulTransA from "./kernels/cnnMatmulTransA.wgsl" with { type: "text" };
import cnnMatmulTransAVec4 from "./kernels/cnnMatmulTransAVec4.wgsl" with { type: "text" };
import cnnMatmulTransB from "./kernels/cnnMatmulTransB.wgsl" with { type: "text" };
import cnnMatmulTransBVec4 from "./kernels/cnnMatmulTransBVec4.wgsl" with { type: "text" };
import cnnMatmulVec4 from "./kernels/cnnMatmulVec4.wgsl" with { type: "text" };
import cnnScoreTest from "./kernels/cnnScoreTest.wgsl" with { type: "text" };
import cnnSumSlices from "./kernels/cnnSumSlices.wgsl" with { type: "text" };
import cnnTotalLoss from "./kernels/cnnTotalLoss.wgsl" with { type: "text" };
import col2im from "./kernels/col2im.wgsl" with { type: "text" };
import col2imVec4 from "./kernels/col2imVec4.wgsl" with { type: "text" };
import columnSums from "./kernels/columnSums.wgsl" with { type: "text" };
import countCorrect from "./kernels/countCorrect.wgsl" with { type: "text" };
import crossEntropy from "./kernels/crossEntropy.wgsl" with { type: "text" };
import gatherRows from "./kernels/gatherRows.wgsl" with { type: "text" };
import im2col from "./kernels/im2col.wgsl" with { type: "text" };
import im2colVec4 from "./kernels/im2colVec4.wgsl" with { type: "text" };
import inputGradReluMask from "./kernels/inputGradReluMask.wgsl" with { type: "text" };
import inputGradReluMaskBlocked from "./kernels/inputGradReluMaskBlocked.wgsl" with {
  type: "text",
};
import inputGradReluMaskTexture from "./kernels/inputGradReluMaskTexture.wgsl" with {
  type: "text",
};
import inputGradReluMaskTiled from "./kernels/inputGradReluMaskTiled.wgsl" with { type: "text" };
import matmul from "./kernels/matmul.wgsl" with { type: "text" };
import matmulBiasRelu from "./kernels/matmulBiasRelu.wgsl" with { type: "text" };
import matmulBiasReluBlocked from "./kernels/matmulBiasReluBlocked.wgsl" with { type: "text" };
import matmulBiasReluTexture from "./kernels/matmulBiasReluTexture.wgsl" with { type: "text" };
import matmulBiasReluTiled from "./kernels/matmulBiasReluTiled.wgsl" with { type: "text" };
import matmulTransA from "./kernels/matmulTransA.wgsl" with { type: "text" };
import matmulTransB from "./kernels/matmulTransB.wgsl" with { type: "text" };
import maxPool from "./kernels/maxPool.wgsl" with { type: "text" };
import maxPoolBackward from "./kernels/maxPoolBackward.wgsl" with { type: "text" };
import maxPoolBackwardVec4 from "./kernels/maxPoolBackwardVec4.wgsl" with { type: "text" };
import momentumStep from "./kernels/momentumStep.wgsl" with { type: "text" };
import nonzeroGroups from "./kernels/nonzeroGroups.wgsl" with { type: "text" };
import nonzeroRows from "./kernels/nonzeroRows.wgsl" with { type: "text" };
import relu from "./kernels/relu.wgsl" with { type: "text" };
import reluBackward from "./kernels/reluBackward.wgsl" with { type: "text" };
import sgdStep from "./kernels/sgdStep.wgsl" with { type: "text" };
import sgdUpdate from "./kernels/sgdUpdate.wgsl" with { type: "text" };
import softmax from "./kernels/softmax.wgsl" with { type: "text" };
import softmaxCrossEntropyBackward from "./kernels/softmaxCrossEntropyBackward.wgsl" with {
  type: "text",
};
import softmaxCrossEntropyGrad from "./kernels/softmaxCrossEntropyGrad.wgsl" with { type: "text" };
import softmaxCrossEntropyGradRows from "./kernels/softmaxCrossEntropyGradRows.wgsl" with {
  type: "text",
};
import sumLosses from "./kernels/sumLosses.wgsl" with { type: "text" };
import weightGradSgd from "./kernels/weightGradSgd.wgsl" with { type: "text" };
import weightGradSgdBlocked from "./kernels/weightGradSgdBlocked.wgsl" with { type: "text" };
import weightGradSgdRow from "./kernels/weightGradSgdRow.wgsl" with { type: "text" };
import weightGradSgdSplit from "./kernels/weightGradSgdSplit.wgsl" with { type: "text" };
import weightGradSgdSplitSum from "./kernels/weightGradSgdSplitSum.wgsl" with { type: "text" };
import weightGradSgdTexture from "./kernels/weightGradSgdTexture.wgsl" with { type: "text" };
import weightGradSgdTiled from "./kernels/weightGradSgdTiled.wgsl" with { type: "text" };

/** Kernel name (the file name without `.wgsl`) → its WGSL source. */
export const KERNEL_SOURCES: Readonly<Record<string, string>> = {
  adamStep,
  addBias,
  argmax,
  bytesToFloats,
  cnnLoadBatch,
  cnnLossGrad,
  cnnMatmul,
  cnnMatmulTransA,
  cnnMatmulTransAVec4,
  cnnMatmulTransB,
  cnnMatmulTransBVec4,
  cnnMatmulVec4,
  cnnScoreTest,
  cnnSumSlices,
  cnnTotalLoss,
  col2im,
  col2imVec4,
  columnSums,
  countCorrect,
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
  maxPoolBackwardVec4,
  momentumStep,
  nonzeroGroups,
  nonzeroRows,
  relu,
  reluBackward,
  sgdStep,
  sgdUpdate,
  softmax,
  softmaxCrossEntropyBackward,
  softmaxCrossEntropyGrad,
  softmaxCrossEntropyGradRows,
  sumLosses,
  weightGradSgd,
  weightGradSgdBlocked,
  weightGradSgdRow,
  weightGradSgdSplit,
  weightGradSgdSplitSum,
  weightGradSgdTexture,
  weightGradSgdTiled,
};
