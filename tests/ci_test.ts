/**
 * `.ci/run` itself, against a stand-in `deno` (and `apt-get`) that replay a
 * test run's output and exit status: it passes only a complete, unfiltered,
 * crash-free run of at least the suite's tests, never retries, and always ends
 * with the plain `tests: N passed, N failed` line.
 *
 * @module
 */

import assert from "node:assert/strict";

const CI = new URL("../.ci/run", import.meta.url).pathname;
const MIN_TESTS = Number(Deno.readTextFileSync(CI).match(/^MIN_TESTS=(\d+)$/m)![1]);

/** What the stand-in `deno task test` prints and how it exits, and the rest of the machine. */
interface Scenario {
  log: string;
  status?: number;
  /** Exit status of `deno eval` (the adapter probe). */
  probe?: number;
  /** Exit status of `apt-get update`. */
  aptUpdate?: number;
}

/** Lines of `deno test --parallel` from the two stand-in test files, then `extra` and `summary`. */
function runLog(summary: string, extra = ""): string {
  return [
    "./tests/a_test.ts => a: one ... ok (1ms)",
    "./tests/b_test.ts => b: one ... ok (1ms)",
    summary,
    extra,
    "",
  ].join("\n");
}

/** Runs a copy of `.ci/run` in a scratch project whose `deno` replays `s`. */
async function runCi(
  s: Scenario,
): Promise<{ code: number; stdout: string; stderr: string; runs: number }> {
  const root = await Deno.makeTempDir({ prefix: "ci-run-" });
  try {
    await Deno.mkdir(`${root}/.ci`);
    await Deno.mkdir(`${root}/tests`);
    await Deno.mkdir(`${root}/bin`);
    await Deno.copyFile(CI, `${root}/.ci/run`);
    for (const f of ["a_test.ts", "b_test.ts"]) await Deno.writeTextFile(`${root}/tests/${f}`, "");
    // The web page test's browser is there already (a stand-in for tests/install_chromium.sh).
    await Deno.writeTextFile(`${root}/tests/install_chromium.sh`, "#!/bin/sh\nexit 0\n", {
      mode: 0o755,
    });
    await Deno.writeTextFile(`${root}/log`, s.log);
    await Deno.writeTextFile(
      `${root}/bin/deno`,
      `#!/usr/bin/env bash
case "$1" in
  --version) echo "deno 2.9.6 (stable, release, x86_64-unknown-linux-gnu)" ;;
  eval) exit ${s.probe ?? 0} ;;
  task) echo run >>"${root}/runs"; cat "${root}/log"; exit ${s.status ?? 0} ;;
  *) exit 99 ;;
esac
`,
    );
    await Deno.writeTextFile(
      `${root}/bin/apt-get`,
      `#!/usr/bin/env bash\n[[ $1 == update ]] && exit ${s.aptUpdate ?? 0}\nexit 0\n`,
    );
    for (const f of ["deno", "apt-get"]) await Deno.chmod(`${root}/bin/${f}`, 0o755);
    const out = await new Deno.Command("bash", {
      args: [`${root}/.ci/run`],
      env: { PATH: `${root}/bin:${Deno.env.get("PATH")}` },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    const runs = await Deno.readTextFile(`${root}/runs`).then((t) => t.split("\n").length - 1)
      .catch(() => 0);
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      runs,
    };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** The last line on stdout. */
const lastLine = (stdout: string) => stdout.trimEnd().split("\n").at(-1);

const n = MIN_TESTS;

Deno.test(".ci/run passes a complete run and ends with the plain summary line", async () => {
  const r = await runCi({ log: runLog(`ok | ${n} passed | 0 failed (1m5s)`) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lastLine(r.stdout), `tests: ${n} passed, 0 failed`);
  assert.equal(r.runs, 1);
});

Deno.test(".ci/run fails every other run, once, and still prints the plain line", async () => {
  const cases: [string, Scenario, RegExp, string][] = [
    [
      "a crash after an ok summary",
      {
        log: runLog(`ok | ${n} passed | 0 failed (1m5s)`, "corrupted size vs. prev_size"),
        status: 134,
      },
      /crashed \(exit 134\): corrupted size/,
      `tests: ${n} passed, 0 failed`,
    ],
    [
      "a segmentation fault before the summary",
      { log: runLog("", "Segmentation fault"), status: 139 },
      /crashed \(exit 139\)/,
      "tests: 0 passed, 0 failed",
    ],
    [
      "a failed test",
      { log: runLog(`FAILED | ${n - 1} passed | 1 failed (1m5s)`), status: 1 },
      /exited with status 1/,
      `tests: ${n - 1} passed, 1 failed`,
    ],
    [
      "an only: left in",
      { log: runLog(`ok | 1 passed | 0 failed | ${n - 1} filtered out (1s)`) },
      /filtered out/,
      "tests: 1 passed, 0 failed",
    ],
    [
      "ignored tests",
      { log: runLog(`ok | ${n - 1} passed | 0 failed | 1 ignored (1m)`) },
      /ignored/,
      `tests: ${n - 1} passed, 0 failed`,
    ],
    [
      "fewer tests than the suite holds",
      { log: runLog(`ok | ${n - 1} passed | 0 failed (1m)`) },
      /fewer than the suite's/,
      `tests: ${n - 1} passed, 0 failed`,
    ],
    [
      "a test file that never reported",
      { log: runLog(`ok | ${n} passed | 0 failed (1m)`).replace(/^.*b_test.*\n/m, "") },
      /no tests reported from: tests\/b_test\.ts/,
      `tests: ${n} passed, 0 failed`,
    ],
    [
      "no summary",
      { log: "Check tests/a_test.ts\n" },
      /no test summary/,
      "tests: 0 passed, 0 failed",
    ],
    [
      "apt-get update failing",
      { log: "", probe: 1, aptUpdate: 100 },
      /apt-get update failed/,
      "tests: 0 passed, 0 failed",
    ],
    [
      "no adapter after installing Mesa",
      { log: "", probe: 1 },
      /no WebGPU adapter after installing Mesa/,
      "tests: 0 passed, 0 failed",
    ],
  ];
  for (const [what, scenario, reason, plain] of cases) {
    const r = await runCi(scenario);
    assert.equal(r.code, 1, `${what}: exit code\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, reason, what);
    assert.equal(lastLine(r.stdout), plain, what);
    assert.equal(r.runs, scenario.probe ? 0 : 1, `${what}: the tests ran once, never again`);
  }
});
