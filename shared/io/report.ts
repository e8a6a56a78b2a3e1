/**
 * Pictures of a run: a confusion matrix for the terminal, an SVG chart of
 * loss and accuracy per epoch, and (for the CNN) its first layer's filters
 * as small grey images under the chart. Plain strings, no dependencies.
 *
 * @module
 */

/** counts[t][p]: test images of true class t predicted as p. */
export function confusionMatrix(
  predicted: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes = 10,
): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]][predicted[i]]++;
  return m;
}

/** The matrix as a table: rows true digits, columns predictions, with per-class recall. */
export function formatConfusion(m: number[][]): string {
  const w = Math.max(4, String(Math.max(...m.flat())).length + 1);
  const pad = (s: string | number) => String(s).padStart(w);
  const lines = [`true\\pred${m.map((_, j) => pad(j)).join("")}  recall`];
  m.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    const recall = total ? (100 * row[t] / total).toFixed(1) + "%" : "-";
    lines.push(`${String(t).padStart(9)}${row.map(pad).join("")}  ${recall.padStart(6)}`);
  });
  return lines.join("\n");
}

/** One point of the chart. */
export interface EpochPoint {
  epoch: number;
  loss: number;
  /** Test accuracy after this epoch, as a fraction, when measured. */
  accuracy?: number;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** SVG content to draw below a chart: `height` pixels, `svg` drawn from (0, 0) of that strip. */
export interface SvgStrip {
  height: number;
  svg: string;
}

/**
 * An SVG line chart: training loss (left axis) and test accuracy (right
 * axis, percent) per epoch; `below` (e.g. `filtersSvg`) adds a strip under it.
 */
export function lossAccuracySvg(
  points: EpochPoint[],
  title = "training",
  below?: SvgStrip,
): string {
  const W = 640, H = 360, L = 60, R = 60, T = 40, B = 50;
  const fullHeight = H + (below?.height ?? 0);
  const pw = W - L - R, ph = H - T - B;
  const n = points.length;
  const maxEpoch = Math.max(1, ...points.map((p) => p.epoch));
  const maxLoss = Math.max(1e-9, ...points.map((p) => p.loss)) * 1.05;
  const x = (e: number) => L + (n <= 1 ? pw / 2 : (e - 1) / (maxEpoch - 1) * pw);
  const yLoss = (v: number) => T + ph - v / maxLoss * ph;
  const yAcc = (a: number) => T + ph - a * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${fullHeight}" viewBox="0 0 ${W} ${fullHeight}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${fullHeight}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = maxLoss * i / 4, y = yLoss(v);
    out.push(
      `<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="#eee"/>`,
      `<text x="${L - 6}" y="${y + 4}" text-anchor="end" fill="#1f5fbf">${v.toFixed(2)}</text>`,
      `<text x="${L + pw + 6}" y="${yAcc(i / 4) + 4}" fill="#c0392b">${i * 25}%</text>`,
    );
  }
  const ticks = Math.min(n, 10);
  for (let i = 0; i < ticks; i++) {
    const e = Math.round(1 + (maxEpoch - 1) * (ticks <= 1 ? 0 : i / (ticks - 1)));
    out.push(`<text x="${x(e)}" y="${T + ph + 18}" text-anchor="middle">${e}</text>`);
  }
  out.push(
    `<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">epoch</text>`,
    `<text x="16" y="${T + ph / 2}" fill="#1f5fbf" transform="rotate(-90 16 ${
      T + ph / 2
    })" text-anchor="middle">training loss</text>`,
    `<text x="${W - 14}" y="${T + ph / 2}" fill="#c0392b" transform="rotate(90 ${W - 14} ${
      T + ph / 2
    })" text-anchor="middle">test accuracy</text>`,
  );
  const line = (pts: [number, number][], colour: string) =>
    pts.length === 0
      ? ""
      : `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${
        pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")
      }"/>` + pts.map(([a, b]) =>
        `<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3" fill="${colour}"/>`
      ).join("");
  out.push(line(points.map((p) => [x(p.epoch), yLoss(p.loss)]), "#1f5fbf"));
  out.push(
    line(
      points.filter((p) => p.accuracy !== undefined).map((p) => [x(p.epoch), yAcc(p.accuracy!)]),
      "#c0392b",
    ),
  );
  if (below) out.push(`<g transform="translate(0 ${H})">`, below.svg, "</g>");
  out.push("</svg>");
  return out.filter(Boolean).join("\n") + "\n";
}

/**
 * The filters of a first convolution layer as small grey images, in a row
 * (wrapping at 640 pixels), with a caption: for a `[k·k, channels]` weight
 * matrix (rows in (ky, kx) order, one input channel), filter c's pixel
 * (ky, kx) is `weights[(ky·k + kx)·channels + c]`. Each filter is scaled to
 * its own largest |w|: black −max, mid grey 0, white +max. Returns a strip
 * for `lossAccuracySvg`'s `below`.
 */
export function filtersSvg(
  weights: ArrayLike<number>,
  kernel: number,
  channels: number,
  caption = `conv1's ${channels} filters (${kernel}×${kernel}), each scaled to its own ` +
    `±max: black −, grey 0, white +`,
): SvgStrip {
  if (weights.length !== kernel * kernel * channels) {
    throw new RangeError(
      `filtersSvg: ${weights.length} weights are not ${kernel}×${kernel}×${channels}`,
    );
  }
  const W = 640, margin = 20, gap = 8, top = 30;
  // 48-pixel images; as many rows as the width needs, filled evenly (16 → 2 rows of 8).
  const side = 48, cell = side / kernel;
  const fit = Math.max(1, Math.floor((W - 2 * margin + gap) / (side + gap)));
  const perRow = Math.ceil(channels / Math.ceil(channels / fit));
  const rows = Math.ceil(channels / perRow);
  const used = Math.min(channels, perRow) * (side + gap) - gap;
  const left = (W - used) / 2;
  const out = [
    `<text x="${W / 2}" y="18" text-anchor="middle">${esc(caption)}</text>`,
  ];
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let p = 0; p < kernel * kernel; p++) {
      max = Math.max(max, Math.abs(weights[p * channels + c]));
    }
    const x0 = left + (c % perRow) * (side + gap), y0 = top + Math.floor(c / perRow) * (side + 20);
    const label = `filter ${c}, max |w| ${max.toPrecision(3)}`;
    out.push(`<g><title>${label}</title>`);
    for (let ky = 0; ky < kernel; ky++) {
      for (let kx = 0; kx < kernel; kx++) {
        const w = weights[(ky * kernel + kx) * channels + c];
        const grey = Math.round(127.5 + 127.5 * (max > 0 ? w / max : 0));
        out.push(
          `<rect x="${(x0 + kx * cell).toFixed(2)}" y="${(y0 + ky * cell).toFixed(2)}" ` +
            `width="${cell.toFixed(2)}" height="${cell.toFixed(2)}" ` +
            `fill="rgb(${grey},${grey},${grey})" shape-rendering="crispEdges"/>`,
        );
      }
    }
    out.push(
      `<rect x="${x0}" y="${y0}" width="${side}" height="${side}" fill="none" stroke="#999"/>`,
      `<text x="${x0 + side / 2}" y="${
        y0 + side + 13
      }" text-anchor="middle" font-size="10">${c}</text>`,
      "</g>",
    );
  }
  return { height: top + rows * (side + 20) + 10, svg: out.join("\n") };
}
