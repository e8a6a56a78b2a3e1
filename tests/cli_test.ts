/** The shared trainer flags: defaults, values, and one-line errors for bad ones. */

import assert from "node:assert/strict";
import {
  DEFAULTS,
  FAST_ONLY_FLAGS,
  helpText,
  parseTrainArgs,
  type TrainConfig,
} from "../shared/io/cli.ts";
import { UsageError } from "../shared/io/errors.ts";
import {
  HYPER_NAMES,
  HYPER_PARAMETERS,
  OPTIMIZER_NAMES,
  OPTIMIZERS,
} from "../shared/model/optim.ts";

Deno.test("defaults are the original program's", () => {
  const c = parseTrainArgs([], "fast") as TrainConfig;
  assert.equal(c.epochs, DEFAULTS.epochs);
  assert.equal(c.batchSize, 500);
  assert.equal(c.lr, 0.01);
  assert.equal(c.seed, 1337);
  assert.equal(c.init, "original");
  assert.equal((parseTrainArgs([], "slow") as TrainConfig).init, "original");
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
      "--init",
      "kaiming",
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
    init: "kaiming",
    trainLimit: 100,
    testLimit: 50,
    json: true,
    profile: true,
    noTune: true,
    tune: false,
    model: "mlp",
    optimizer: "sgd",
    momentum: 0.9,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.01,
    shuffle: false,
    save: undefined,
    load: undefined,
    resume: false,
    plot: undefined,
  });
  assert.equal(parseTrainArgs(["--help"], "slow"), "help");
});

Deno.test("the fast trainer's own flags are read", () => {
  const c = parseTrainArgs(
    [
      "--model",
      "mlp",
      "--optimizer",
      "adam",
      "--beta1",
      "0.8",
      "--beta2=0.99",
      "--eps",
      "1e-6",
      "--shuffle",
      "--save",
      "m.safetensors",
      "--resume",
      "--plot",
      "p.svg",
    ],
    "fast",
  ) as TrainConfig;
  assert.equal(c.optimizer, "adam");
  assert.equal(c.momentum, 0.9, "the default: Adam does not read it");
  const m = parseTrainArgs(["--optimizer", "momentum", "--momentum", "0.5"], "fast");
  assert.equal((m as TrainConfig).momentum, 0.5);
  const w = parseTrainArgs(["--optimizer", "adamw", "--weight-decay", "0.1"], "fast");
  assert.deepEqual([(w as TrainConfig).optimizer, (w as TrainConfig).weightDecay], ["adamw", 0.1]);
  const w0 = parseTrainArgs(["--optimizer=adamw", "--weight-decay=0", "--beta1", "0.8"], "fast");
  assert.deepEqual([(w0 as TrainConfig).weightDecay, (w0 as TrainConfig).beta1], [0, 0.8]);
  const wd = parseTrainArgs(["--optimizer", "adamw"], "fast") as TrainConfig;
  assert.equal(wd.weightDecay, 0.01, "PyTorch's default λ");
  assert.equal(c.beta1, 0.8);
  assert.equal(c.beta2, 0.99);
  assert.equal(c.eps, 1e-6);
  assert.equal(c.shuffle, true);
  assert.equal(c.save, "m.safetensors");
  assert.equal(c.resume, true);
  assert.equal(c.plot, "p.svg");
  const l = parseTrainArgs(["--load", "w.safetensors", "--model=mlp"], "fast") as TrainConfig;
  assert.equal(l.load, "w.safetensors");
  assert.equal((parseTrainArgs(["--model", "cnn"], "fast") as TrainConfig).model, "cnn");
  const cnn = parseTrainArgs(
    ["--model", "cnn", "--save", "c.st", "--resume", "--plot", "c.svg"],
    "fast",
  );
  assert.deepEqual(
    [(cnn as TrainConfig).save, (cnn as TrainConfig).resume, (cnn as TrainConfig).plot],
    ["c.st", true, "c.svg"],
  );
});

Deno.test("fast-only flags: one-line exit-2 errors for bad values and bad combinations", () => {
  const bad: [string[], RegExp][] = [
    [["--model", "rnn"], /--model/],
    [["--optimizer", "rmsprop"], /--optimizer/],
    [["--optimizer", "momentum", "--momentum", "1"], /--momentum must be a number from 0/],
    [["--optimizer", "adam", "--beta1", "-0.1"], /--beta1 must be/],
    [["--optimizer", "adam", "--beta2", "x"], /--beta2 must be/],
    [["--optimizer", "adam", "--eps", "0"], /--eps must be a positive number/],
    // A flag of another optimiser than the run's would do nothing: refused.
    [["--momentum", "0.5"], /--momentum is a setting of --optimizer momentum, not of sgd/],
    [["--optimizer", "adam", "--momentum", "0.5"], /--momentum .* not of adam/],
    [["--optimizer", "momentum", "--eps", "1e-6"], /--eps is a setting of --optimizer adam/],
    [
      ["--optimizer", "adamw", "--weight-decay", "-1"],
      /--weight-decay must be a number ≥ 0, got '-1'/,
    ],
    [["--weight-decay", "-1"], /--weight-decay must be a number ≥ 0, got '-1'/],
    [["--optimizer", "adamw", "--weight-decay", "abc"], /--weight-decay must be/],
    [["--optimizer", "adamw", "--weight-decay", "Infinity"], /--weight-decay must be/],
    [["--optimizer", "adam", "--weight-decay", "0.1"], /--weight-decay .* adamw, not of adam/],
    [["--weight-decay", "0.1"], /--weight-decay is a setting of --optimizer adamw, not of sgd/],
    [["--resume"], /--resume.*--save/],
    [["--save", "a", "--resume", "--load", "b"], /--resume and --load/],
    [["--save", ""], /--save/],
    [["--tune", "--no-tune"], /--tune and --no-tune cannot be combined/],
    [["--load", "m.safetensors", "--init", "kaiming"], /--init .*--load starts from the weights/],
    [["--save", "m.safetensors", "--resume", "--init", "original"], /--init .*--resume starts/],
    [["--init", "xavier"], /--init must be original or kaiming, got 'xavier'/],
    [["--model", "cnn", "--init", "original"], /--init .*the CNN has its own/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseTrainArgs(args, "fast"), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${args.join(" ")} -> UsageError`);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  }
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
    [["--optimizer", "adam"], /--optimizer.*fast trainer only/],
    [["--weight-decay", "0.1"], /--weight-decay.*fast trainer only/],
    [["--shuffle"], /--shuffle.*fast trainer only/],
    [["--save", "x"], /--save.*fast trainer only/],
    [["--model", "cnn"], /--model.*fast trainer only/],
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
  for (const flag of FAST_ONLY_FLAGS) {
    assert.ok(helpText("fast").includes(`--${flag}`), `fast help names --${flag}`);
    assert.ok(!helpText("slow").includes(`--${flag}`), `slow help leaves out --${flag}`);
  }
});

Deno.test("--help lists every optimiser and every hyper-parameter of the table, with its default", () => {
  const help = helpText("fast");
  const line = help.split("\n").find((l) => l.trimStart().startsWith("--optimizer NAME"));
  assert.ok(line, "a line for --optimizer");
  for (const name of OPTIMIZER_NAMES) assert.match(line, new RegExp(`\\b${name}\\b`));
  for (const h of HYPER_NAMES) {
    const { flag, default: dflt } = HYPER_PARAMETERS[h];
    assert.ok(FAST_ONLY_FLAGS.includes(flag), `--${flag} is a fast-only flag`);
    const hl = help.split("\n").find((l) => l.trimStart().startsWith(`--${flag} X`));
    assert.ok(hl?.includes(`(default ${dflt};`), `--${flag}'s line gives its default: ${hl}`);
    const readers = OPTIMIZER_NAMES.filter((o) => OPTIMIZERS[o].hyper.includes(h));
    assert.ok(readers.length > 0, `some optimiser reads ${h}`);
    for (const o of readers) assert.match(hl ?? "", new RegExp(`\\b${o}\\b.*only\\)$`));
  }
});
