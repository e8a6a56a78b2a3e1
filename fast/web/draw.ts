/// <reference lib="dom" />
/**
 * The drawing canvas: the user draws a digit with the mouse (or a finger),
 * the picture is prepared the MNIST way by `toMnist` (shared/data/image.ts, the
 * code `deno task predict` uses) and classified on the CPU with the same
 * float64 forward pass `deno task predict` runs.
 *
 * @module
 */

import type { GreyImage } from "../../shared/data/image.ts";
import { toMnist } from "../../shared/data/image.ts";
import { forward, type MlpParams, pixelsToFloats } from "../../shared/model/mlp.ts";

/** Width of the pen, as a fraction of the canvas side (MNIST strokes are ~2-3 of 20 px). */
const PEN_WIDTH = 0.09;

/** Makes `canvas` a drawing surface: black ink on white; `onStroke` after each stroke. */
export function makeDrawable(canvas: HTMLCanvasElement, onStroke: () => void): void {
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  clearDrawing(canvas);
  let drawing = false;
  const at = (ev: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [
      (ev.clientX - r.left) * canvas.width / r.width,
      (ev.clientY - r.top) * canvas.height / r.height,
    ];
  };
  canvas.addEventListener("pointerdown", (ev) => {
    drawing = true;
    canvas.setPointerCapture?.(ev.pointerId);
    const [x, y] = at(ev);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.01, y);
    ctx.stroke();
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    const [x, y] = at(ev);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    onStroke();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
}

/** Wipes the drawing (white) and resets the pen. */
export function clearDrawing(canvas: HTMLCanvasElement): void {
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = PEN_WIDTH * canvas.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

/** The canvas as a grey picture (the mean of red, green and blue). */
export function canvasToGrey(canvas: HTMLCanvasElement): GreyImage {
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d", { willReadFrequently: true })!
    .getImageData(0, 0, width, height).data;
  const pixels = new Uint8Array(width * height);
  for (let i = 0; i < pixels.length; i++) {
    pixels[i] = Math.round((rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3);
  }
  return { width, height, pixels };
}

/** A digit prepared for the model, and what the model makes of it. */
export interface Classified {
  /** The 28 × 28 MNIST-style picture (`toMnist`). */
  pixels: Uint8Array;
  /** The probability of each class (ten for MNIST, the only data the page loads). */
  probabilities: number[];
  /** The most probable digit. */
  digit: number;
}

/** Prepares a picture the MNIST way and classifies it with `params`. */
export function classify(params: MlpParams, img: GreyImage): Classified {
  const pixels = toMnist(img);
  const { probs } = forward(params, pixelsToFloats(pixels, 0, 1), 1);
  const probabilities = Array.from(probs.subarray(0, params.sizes[params.sizes.length - 1]));
  return { pixels, probabilities, digit: probabilities.indexOf(Math.max(...probabilities)) };
}
