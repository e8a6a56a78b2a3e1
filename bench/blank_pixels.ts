/**
 * How much of layer 1's work the blank-pixel lists leave out, counted on the
 * images (no GPU): the share of (image, block of pixels) pairs with no ink
 * for the weight gradient (runs of 16 or 32 pixels along a row, or 4 × 4
 * tiles as the engine takes them), and the share of (block of 32 rows, group
 * of 16 pixels) trips with no ink in any of the rows for the forward kernel
 * (rows in their order, or each batch's rows ordered by ink as the engine
 * does). The blank-pixel figures in bench/RESULTS.md (and fast/DESIGN.md, _Blank pixels_)
 * come from it.
 *
 *     deno run --allow-read --allow-env bench/blank_pixels.ts [--train-limit N] [--batch-size N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadMnist } from "../shared/data/mnist.ts";
import { batchRanges } from "../shared/model/mlp.ts";
import { inkKeys, rowOrderByInk } from "../fast/mlp/variants/blank_pixels.ts";

const { values } = parseArgs({
  options: {
    "train-limit": { type: "string", default: "8000" },
    "batch-size": { type: "string", default: "500" },
  },
});
const mnist = await loadMnist({
  trainLimit: Number(values["train-limit"]),
  testLimit: 1,
  announce: false,
});
const images = mnist.trainImages, n = mnist.trainLabels.length, side = mnist.width;
const PIXELS = mnist.height * mnist.width;
const pct = (part: number, all: number) => `${(100 * part / all).toFixed(1)}%`;

/** Pixels in 4 × 4 tiles, tiles along the rows of tiles (as `tileWord` in the kernels). */
const tiles: number[] = [];
for (let ty = 0; ty < side / 4; ty++) {
  for (let tx = 0; tx < side / 4; tx++) {
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) tiles.push((4 * ty + y) * side + 4 * tx + x);
    }
  }
}
const runs = [...Array(PIXELS).keys()];

/** Share of (image, block of `block` pixels taken in `order`) pairs with no ink. */
function blankBlocks(order: number[], block: number): string {
  let blank = 0, all = 0;
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < PIXELS; b += block, all++) {
      if (order.slice(b, b + block).every((p) => images[r * PIXELS + p] === 0)) blank++;
    }
  }
  return pct(blank, all);
}

/** Share of (block of `rows` rows, group of 16 pixels) trips with no ink in any of the rows. */
function blankTrips(rows: number, sorted: boolean): string {
  const batches = batchRanges(n, Number(values["batch-size"]));
  const keys = inkKeys(images, n, PIXELS);
  const order = sorted ? rowOrderByInk(batches, n, (p) => keys[p]) : undefined;
  let blank = 0, all = 0;
  for (const [start, count] of batches) {
    for (let b = 0; b < count; b += rows) {
      const members = [];
      for (let i = b; i < Math.min(b + rows, count); i++) {
        members.push(start + (order ? order[start + i] : i));
      }
      for (let g = 0; g < PIXELS / 16; g++, all++) {
        const ink = members.some((r) =>
          images.subarray(r * PIXELS + 16 * g, r * PIXELS + 16 * g + 16).some((x) => x !== 0)
        );
        if (!ink) blank++;
      }
    }
  }
  return pct(blank, all);
}

console.log(
  `${n} training images; pixels that are 0: ${
    pct(images.subarray(0, n * PIXELS).filter((x) => x === 0).length, n * PIXELS)
  }`,
);
console.log("weight gradient, (image, block) pairs with no ink:");
console.log(`  runs of 16: ${blankBlocks(runs, 16)}   runs of 32: ${blankBlocks(runs, 32)}`);
console.log(`  4 x 4 tiles: ${blankBlocks(tiles, 16)}   two tiles: ${blankBlocks(tiles, 32)}`);
console.log("forward, trips (32 rows, 16 pixels) with no ink in any row:");
console.log(
  `  rows in order: ${blankTrips(32, false)}   rows ordered by ink: ${blankTrips(32, true)}`,
);
