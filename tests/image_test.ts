/** Pictures for `predict`: PNG and PGM decoding, MNIST-style preparation, bad files. */

import assert from "node:assert/strict";
import { UserError } from "../shared/io/errors.ts";
import {
  decodePgm,
  decodePng,
  encodePng,
  encodePngRaw,
  type GreyImage,
  toMnist,
} from "../shared/data/image.ts";
import { mulberry32 } from "../shared/model/rng.ts";

function randomImage(w: number, h: number, seed: number): GreyImage {
  const rand = mulberry32(seed);
  return { width: w, height: h, pixels: new Uint8Array(w * h).map(() => rand() * 256) };
}

/** Applies PNG filter `type` to rows of `stride` bytes with `bpp` bytes per pixel. */
function filterRows(data: Uint8Array, h: number, stride: number, bpp: number, type: number) {
  const out = new Uint8Array(h * (stride + 1));
  for (let y = 0; y < h; y++) {
    out[y * (stride + 1)] = type;
    for (let i = 0; i < stride; i++) {
      const x = data[y * stride + i];
      const a = i >= bpp ? data[y * stride + i - bpp] : 0;
      const b = y > 0 ? data[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? data[(y - 1) * stride + i - bpp] : 0;
      const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][type];
      out[y * (stride + 1) + 1 + i] = (x - pred) & 0xff;
    }
  }
  return out;
}

Deno.test("grey PNG round trip", async () => {
  const img = randomImage(13, 7, 1);
  const back = await decodePng(await encodePng(img), "g.png");
  assert.deepEqual(back, img);
});

Deno.test("RGB, RGBA and palette PNGs with every filter decode to the expected grey", async () => {
  const w = 9, h = 5;
  const rand = mulberry32(5);
  const rgb = new Uint8Array(w * h * 3).map(() => rand() * 256);
  const expectGrey = (i: number) =>
    Math.round(0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]);
  for (let f = 0; f <= 4; f++) {
    const png = await encodePngRaw(w, h, 2, 8, filterRows(rgb, h, w * 3, 3, f));
    const g = await decodePng(png, `rgb-f${f}.png`);
    for (let i = 0; i < w * h; i++) assert.equal(g.pixels[i], expectGrey(i), `filter ${f} px ${i}`);
  }
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba.set(rgb.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = 255;
  }
  const g4 = await decodePng(
    await encodePngRaw(w, h, 6, 8, filterRows(rgba, h, w * 4, 4, 4)),
    "a.png",
  );
  for (let i = 0; i < w * h; i++) assert.equal(g4.pixels[i], expectGrey(i));
  const palette = new Uint8Array([0, 0, 0, 255, 255, 255, 255, 0, 0]);
  const idx = new Uint8Array(w * h).map((_, i) => i % 3);
  const gp = await decodePng(
    await encodePngRaw(w, h, 3, 8, filterRows(idx, h, w, 1, 0), palette),
    "p.png",
  );
  assert.deepEqual([...gp.pixels.subarray(0, 3)], [0, 255, Math.round(0.299 * 255)]);
});

Deno.test("PGM P5 and P2, with a comment", () => {
  const p5 = new Uint8Array([
    ...new TextEncoder().encode("P5\n# made by hand\n3 2\n255\n"),
    0,
    10,
    20,
    30,
    40,
    255,
  ]);
  assert.deepEqual([...decodePgm(p5, "a.pgm").pixels], [0, 10, 20, 30, 40, 255]);
  const p2 = new TextEncoder().encode("P2 2 2 15\n0 15\n5 10\n");
  assert.deepEqual([...decodePgm(p2, "b.pgm").pixels], [0, 255, 85, 170]);
});

Deno.test("toMnist: a dark digit on white becomes bright ink centred in 28x28", () => {
  const w = 60, h = 90;
  const px = new Uint8Array(w * h).fill(255);
  for (let y = 20; y < 70; y++) for (let x = 10; x < 20; x++) px[y * w + x] = 0; // a bar: "1"
  const m = toMnist({ width: w, height: h, pixels: px });
  assert.equal(m.length, 784);
  let mass = 0, cx = 0, cy = 0, rows = 0;
  for (let y = 0; y < 28; y++) {
    let any = false;
    for (let x = 0; x < 28; x++) {
      const v = m[y * 28 + x];
      mass += v, cx += v * x, cy += v * y;
      if (v > 0) any = true;
    }
    if (any) rows++;
  }
  assert.equal(rows, 20, "scaled to a 20-pixel-high box");
  assert.ok(Math.abs(cx / mass - 13.5) < 1 && Math.abs(cy / mass - 13.5) < 1, "centred by mass");
  assert.equal(m[0], 0, "background black");
});

Deno.test('toMnist: centred by centre of mass, not by bounding box (an asymmetric "7")', () => {
  // A thick top bar and a thin stem at its right end: the ink's mass sits high and to the
  // left of its box's centre, so the two ways of centring put it pixels apart.
  const w = 60, h = 90;
  const px = new Uint8Array(w * h).fill(255);
  for (let y = 20; y < 28; y++) for (let x = 10; x < 50; x++) px[y * w + x] = 0;
  for (let y = 28; y < 70; y++) for (let x = 43; x < 50; x++) px[y * w + x] = 0;
  const m = toMnist({ width: w, height: h, pixels: px });
  let mass = 0, cx = 0, cy = 0, x0 = 28, x1 = -1, y0 = 28, y1 = -1;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = m[y * 28 + x];
      mass += v, cx += v * x, cy += v * y;
      if (v > 0) {
        x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
      }
    }
  }
  assert.equal(Math.max(x1 - x0 + 1, y1 - y0 + 1), 20, "scaled to a 20-pixel box, none cut off");
  // Whole-pixel placement: the centre of mass within half a pixel of the frame's centre.
  assert.ok(Math.abs(cx / mass - 13.5) <= 0.5, `centre of mass x ${cx / mass}`);
  assert.ok(Math.abs(cy / mass - 13.5) <= 0.5, `centre of mass y ${cy / mass}`);
  // The box's centre is off by pixels: centring the box would have failed the lines above.
  const boxX = (x0 + x1) / 2, boxY = (y0 + y1) / 2;
  assert.ok(
    Math.abs(boxX - 13.5) >= 2 || Math.abs(boxY - 13.5) >= 2,
    `box centre ${boxX}, ${boxY}`,
  );
});

Deno.test("bad images: one-line errors naming the file; fuzzing raises only UserError", async () => {
  const good = await encodePng(randomImage(8, 8, 2));
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([1, 2, 3]), /not a PNG/],
    [good.slice(0, 40), /truncated/],
  ];
  for (const [bytes, re] of cases) {
    await assert.rejects(decodePng(bytes, "bad.png"), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /^bad\.png: /);
      assert.match(e.message, re);
      return true;
    });
  }
  assert.throws(
    () => decodePgm(new TextEncoder().encode("P5 3 3 255\n12"), "t.pgm"),
    /t\.pgm: .*truncated/,
  );
  const huge = new TextEncoder().encode("P5 100000 100000 255\n");
  assert.throws(() => decodePgm(huge, "h.pgm"), /too large/);
  const rand = mulberry32(77);
  for (let i = 0; i < 1500; i++) {
    const b = good.slice();
    for (let f = 0; f < 3; f++) b[Math.floor(rand() * b.length)] = rand() * 256;
    try {
      await decodePng(b, `fuzz${i}.png`);
    } catch (e) {
      if (!(e instanceof UserError)) throw new Error(`case ${i}: ${e}`);
    }
    const p = new TextEncoder().encode(`P${i % 2 ? 5 : 2} ${i % 7} ${i % 5} ${i % 300}\n`);
    try {
      decodePgm(p, `fuzz${i}.pgm`);
    } catch (e) {
      if (!(e instanceof UserError)) throw new Error(`pgm case ${i}: ${e}`);
    }
  }
});
