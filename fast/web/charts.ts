/// <reference lib="dom" />
/**
 * What the page draws on its canvases: the loss curve with test accuracy per
 * epoch, the first layer's weights as small images, the per-kernel GPU time
 * as bars, a 28 × 28 digit, and the ten probabilities.
 *
 * @module
 */

import type { KernelProfile } from "../../shared/gpu/profiler.ts";

/** A point of the live loss curve. */
export interface LossPoint {
  step: number;
  loss: number;
}

/** Clears `canvas` and returns its context. */
function clear(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px sans-serif";
  return ctx;
}

/**
 * The loss per chunk of steps (blue, left axis from 0 to the largest loss)
 * and the test accuracy at each epoch's end (orange dots, right axis 0–100%).
 */
export function drawLossCurve(
  canvas: HTMLCanvasElement,
  points: readonly LossPoint[],
  accuracy: readonly { step: number; accuracy: number }[],
  totalSteps: number,
): void {
  const ctx = clear(canvas);
  const { width: w, height: h } = canvas;
  const left = 40, right = 44, top = 10, bottom = 24;
  const pw = w - left - right, ph = h - top - bottom;
  const maxLoss = Math.max(0.5, ...points.map((p) => p.loss));
  const maxStep = Math.max(1, totalSteps, ...points.map((p) => p.step));
  const x = (s: number) => left + (s / maxStep) * pw;
  ctx.strokeStyle = "#999";
  ctx.strokeRect(left, top, pw, ph);
  ctx.fillStyle = "#333";
  ctx.fillText(maxLoss.toFixed(2), 2, top + 10);
  ctx.fillText("0", 28, top + ph);
  ctx.fillText("100%", w - right + 4, top + 10);
  ctx.fillText(`step ${maxStep}`, w - right - 60, h - 6);
  ctx.fillText("loss", left + 4, h - 6);
  ctx.strokeStyle = "#1f5fbf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => {
    const y = top + ph - (p.loss / maxLoss) * ph;
    if (i === 0) ctx.moveTo(x(p.step), y);
    else ctx.lineTo(x(p.step), y);
  });
  ctx.stroke();
  ctx.fillStyle = "#e07000";
  for (const a of accuracy) {
    ctx.beginPath();
    ctx.arc(x(a.step), top + ph - a.accuracy * ph, 4, 0, 2 * Math.PI);
    ctx.fill();
  }
}

/**
 * The first `count` hidden units' incoming weights (columns of W1, 784 × n1,
 * row-major), each as a 28 × 28 image: blue negative, red positive, scaled
 * by the largest magnitude of that unit. With `start` (W1 when training
 * began) it draws `w1 − start` instead: what training has added, where the
 * strokes of digits show long before they stand out of the initial weights.
 */
export function drawWeights(
  canvas: HTMLCanvasElement,
  w1: Float32Array,
  n1: number,
  count: number,
  start?: Float32Array,
): void {
  const ctx = clear(canvas);
  const cols = Math.floor(canvas.width / 30);
  const img = ctx.createImageData(28, 28);
  const at = start ? (i: number) => w1[i] - start[i] : (i: number) => w1[i];
  for (let u = 0; u < count; u++) {
    let max = 1e-8;
    for (let p = 0; p < 784; p++) max = Math.max(max, Math.abs(at(p * n1 + u)));
    for (let p = 0; p < 784; p++) {
      const v = at(p * n1 + u) / max;
      const i = p * 4;
      img.data[i] = v > 0 ? 255 : Math.round(255 * (1 + v));
      img.data[i + 1] = Math.round(255 * (1 - Math.abs(v)));
      img.data[i + 2] = v < 0 ? 255 : Math.round(255 * (1 - v));
      img.data[i + 3] = 255;
    }
    ctx.putImageData(img, (u % cols) * 30 + 1, Math.floor(u / cols) * 30 + 1);
  }
}

/** Horizontal bars: milliseconds per kernel in the last epoch, most first. */
export function drawKernelBars(canvas: HTMLCanvasElement, kernels: readonly KernelProfile[]): void {
  const ctx = clear(canvas);
  const shown = kernels.slice(0, Math.floor(canvas.height / 18));
  const max = Math.max(1e-9, ...shown.map((k) => k.ms));
  const label = 190, room = canvas.width - label - 80;
  shown.forEach((k, i) => {
    const y = 4 + i * 18;
    ctx.fillStyle = "#333";
    ctx.fillText(k.kernel.slice(0, 30), 2, y + 11);
    ctx.fillStyle = "#3a8f5c";
    ctx.fillRect(label, y, Math.max(1, (k.ms / max) * room), 13);
    ctx.fillStyle = "#333";
    ctx.fillText(`${k.ms.toFixed(1)} ms`, label + (k.ms / max) * room + 4, y + 11);
  });
}

/** A 28 × 28 digit (784 bytes, 0 = background) drawn white on black, scaled up. */
export function drawDigit(canvas: HTMLCanvasElement, pixels: Uint8Array): void {
  const ctx = clear(canvas);
  const img = ctx.createImageData(28, 28);
  for (let p = 0; p < 784; p++) {
    img.data.fill(pixels[p], p * 4, p * 4 + 3);
    img.data[p * 4 + 3] = 255;
  }
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = 28;
  tmp.getContext("2d")!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

/** Ten bars, one per digit, the most probable highlighted. */
export function drawProbabilities(canvas: HTMLCanvasElement, probs: readonly number[]): void {
  const ctx = clear(canvas);
  const best = probs.indexOf(Math.max(...probs));
  const bw = canvas.width / 10, ph = canvas.height - 34;
  probs.forEach((p, d) => {
    ctx.fillStyle = d === best ? "#e07000" : "#1f5fbf";
    ctx.fillRect(d * bw + 4, 4 + ph * (1 - p), bw - 8, ph * p);
    ctx.fillStyle = "#333";
    ctx.fillText(String(d), d * bw + bw / 2 - 3, canvas.height - 18);
    ctx.fillText(p.toFixed(2), d * bw + 3, canvas.height - 4);
  });
}
