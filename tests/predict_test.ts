/**
 * `deno task predict`: a model trained here (on the CPU reference, a few
 * hundred sample digits) classifies a PNG made from a known test digit the
 * same way it classifies the digit's own bytes.
 */

import assert from "node:assert/strict";
import { encodePng, type GreyImage } from "../shared/data/image.ts";
import { encodeIdx } from "../shared/data/idx.ts";
import { batchRanges, initParams, pixelsToFloats, trainStep } from "../shared/model/mlp.ts";
import { loadMnist } from "../shared/data/mnist.ts";
import { encodeMlp } from "../shared/io/safetensors.ts";
import { classify, predictFiles } from "../fast/predict.ts";
import { childDeadline } from "./deadline.ts";

/** A 28x28 digit drawn larger (nearest-neighbour ×3), dark ink on white. */
function bigOnWhite(digit: Uint8Array): GreyImage {
  const s = 3, w = 28 * s;
  const pixels = new Uint8Array(w * w);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      pixels[y * w + x] = 255 - digit[Math.floor(y / s) * 28 + Math.floor(x / s)];
    }
  }
  return { width: w, height: w, pixels };
}

Deno.test("predict: a PNG of a sample digit gets the digit its bytes get", async () => {
  const data = await loadMnist({ announce: false });
  const params = initParams(1337);
  const n = 400;
  for (let epoch = 0; epoch < 3; epoch++) {
    for (const [start, count] of batchRanges(n, 40)) {
      trainStep(
        params,
        pixelsToFloats(data.trainImages, start, count),
        data.trainLabels.subarray(start, start + count),
        0.1,
      );
    }
  }
  const dir = await Deno.makeTempDir();
  try {
    const model = `${dir}/m.safetensors`;
    await Deno.writeFile(model, encodeMlp(params));
    // The first test digits the model gets right (so the check means something).
    const picks: number[] = [];
    for (let i = 0; picks.length < 3 && i < 200; i++) {
      const img = data.testImages.subarray(i * 784, (i + 1) * 784);
      if (classify(params, img, 1)[0].digit === data.testLabels[i]) picks.push(i);
    }
    assert.equal(picks.length, 3, "the model learned something");
    const files: string[] = [];
    for (const i of picks) {
      files.push(`${dir}/digit${i}.png`);
      await Deno.writeFile(
        files.at(-1)!,
        await encodePng(bigOnWhite(data.testImages.subarray(i * 784, (i + 1) * 784))),
      );
    }
    const idxPath = `${dir}/few-images-idx3-ubyte`;
    await Deno.writeFile(idxPath, encodeIdx([2, 28, 28], data.testImages.subarray(0, 2 * 784)));
    const res = await predictFiles(model, [...files, idxPath]);
    assert.equal(res.length, 5);
    picks.forEach((i, k) => {
      assert.equal(res[k].digit, data.testLabels[i], `picture of test digit ${i}`);
      const sum = res[k].probabilities.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-9);
    });
    const direct = classify(params, data.testImages.subarray(0, 2 * 784), 2);
    assert.deepEqual(res.slice(3).map((r) => r.digit), direct.map((r) => r.digit));

    // The official test images by name, with their labels.
    const official = await predictFiles(model, ["mnist:test"], 3);
    assert.deepEqual(official.map((r) => r.label), [7, 2, 1]);
    assert.deepEqual(
      official.map((r) => r.digit),
      classify(params, data.testImages.subarray(0, 3 * 784), 3).map((r) => r.digit),
    );

    // The CLI: output per image, and a one-line error for a bad model file.
    const run = async (args: string[]) => {
      const deadline = childDeadline(`fast/predict.ts ${args.join(" ")}`);
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          new URL("../fast/predict.ts", import.meta.url).pathname,
          ...args,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: deadline.signal,
      }).output();
      deadline.check();
      return out;
    };
    const ok = await run(["--model", model, files[0]]);
    assert.equal(ok.code, 0);
    assert.match(
      new TextDecoder().decode(ok.stdout),
      new RegExp(`digit${picks[0]}\\.png: ${data.testLabels[picks[0]]} `),
    );
    const named = await run(["--model", model, "--limit", "2", "mnist:test"]);
    assert.equal(named.code, 0);
    const lines = new TextDecoder().decode(named.stdout).trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^mnist:test\[0\]: \d \(label 7\) {2}\(0:/);
    assert.match(lines[1], /^mnist:test\[1\]: \d \(label 2\) {2}\(0:/);
    await Deno.writeFile(`${dir}/bad.safetensors`, new Uint8Array([1, 2, 3]));
    const bad = await run(["--model", `${dir}/bad.safetensors`, files[0]]);
    assert.equal(bad.code, 1);
    const err = new TextDecoder().decode(bad.stderr).trim();
    assert.match(err, /^error: .*bad\.safetensors: not a valid safetensors file/);
    assert.equal(err.split("\n").length, 1);

    // Usage errors: one line naming the flag, nothing on stdout, exit code 2.
    const usage: [string[], string][] = [
      [[files[0]], "error: --model FILE is required (see --help)"],
      [["--model", model], "error: give at least one INPUT image or IDX file"],
      ...["0", "-1", "2.5", "ten"].map((limit): [string[], string] => [
        ["--model", model, `--limit=${limit}`, "mnist:test"],
        `error: --limit must be a positive whole number, got '${limit}'`,
      ]),
    ];
    const noValue = ["--model", model, "mnist:test", "--limit"];
    usage.push([noValue, "error: Option '--limit <value>' argument missing (see --help)"]);
    for (const [args, line] of usage) {
      const u = await run(args);
      assert.equal(u.code, 2, args.join(" "));
      assert.equal(new TextDecoder().decode(u.stderr), line + "\n", args.join(" "));
      assert.equal(u.stdout.length, 0, args.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
