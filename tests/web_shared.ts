/**
 * What tests/web_test.ts and its browser half (tests/browser/web_browser.ts)
 * agree on: the run the page is asked for, the digits drawn, and the shape of
 * what the browser half reports. No playwright here, so the test suite's own
 * module graph (and deno.lock) never names it.
 *
 * @module
 */

/** The training run the test asks the page for (the CLI's flags of the same names). */
export const WEB_SMALL = { trainLimit: 500, testLimit: 200, batchSize: 50, epochs: 2, lr: 0.1 };

/** Steps of the slow-beside-fast comparison (each slow step takes ~2 s on SwiftShader). */
export const WEB_COMPARE_STEPS = 3;

/** Digits drawn on the pad: strokes through points given as fractions of its side. */
export const WEB_DIGITS: [number, [number, number][][]][] = [
  [1, [[[0.5, 0.15], [0.5, 0.85]]]],
  [7, [[[0.25, 0.2], [0.75, 0.2], [0.45, 0.85]]]],
];

/** What the page showed. */
export interface WebObservations {
  /** The status line once ready, after training, after loading the model. */
  ready: string;
  /** The optimiser menu's options, in order. */
  optimizers: string[];
  trained: string;
  loaded: string;
  /** Paused during the first epoch: the status, again 1.5 s later, and the button's label. */
  paused: [string, string, string];
  /** The training log (the epoch lines). */
  log: string;
  /** Slow beside fast: the comparison table's rows (label, value), after training. */
  compare: [string, string][];
  /** The prediction line per drawn digit. */
  predictions: Record<string, string>;
  /** Errors thrown in the page. */
  pageErrors: string[];
  /** Without WebGPU: the sentence shown, and whether it is visible. */
  noWebgpu: { text: string; visible: boolean };
}
