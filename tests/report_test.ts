/** Confusion matrix and the SVG chart. */

import assert from "node:assert/strict";
import { confusionMatrix, formatConfusion, lossAccuracySvg } from "../shared/io/report.ts";

Deno.test("confusion matrix counts true × predicted, and prints recall", () => {
  const m = confusionMatrix([0, 1, 2, 2, 9, 9], [0, 1, 2, 3, 9, 8]);
  assert.equal(m[3][2], 1);
  assert.equal(m[8][9], 1);
  assert.equal(m.flat().reduce((a, b) => a + b, 0), 6);
  const text = formatConfusion(m);
  assert.equal(text.split("\n").length, 11);
  assert.match(text.split("\n")[4], /^\s+3\s.*0\.0%$/);
});

Deno.test("SVG chart: one point per epoch inside the plot, both series", () => {
  const pts = [1, 2, 3, 4].map((e) => ({ epoch: e, loss: 2 / e, accuracy: 0.6 + e / 20 }));
  const svg = lossAccuracySvg(pts, "a <title> & more");
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.match(svg, /a &lt;title&gt; &amp; more/);
  const polylines = [...svg.matchAll(/points="([^"]+)"/g)].map((m) => m[1].split(" "));
  assert.equal(polylines.length, 2);
  for (const line of polylines) {
    assert.equal(line.length, 4);
    for (const p of line) {
      const [x, y] = p.split(",").map(Number);
      assert.ok(x >= 60 && x <= 580 && y >= 40 && y <= 310, `point ${p} inside the plot`);
    }
  }
  // Loss falls, so its y (downwards in SVG) rises; accuracy rises, so its y falls.
  const ys = polylines.map((l) => l.map((p) => Number(p.split(",")[1])));
  assert.ok(ys[0][3] > ys[0][0] && ys[1][3] < ys[1][0]);
});
