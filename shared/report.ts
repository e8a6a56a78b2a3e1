/**
 * Pictures of a run: a confusion matrix for the terminal, and an SVG chart
 * of loss and accuracy per epoch. Plain strings, no dependencies.
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

/**
 * An SVG line chart: training loss (left axis) and test accuracy (right
 * axis, percent) per epoch.
 */
export function lossAccuracySvg(points: EpochPoint[], title = "training"): string {
  const W = 640, H = 360, L = 60, R = 60, T = 40, B = 50;
  const pw = W - L - R, ph = H - T - B;
  const n = points.length;
  const maxEpoch = Math.max(1, ...points.map((p) => p.epoch));
  const maxLoss = Math.max(1e-9, ...points.map((p) => p.loss)) * 1.05;
  const x = (e: number) => L + (n <= 1 ? pw / 2 : (e - 1) / (maxEpoch - 1) * pw);
  const yLoss = (v: number) => T + ph - v / maxLoss * ph;
  const yAcc = (a: number) => T + ph - a * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
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
  out.push("</svg>");
  return out.filter(Boolean).join("\n") + "\n";
}
