/**
 * The web page (fast/web/) in a real browser: headless Chromium (Debian's
 * `chromium`, WebGPU on SwiftShader with `--enable-unsafe-webgpu`) driven by
 * playwright-core in tests/browser/web_browser.ts, a process of its own. The page
 * trains a few steps on a small subset (paused and resumed once); its printed
 * epoch losses must equal the CPU reference's and `trainFast`'s for the same
 * flags (at printed precision), and its saved model the CPU reference's
 * weights. Slow beside fast: the same few steps both
 * ways give the same losses, the fast engine in less time per step. A model
 * trained here is loaded into the page, digits drawn on the pad must be
 * classified right, and without WebGPU the page must say so in one sentence.
 * Screenshots land in data/web-test/ (trained.png after training). Chromium
 * missing is a failure: tests/install_chromium.sh. Two more tests, without a
 * browser, check the bundle itself and the `deno task serve` command.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TrainConfig } from "../shared/io/cli.ts";
import { openGpu } from "../shared/gpu/device.ts";
import { loadMnist, PACKAGE_FILES } from "../shared/data/mnist.ts";
import { initialParams, type MlpParams, pixelsToFloats, trainStep } from "../shared/model/mlp.ts";
import { decodeMlp } from "../shared/io/safetensors.ts";
import { formatEpoch } from "../shared/io/summary.ts";
import { trainFast } from "../fast/train.ts";
import { bundlePage } from "../fast/web/serve.ts";
import { WEB_COMPARE_STEPS, WEB_DIGITS, WEB_SMALL, type WebObservations } from "./web_shared.ts";
import { KERNEL_SOURCES } from "../shared/kernels/sources.ts";
import { OPTIMIZER_NAMES } from "../shared/model/optim.ts";
import { childDeadline } from "./deadline.ts";

const SHOTS = decodeURIComponent(new URL("../data/web-test", import.meta.url).pathname);

function config(flags: Partial<TrainConfig>): TrainConfig {
  return {
    epochs: 1,
    batchSize: 100,
    lr: 0.1,
    seed: 1337,
    init: "original",
    json: false,
    profile: false,
    noTune: true,
    ...flags,
  };
}

/** The CPU reference's epoch losses and weights (float64, shared/model/mlp.ts) for `WEB_SMALL`. */
function cpuRun(images: Uint8Array, labels: Uint8Array): { losses: number[]; params: MlpParams } {
  const { trainLimit, batchSize, epochs, lr } = WEB_SMALL;
  const params = initialParams("original", 1337);
  const out: number[] = [];
  for (let e = 0; e < epochs; e++) {
    let sum = 0;
    for (let start = 0; start < trainLimit; start += batchSize) {
      const count = Math.min(batchSize, trainLimit - start);
      const x = pixelsToFloats(images, start, count);
      sum += count * trainStep(params, x, labels.subarray(start, start + count), lr);
    }
    out.push(sum / trainLimit);
  }
  return { losses: out, params };
}

Deno.test("web page in Chromium: trains like deno task fast, classifies drawn digits, says when WebGPU is missing", async (t) => {
  try {
    await Deno.stat("/usr/bin/chromium");
  } catch {
    throw new Error("/usr/bin/chromium is missing: run tests/install_chromium.sh");
  }
  const data = await loadMnist({ announce: false });
  // The model the page will load: the fast trainer here, 10,000 images, 2 epochs.
  const model = await Deno.makeTempFile({ suffix: ".safetensors" });
  const gpu = await openGpu();
  let small;
  try {
    const flags = { trainLimit: 10000, testLimit: 1000, epochs: 2, save: model };
    const trained = await trainFast(config(flags), { gpu, data, log: () => {} });
    assert.ok(trained.test.accuracy > 0.85, `accuracy ${trained.test.accuracy}`);
    small = await trainFast(config(WEB_SMALL), { gpu, data, log: () => {} });
  } finally {
    gpu.device.destroy();
  }
  await Deno.mkdir(SHOTS, { recursive: true });
  const browser = childDeadline("tests/browser/web_browser.ts");
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--config",
      "tests/browser/deno.json",
      "tests/browser/web_browser.ts",
      model,
      SHOTS,
    ],
    cwd: decodeURIComponent(new URL("..", import.meta.url).pathname),
    stdout: "piped",
    stderr: "piped",
    signal: browser.signal,
  }).output();
  browser.check();
  await Deno.remove(model);
  const stderr = new TextDecoder().decode(run.stderr);
  assert.ok(run.success, `tests/browser/web_browser.ts failed:\n${stderr}`);
  const seen: WebObservations = JSON.parse(new TextDecoder().decode(run.stdout));
  assert.deepEqual(seen.pageErrors, []);

  await t.step("the page opened a WebGPU adapter and loaded the npm package's MNIST", () => {
    assert.match(seen.ready, /^adapter: .*60000 train \/ 10000 test images .*Ready\.$/);
  });
  await t.step("its optimiser menu lists every optimiser of shared/model/optim.ts's table", () => {
    assert.deepEqual(seen.optimizers, [...OPTIMIZER_NAMES]);
  });
  await t.step("Pause holds the run between chunks of steps; Resume goes on", () => {
    const [paused, later, button] = seen.paused;
    assert.match(paused, /^paused at step \d+: press Resume$/);
    assert.equal(later, paused);
    assert.equal(button, "Resume");
  });
  await t.step("its epoch losses equal the CPU reference's and deno task fast's; Save", () => {
    assert.equal(seen.trained, `done: ${WEB_SMALL.epochs} epochs`);
    const lines = seen.log.split("\n").filter((l) => l.startsWith("[epoch"));
    const shown = lines.map((l) => l.match(/avg loss = (\d+\.\d{4}) /)![1]);
    const cpu = cpuRun(data.trainImages, data.trainLabels);
    assert.deepEqual(shown, cpu.losses.map((l) => l.toFixed(4)));
    // The page's Save gives a model file the CLI reads, with the CPU reference's weights.
    const saved = decodeMlp(
      Deno.readFileSync(`${SHOTS}/page-model.safetensors`),
      "page-model.safetensors",
    ).params;
    assert.deepEqual(saved.sizes, cpu.params.sizes);
    saved.weights.forEach((w, l) => {
      const want = cpu.params.weights[l];
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i] - want[i]));
      assert.ok(worst < 1e-4, `layer ${l}: weights differ by up to ${worst}`);
    });
    const cli = small.epochs.map((e) => formatEpoch(e).match(/avg loss = (\S+)/)![1]);
    assert.deepEqual(shown, cli);
    const acc = lines.at(-1)!.match(/test accuracy = (\S+)%/)![1];
    assert.equal(acc, (small.test.accuracy * 100).toFixed(2));
  });
  await t.step("slow beside fast: the same losses per step, each engine's time shown", () => {
    const row = (k: string) => seen.compare.find(([label]) => label.startsWith(k))?.[1] ?? "";
    assert.ok(seen.compare.length > 0 && seen.compare[0][0] !== "error", String(seen.compare));
    const losses = new RegExp(`^\\d+\\.\\d{4}( \\d+\\.\\d{4}){${WEB_COMPARE_STEPS - 1}}$`);
    assert.match(row("losses, slow"), losses);
    assert.equal(row("losses, fast"), row("losses, slow"));
    // Each engine's time per step is shown; which is faster is bench/'s to say, not a test's.
    for (const engine of ["slow (", "fast ("]) {
      const ms = parseFloat(row(engine));
      assert.ok(Number.isFinite(ms) && ms > 0, `${engine}: ${row(engine)}`);
    }
  });
  await t.step("a loaded model classifies the digits drawn on the pad", () => {
    assert.match(seen.loaded, /^loaded /);
    for (const [digit] of WEB_DIGITS) {
      assert.match(seen.predictions[digit], new RegExp(`^${digit} \\(p = `), `drew a ${digit}`);
    }
  });
  await t.step("without WebGPU it says so in one visible sentence, with what to try", () => {
    const { text, visible } = seen.noWebgpu;
    assert.ok(visible);
    assert.match(text, /WebGPU/);
    assert.match(text, /--enable-unsafe-webgpu/);
    assert.equal(text.split(/[.!?](?:\s|$)/).filter((s) => s.trim()).length, 1, text);
  });
});

Deno.test("web page bundle: deno bundle carries the WGSL kernels, and no Deno API the page could reach", async () => {
  const js = await bundlePage();
  // Every kernel the engine and the slow trainer may use arrives as text.
  // (esbuild writes each as `var <name>_default = "<text>";`, with \xNN escapes.)
  for (const name of ["matmulBiasReluTexture", "weightGradTexture", "sumLosses", "matmul"]) {
    const literal = js.match(new RegExp(`\\bvar ${name}_default = ("(?:[^"\\\\]|\\\\.)*");`));
    assert.ok(literal, `kernel ${name} missing`);
    const text = JSON.parse(literal[1].replace(/\\x([0-9A-Fa-f]{2})/g, "\\u00$1"));
    assert.equal(text, KERNEL_SOURCES[name]);
  }
  // The one Deno call in the page's import graph: openGpu's default error handler
  // (shared/gpu/device.ts), which the page replaces with its own `onError`.
  const uses = [...js.matchAll(/\bDeno\.[A-Za-z.]+/g)].map((m) => m[0]);
  assert.deepEqual(uses, ["Deno.exit"]);
  assert.match(
    js,
    /function exitOnError\(message\) \{\s+console\.error\([^)]*\);\s+Deno\.exit\(1\);/,
  );
});

Deno.test("deno task serve: serves the page, its bundle and the npm package's MNIST bytes; bad --port is one line", async () => {
  const root = decodeURIComponent(new URL("..", import.meta.url).pathname);
  const serveArgs = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks.serve
    .split(" ").slice(1) as string[]; // deno run --allow-… fast/web/serve.ts
  const badDeadline = childDeadline("fast/web/serve.ts --port http");
  const bad = await new Deno.Command(Deno.execPath(), {
    args: [...serveArgs, "--port", "http"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    signal: badDeadline.signal,
  }).output();
  badDeadline.check();
  assert.equal(bad.code, 2);
  assert.equal(
    new TextDecoder().decode(bad.stderr),
    "error: --port must be a port number (0 to 65535), got 'http'\n",
  );
  const serving = childDeadline("fast/web/serve.ts --port 0");
  const child = new Deno.Command(Deno.execPath(), {
    args: [...serveArgs, "--port", "0"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
    signal: serving.signal,
  }).spawn();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await lines.read();
    lines.releaseLock();
    serving.check();
    const url = value?.match(/at (http:\/\/127\.0\.0\.1:\d+\/) /)?.[1];
    assert.ok(url, `no address in ${value}`);
    const page = await fetch(url);
    assert.match(await page.text(), /<script type="module" src="app\.js"><\/script>/);
    const js = await fetch(url + "app.js");
    assert.match(js.headers.get("content-type")!, /javascript/);
    assert.match(await js.text(), /createMlpEngine/);
    for (const key of ["testLabels", "trainLabels"] as const) {
      const res: Response = await fetch(url + `mnist/${PACKAGE_FILES[key].name}`);
      const sha: Uint8Array = new Uint8Array(
        await crypto.subtle.digest("SHA-256", await res.arrayBuffer()),
      );
      const hex: string = Array.from(sha, (b: number) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(hex, PACKAGE_FILES[key].sha256);
    }
    const missing = await fetch(url + "mnist/../deno.json");
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
  } finally {
    if (!serving.signal.aborted) child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});
