/** The shared trainer flags: defaults, values, and one-line errors for bad ones. */

import assert from "node:assert/strict";
import { DEFAULTS, helpText, parseTrainArgs, type TrainConfig } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";

Deno.test("defaults are the original program's", () => {
  const c = parseTrainArgs([], "fast") as TrainConfig;
  assert.equal(c.epochs, DEFAULTS.epochs);
  assert.equal(c.batchSize, 500);
  assert.equal(c.lr, 0.01);
  assert.equal(c.seed, 1337);
  assert.equal(c.json, false);
  assert.equal(c.trainLimit, undefined);
});

Deno.test("every flag is read", () => {
  const c = parseTrainArgs(
    [
      "--data",
      "d",
      "--epochs",
      "3",
      "--batch-size=64",
      "--lr",
      "0.5",
      "--seed",
      "0",
      "--train-limit",
      "100",
      "--test-limit",
      "50",
      "--json",
      "--profile",
      "--no-tune",
    ],
    "fast",
  ) as TrainConfig;
  assert.deepEqual(c, {
    dataDir: "d",
    epochs: 3,
    batchSize: 64,
    lr: 0.5,
    seed: 0,
    trainLimit: 100,
    testLimit: 50,
    json: true,
    profile: true,
    noTune: true,
  });
  assert.equal(parseTrainArgs(["--help"], "slow"), "help");
});

Deno.test("bad values get a one-line UsageError naming the flag", () => {
  const bad: [string[], RegExp][] = [
    [["--epochs", "abc"], /--epochs/],
    [["--epochs", "0"], /--epochs/],
    [["--epochs", "-1"], /epochs/],
    [["--batch-size", "2.5"], /--batch-size/],
    [["--lr", "x"], /--lr/],
    [["--lr", "0"], /--lr/],
    [["--lr", "-0.1"], /--lr/],
    [["--seed", "-3"], /--seed/],
    [["--train-limit", "0"], /--train-limit/],
    [["--frobnicate"], /frobnicate/],
    [["--no-tune"], /--no-tune/], // slow trainer has no tuner
    [["extra"], /extra|positional/i],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseTrainArgs(args, "slow"), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${args.join(" ")} -> UsageError`);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("--help explains every flag", () => {
  for (const name of ["slow", "fast"] as const) {
    const text = helpText(name);
    for (
      const flag of [
        "--data",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--train-limit",
        "--test-limit",
        "--json",
        "--profile",
        "--help",
      ]
    ) assert.ok(text.includes(flag), `${name} help names ${flag}`);
  }
  assert.ok(helpText("fast").includes("--no-tune"));
});
