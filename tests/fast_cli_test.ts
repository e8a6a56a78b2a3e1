/**
 * The trainers' command lines as real processes on the real adapter, with data
 * given by `--data` (IDX files written here): `--json` puts the summary alone
 * on stdout, a bad flag is one line and exit code 2, and `--profile` reaches
 * the printed table and the JSON of both trainers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { learnableDigits, writeIdxDir } from "./fixtures.ts";
import { type ProgramOutput, runDenoProgram } from "./deadline.ts";

/** Runs `<trainer>/main.ts args` to its end (under a deadline); returns exit code, stdout, stderr. */
function runCli(trainer: "fast" | "slow", args: string[]): Promise<ProgramOutput> {
  return runDenoProgram(`${trainer}/main.ts`, args);
}

/** 200 training and 50 test digits as IDX files in a fresh directory; removed after `fn`. */
async function withData(fn: (flags: string[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cli-data-" });
  try {
    await writeIdxDir(dir, learnableDigits(200, 50, 4));
    await fn(["--data", dir, "--epochs", "1", "--batch-size", "50"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("deno task fast --json: the summary alone on stdout, the log on stderr", async () => {
  await withData(async (flags) => {
    const { code, stdout, stderr } = await runCli("fast", [...flags, "--no-tune", "--json"]);
    assert.equal(code, 0, stderr);
    const lines = stdout.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, `stdout holds one line: ${stdout}`);
    const summary = JSON.parse(lines[0]);
    assert.equal(summary.trainer, "fast");
    assert.equal(summary.data.train, 200);
    assert.equal(summary.test.total, 50);
    assert.equal(summary.epochs.length, 1);
    assert.equal(summary.profile, undefined, "no profile without --profile");
    assert.match(stderr, /^adapter: /m);
    assert.match(stderr, /^\[epoch 1 done\] avg loss = /m);
    assert.match(stderr, /^validation: accuracy = /m);
    assert.ok(!stderr.includes('"trainer"'), "the JSON is not on stderr");
  });
});

Deno.test("both CLIs without --json: results on stdout (`> run.log` keeps them), notices on stderr", async () => {
  await withData(async (flags) => {
    for (const trainer of ["fast", "slow"] as const) {
      const extra = trainer === "fast" ? ["--no-tune", "--test-limit", "50"] : [];
      const { code, stdout, stderr } = await runCli(trainer, [...flags, ...extra]);
      assert.equal(code, 0, `${trainer}: ${stderr}`);
      assert.match(stdout, /^\[epoch 1 done\] avg loss = \d+\.\d{4}/m, `${trainer}: ${stdout}`);
      assert.match(stdout, /^validation: accuracy = /m, `${trainer}: ${stdout}`);
      if (trainer === "fast") assert.match(stdout, /^true\\pred /m, "fast: the confusion matrix");
      assert.doesNotMatch(stderr, /\[epoch 1 done\]|validation: accuracy/, `${trainer}: ${stderr}`);
      assert.match(stderr, /^adapter: /m, `${trainer}: the adapter line stays on stderr`);
      assert.doesNotMatch(stdout, /^adapter: /m, `${trainer}: ${stdout}`);
    }
  });
});

Deno.test("deno task fast --json: config.optimizer, shuffle, init (absent after --load), confusion", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli-json-" });
  try {
    const data = learnableDigits(200, 50, 4);
    await writeIdxDir(dir, data);
    const flags = ["--data", dir, "--epochs", "1", "--batch-size", "50", "--no-tune", "--json"];
    const file = `${dir}/model.safetensors`;
    const json = async (args: string[]) => {
      const { code, stdout, stderr } = await runCli("fast", args);
      assert.equal(code, 0, stderr);
      return JSON.parse(stdout);
    };
    const plain = await json(flags);
    assert.deepEqual(Object.keys(plain.config).sort(), [
      "batchSize",
      "epochs",
      "init",
      "lr",
      "seed",
    ]);
    assert.deepEqual(plain.config, {
      epochs: 1,
      batchSize: 50,
      lr: 0.01,
      seed: 1337,
      init: "original",
    });
    const tuned = await json([
      ...flags,
      ...["--optimizer", "momentum", "--shuffle", "--init", "kaiming", "--save", file],
    ]);
    assert.equal(tuned.config.optimizer, "momentum");
    assert.equal(tuned.config.shuffle, true);
    assert.equal(tuned.config.init, "kaiming");
    // The confusion matrix: 10 rows of 10 counts, row t summing to the test digits labelled t.
    const { confusion, correct, total } = tuned.test;
    assert.equal(total, 50);
    assert.equal(confusion.length, 10);
    const labelled = Array.from(
      { length: 10 },
      (_, t) => data.testLabels.filter((l) => l === t).length,
    );
    confusion.forEach((row: number[], t: number) => {
      assert.equal(row.length, 10);
      assert.ok(row.every((c) => Number.isInteger(c) && c >= 0), String(row));
      assert.equal(row.reduce((a, b) => a + b, 0), labelled[t], `row ${t}`);
    });
    assert.equal(confusion.reduce((a: number, row: number[], t: number) => a + row[t], 0), correct);
    // --load: the weights come from the file, so the summary names no init.
    const loaded = await json([...flags, "--load", file]);
    assert.ok(!("init" in loaded.config), JSON.stringify(loaded.config));
    assert.ok(!("optimizer" in loaded.config) && !("shuffle" in loaded.config));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("both CLIs: a bad flag is one line on stderr, nothing on stdout, exit code 2", async () => {
  for (const trainer of ["fast", "slow"] as const) {
    for (const args of [["--frobnicate"], ["--batch-size", "0"], ["--epochs", "x", "--json"]]) {
      const { code, stdout, stderr } = await runCli(trainer, args);
      const what = `${trainer} ${args.join(" ")}`;
      assert.equal(code, 2, `${what}: ${stderr}`);
      assert.equal(stdout, "", what);
      const lines = stderr.split("\n").filter((l) => l !== "");
      assert.equal(lines.length, 1, `${what}: ${stderr}`);
      assert.match(lines[0], /^error: /, what);
    }
  }
});

Deno.test("both CLIs: --profile prints the per-kernel table and puts it in --json", async () => {
  await withData(async (flags) => {
    for (const trainer of ["fast", "slow"] as const) {
      const extra = trainer === "fast" ? ["--no-tune"] : [];
      const { code, stdout, stderr } = await runCli(trainer, [
        ...flags,
        ...extra,
        "--profile",
        "--json",
      ]);
      assert.equal(code, 0, `${trainer}: ${stderr}`);
      const summary = JSON.parse(stdout);
      assert.equal(summary.trainer, trainer);
      const profile = summary.profile;
      assert.ok(profile, `${trainer}: profile in --json`);
      assert.ok(profile.kernels.length > 0, `${trainer}: kernels profiled`);
      assert.ok(profile.kernels.every((k: { calls: number }) => k.calls > 0));
      assert.ok(profile.wallMs > 0 && profile.gpuMs >= 0, JSON.stringify(profile));
      assert.match(stderr, /^GPU profile \(/m, `${trainer}: the table on stderr`);
      for (const k of profile.kernels) {
        assert.ok(stderr.includes(k.kernel), `${trainer}: ${k.kernel} in the table`);
      }
    }
  });
});
