/**
 * The WGSL source of every kernel under `shared/kernels/` (slow/, mlp/, cnn/, optim/), imported
 * as text, by kernel name (the file name without `.wgsl`; names are unique across folders).
 *
 * Text imports (deno.json: `"unstable": ["raw-imports"]`) make the kernels
 * part of the module graph: no file access at run time (plain `deno bench`
 * has no permissions, and a web page has no file system), and a bundler
 * carries them along. A kernel file not listed here cannot be used;
 * tests/kernel_sources_test.ts checks that the list and the folder agree.
 *
 * @module
 */

import adamStep from "./optim/adamStep.wgsl" with { type: "text" };
import addBias from "./slow/addBias.wgsl" with { type: "text" };
import argmax from "./slow/argmax.wgsl" with { type: "text" };
import bytesToFloats from "./slow/bytesToFloats.wgsl" with { type: "text" };
import cnnLoadBatch from "./cnn/cnnLoadBatch.wgsl" with { type: "text" };
import cnnLossGrad from "./cnn/cnnLossGrad.wgsl" with { type: "text" };
import cnnMatmul from "./cnn/cnnMatmul.wgsl" with { type: "text" };
import cnnMatmulTransA from "./cnn/cnnMatmulTransA.wgsl" with { type: "text" };
import cnnMatmulTransAVec4 from "./cnn/cnnMatmulTransAVec4.wgsl" with { type: "text" };
import cnnMatmulTransB from "./cnn/cnnMatmulTransB.wgsl" with { type: "text" };
import cnnMatmulTransBVec4 from "./cnn/cnnMatmulTransBVec4.wgsl" with { type: "text" };
import cnnMatmulVec4 from "./cnn/cnnMatmulVec4.wgsl" with { type: "text" };
import cnnScoreTest from "./cnn/cnnScoreTest.wgsl" with { type: "text" };
import cnnSumSlices from "./cnn/cnnSumSlices.wgsl" with { type: "text" };
import cnnTotalLoss from "./cnn/cnnTotalLoss.wgsl" with { type: "text" };
import col2im from "./cnn/col2im.wgsl" with { type: "text" };
import col2imVec4 from "./cnn/col2imVec4.wgsl" with { type: "text" };
import columnSums from "./slow/columnSums.wgsl" with { type: "text" };
import countCorrect from "./mlp/countCorrect.wgsl" with { type: "text" };
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
import maxPoolBackwardVec4 from "./cnn/maxPoolBackwardVec4.wgsl" with { type: "text" };
import momentumStep from "./optim/momentumStep.wgsl" with { type: "text" };
import nonzeroGroups from "./mlp/nonzeroGroups.wgsl" with { type: "text" };
import nonzeroRows from "./mlp/nonzeroRows.wgsl" with { type: "text" };
import relu from "./slow/relu.wgsl" with { type: "text" };
import reluBackward from "./slow/reluBackward.wgsl" with { type: "text" };
import sgdStep from "./optim/sgdStep.wgsl" with { type: "text" };
import sgdUpdate from "./slow/sgdUpdate.wgsl" with { type: "text" };
import softmax from "./slow/softmax.wgsl" with { type: "text" };
import softmaxCrossEntropyBackward from "./slow/softmaxCrossEntropyBackward.wgsl" with {
  type: "text",
};
import outputLayer from "./mlp/outputLayer.wgsl" with { type: "text" };
import outputLayerRows from "./mlp/outputLayerRows.wgsl" with {
  type: "text",
};
import sumLosses from "./mlp/sumLosses.wgsl" with { type: "text" };
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
  outputLayer,
  outputLayerRows,
  sumLosses,
  weightGrad,
  weightGradBlocked,
  weightGradRow,
  weightGradSplit,
  weightGradSplitSum,
  weightGradTexture,
  weightGradTiled,
};
