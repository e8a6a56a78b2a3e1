/**
 * The browser half of tests/web_test.ts, run as its own process with
 * `--allow-all` (playwright-core reads /proc at start, which Deno grants only
 * with all permissions; the test task's own permissions stay as they are),
 * and with a config of its own (tests/browser/deno.json and its lockfile):
 * Deno installs every npm package of a config's lockfile as soon as any is
 * needed, so playwright-core in the main config would be downloaded by
 * `deno task fast` too.
 *
 * `deno run -A --config tests/browser/deno.json tests/browser/web_browser.ts
 * MODEL.safetensors SHOTS_DIR` serves the
 * page (fast/web/serve.ts), and in headless Chromium (Debian's `chromium`,
 * WebGPU on SwiftShader with `--enable-unsafe-webgpu`): trains `WEB_SMALL`,
 * pausing and resuming it once, screenshots it, saves its model
 * (SHOTS_DIR/page-model.safetensors), runs slow beside fast, loads MODEL, draws the digits of `WEB_DIGITS` on the pad;
 * then opens the page in a Chromium without WebGPU. Prints what the page
 * showed as one JSON line (`WebObservations`) on stdout; the test judges it.
 *
 * @module
 */

import type { Browser, Page } from "playwright-core";
import { type PageServer, startServer } from "../../fast/web/serve.ts";
import { WEB_COMPARE_STEPS, WEB_DIGITS, WEB_SMALL, type WebObservations } from "../web_shared.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

async function launch(webgpu: boolean): Promise<Browser> {
  // Loaded here, so that tests/web_test.ts can import this module's constants without it.
  const { chromium } = await import("playwright-core");
  // playwright-core gives each launch a fresh --user-data-dir of its own.
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: webgpu ? [...FLAGS, "--enable-unsafe-webgpu"] : FLAGS,
  });
}

const status = (page: Page) => page.textContent("#status").then((s) => s ?? "");

/** Waits until the status line matches `re` (an expression run in the page, which has a DOM). */
async function waitStatus(page: Page, re: RegExp, timeout = 120_000): Promise<string> {
  await page.waitForFunction(
    `${re}.test(document.getElementById("status").textContent) ||
      document.getElementById("no-webgpu").textContent !== ""`,
    null,
    { timeout },
  );
  return await status(page);
}

async function stroke(page: Page, points: [number, number][]): Promise<void> {
  const box = (await page.locator("#pad").boundingBox())!;
  const at = ([x, y]: [number, number]) => [box.x + x * box.width, box.y + y * box.height];
  const [x0, y0] = at(points[0]);
  await page.mouse.move(x0, y0);
  await page.mouse.down();
  for (const p of points.slice(1)) {
    const [x, y] = at(p);
    await page.mouse.move(x, y, { steps: 8 });
  }
  await page.mouse.up();
}

async function observe(server: PageServer, model: string, shots: string) {
  const pageErrors: string[] = [];
  const browser = await launch(true);
  let out: Omit<WebObservations, "noWebgpu">;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(server.url);
    const ready = await waitStatus(page, /Ready|error/, 60_000);
    const optimizers = await page.locator("#optimizer option").allTextContents();
    await page.fill("#train-limit", String(WEB_SMALL.trainLimit));
    await page.fill("#test-limit", String(WEB_SMALL.testLimit));
    await page.fill("#batch-size", String(WEB_SMALL.batchSize));
    await page.fill("#epochs", String(WEB_SMALL.epochs));
    await page.fill("#lr", String(WEB_SMALL.lr));
    await page.click("#start");
    // Pause after the first chunk of steps, check that nothing moves, resume.
    await waitStatus(page, /^(training: step|done|error)/);
    await page.click("#start");
    const paused = await waitStatus(page, /^(paused at step|done|error)/);
    await page.waitForTimeout(1500);
    const stillPaused = await status(page);
    const pauseButton = (await page.textContent("#start")) ?? "";
    await page.click("#start");
    const trained = await waitStatus(page, /^(done|error)/);
    const log = (await page.textContent("#log")) ?? "";
    await page.screenshot({ path: `${shots}/trained.png`, fullPage: true });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#save")]);
    await download.saveAs(`${shots}/page-model.safetensors`);
    await page.fill("#compare-steps", String(WEB_COMPARE_STEPS));
    await page.click("#compare");
    await page.waitForSelector("#compare-table, #compare-result:has-text('error')", {
      timeout: 120_000,
    });
    const compare = await page.$$eval(
      "#compare-table tr",
      (rows) =>
        rows.map((r) => [r.children[0]?.textContent ?? "", r.children[1]?.textContent ?? ""]),
    ) as [string, string][];
    if (compare.length === 0) compare.push(["error", (await page.textContent("#compare-result"))!]);
    await page.setInputFiles("#load", model);
    const loaded = await waitStatus(page, /^(loaded|error)/);
    const predictions: Record<string, string> = {};
    for (const [digit, strokes] of WEB_DIGITS) {
      await page.click("#clear");
      for (const s of strokes) await stroke(page, s);
      predictions[digit] = (await page.textContent("#prediction")) ?? "";
      await page.screenshot({ path: `${shots}/drawn-${digit}.png`, fullPage: true });
    }
    out = {
      ready,
      optimizers,
      paused: [paused, stillPaused, pauseButton],
      trained,
      loaded,
      log,
      compare,
      predictions,
      pageErrors,
    };
  } finally {
    await browser.close();
  }
  const plain = await launch(false);
  try {
    const page = await plain.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(server.url);
    await waitStatus(page, /Ready|error/, 60_000);
    const text = (await page.textContent("#no-webgpu")) ?? "";
    return { ...out, noWebgpu: { text, visible: await page.isVisible("#no-webgpu") } };
  } finally {
    await plain.close();
  }
}

if (import.meta.main) {
  const [model, shots] = Deno.args;
  const server = await startServer({ port: 0 });
  try {
    console.log(JSON.stringify(await observe(server, model, shots)));
  } finally {
    await server.shutdown();
  }
}
