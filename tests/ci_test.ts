/**
 * `.ci/run` itself, with the real tests/install_chromium.sh, against a
 * stand-in `deno` (and `apt-get`, and chromium) on a PATH that holds nothing
 * else but the shell's tools: the stand-in replays a test run's output and
 * exit status. `.ci/run` passes only a complete, unfiltered, crash-free run of
 * at least the suite's tests after `deno task check` and the benchmarks'
 * compile passed, never retries, kills a test run past its time limit, and
 * its last line says `tests: N passed, 0 failed` for a pass and only then;
 * any other run ends with `CI FAILED: why (tests: N passed, F failed)`, and no
 * line of it reads `tests: …` alone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { childDeadline } from "./deadline.ts";

const CI = new URL("../.ci/run", import.meta.url).pathname;
const INSTALL_CHROMIUM = new URL("./install_chromium.sh", import.meta.url).pathname;
const MIN_TESTS = Number(Deno.readTextFileSync(CI).match(/^MIN_TESTS=(\d+)$/m)![1]);

/** The tools `.ci/run`, install_chromium.sh and the stand-ins use, and nothing else. */
const TOOLS = [
  "bash",
  "sh",
  "cat",
  "chmod",
  "dirname",
  "grep",
  "mktemp",
  "rm",
  "sleep",
  "tail",
  "tee",
  "timeout",
];

/** What the stand-in `deno task test` prints and how it exits, and the rest of the machine. */
interface Scenario {
  log: string;
  status?: number;
  /** Exit status of `deno eval` (the adapter probe). */
  probe?: number;
  /** The adapter probe fails the first time only (Mesa was missing). */
  probeOnce?: boolean;
  /** Exit status of `deno task check`. */
  check?: number;
  /** Exit status of `deno bench --no-run` (both calls). */
  bench?: number;
  /** Seconds the test run sleeps before it prints its log (in a child of its own). */
  sleep?: number;
  /** The whole test run's time limit (CI_TEST_TIMEOUT), seconds. */
  timeout?: number;
  /** Whether there is an `apt-get` at all (default: yes). */
  apt?: boolean;
  /** Exit status of `apt-get update`. */
  aptUpdate?: number;
  /** Exit status of `apt-get install` (which installs chromium when it succeeds). */
  aptInstall?: number;
  /** Whether chromium is installed already (default: yes). */
  chromium?: boolean;
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

/** What a run of `.ci/run` gave: its exit code and output, and the `deno` commands it ran. */
interface CiRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Each call of the stand-in `deno`, its arguments (the probe's code left out). */
  calls: string[];
  /** Whether the test run's child (started when `sleep` is set) was still alive afterwards. */
  childAlive: boolean;
}

/** Runs a copy of `.ci/run` in a scratch project whose `deno` replays `s`. */
async function runCi(s: Scenario): Promise<CiRun> {
  const root = await Deno.makeTempDir({ prefix: "ci-run-" });
  try {
    for (const d of [".ci", "tests", "bin"]) await Deno.mkdir(`${root}/${d}`);
    await Deno.copyFile(CI, `${root}/.ci/run`);
    await Deno.copyFile(INSTALL_CHROMIUM, `${root}/tests/install_chromium.sh`);
    for (const f of ["a_test.ts", "b_test.ts"]) await Deno.writeTextFile(`${root}/tests/${f}`, "");
    await Deno.writeTextFile(`${root}/log`, s.log);
    for (const tool of TOOLS) {
      const which = await new Deno.Command("bash", { args: ["-c", `command -v ${tool}`] }).output();
      const path = new TextDecoder().decode(which.stdout).trim();
      assert.ok(which.code === 0 && path.startsWith("/"), `${tool} is on this machine's PATH`);
      await Deno.symlink(path, `${root}/bin/${tool}`);
    }
    const chromium = `${root}/chromium`;
    const script = (text: string) => `#!/usr/bin/env bash\n${text}`;
    const scripts: Record<string, string> = {
      deno: script(`case "$1" in
  --version) echo "deno 2.9.6 (stable, release, x86_64-unknown-linux-gnu)"; exit 0 ;;
  eval)
    [[ -e "${root}/calls" ]] && probed=1 || probed=0
    echo eval >>"${root}/calls"
    ${s.probeOnce ? `((probed)) || exit 1` : ""}
    exit ${s.probe ?? 0} ;;
esac
echo "$*" >>"${root}/calls"
case "$1 $2" in
  "task check") exit ${s.check ?? 0} ;;
  "bench --no-run") exit ${s.bench ?? 0} ;;
  "task test")
    if [[ -n "${s.sleep ?? ""}" ]]; then
      sleep ${s.sleep ?? 0} &
      echo $! >"${root}/child"
      wait
    fi
    cat "${root}/log"; exit ${s.status ?? 0} ;;
esac
exit 99
`),
      "apt-get": script(`case "$1" in
  update) exit ${s.aptUpdate ?? 0} ;;
  install)
    [[ ${s.aptInstall ?? 0} == 0 ]] || exit ${s.aptInstall ?? 0}
    [[ " $* " == *" chromium "* ]] && printf '#!/bin/sh\\necho Chromium 1\\n' >"${chromium}" &&
      chmod 755 "${chromium}"
    exit 0 ;;
esac
exit 99
`),
    };
    if (s.apt === false) delete scripts["apt-get"];
    if (s.chromium ?? true) scripts["chromium"] = "#!/bin/sh\necho Chromium 1\n";
    for (const [name, text] of Object.entries(scripts)) {
      const at = name === "chromium" ? chromium : `${root}/bin/${name}`;
      await Deno.writeTextFile(at, text, { mode: 0o755 });
    }
    const deadline = childDeadline(".ci/run (stand-ins)", 60_000);
    const out = await new Deno.Command(`${root}/bin/bash`, {
      args: [`${root}/.ci/run`],
      clearEnv: true,
      env: {
        PATH: `${root}/bin`,
        CHROMIUM: chromium,
        ...(s.timeout ? { CI_TEST_TIMEOUT: String(s.timeout) } : {}),
      },
      stdin: "null",
      signal: deadline.signal,
    }).output();
    deadline.check();
    const dec = new TextDecoder();
    const calls = await Deno.readTextFile(`${root}/calls`).then((t) => t.trimEnd().split("\n"))
      .catch(() => []);
    let childAlive = false;
    const child = await Deno.readTextFile(`${root}/child`).catch(() => "");
    if (child) {
      // Running or asleep, not a zombie (an orphan's zombie may wait for a reaper).
      const stat = await Deno.readTextFile(`/proc/${child.trim()}/stat`).catch(() => "");
      const state = stat.match(/\) (\S)/)?.[1];
      childAlive = state !== undefined && state !== "Z" && state !== "X";
      if (childAlive) Deno.kill(Number(child), "SIGKILL");
    }
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      calls,
      childAlive,
    };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** The last line on stdout. */
const lastLine = (stdout: string) => stdout.trimEnd().split("\n").at(-1);

/** The stand-in `deno` calls of a run that gets as far as the tests. */
const ALL_CALLS = [
  "eval",
  "task check",
  "bench --no-run bench/",
  "bench --no-run --config bench/peers/deno.json bench/peers/",
  "task test",
];

const n = MIN_TESTS;

Deno.test(".ci/run checks, compiles the benchmarks, tests once, and ends with the plain summary line", async () => {
  const r = await runCi({ log: runLog(`ok | ${n} passed | 0 failed (1m5s)`) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lastLine(r.stdout), `tests: ${n} passed, 0 failed`);
  assert.ok(!r.stdout.includes("CI FAILED"), r.stdout);
  assert.deepEqual(r.calls, ALL_CALLS);
});

Deno.test(".ci/run: chromium missing is installed with apt-get; a fresh machine's Mesa too", async () => {
  const r = await runCi({ log: runLog(`ok | ${n} passed | 0 failed (1m)`), chromium: false });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /install_chromium: installing Debian's chromium/);
  assert.match(r.stdout, /^Chromium 1$/m);
  assert.equal(lastLine(r.stdout), `tests: ${n} passed, 0 failed`);
  const mesa = await runCi({ log: runLog(`ok | ${n} passed | 0 failed (1m)`), probeOnce: true });
  assert.equal(mesa.code, 0, mesa.stderr);
  assert.match(mesa.stdout, /installing Mesa's software drivers/);
  assert.deepEqual(mesa.calls, ["eval", ...ALL_CALLS], "probed again after installing");
  assert.equal(lastLine(mesa.stdout), `tests: ${n} passed, 0 failed`);
});

Deno.test(".ci/run fails every other run, once, and its last line says so and why", async () => {
  const ok = `ok | ${n} passed | 0 failed (1m5s)`;
  // [what, scenario, the reason on stderr, the counts the last line ends with (when the tests
  //  ran), the calls made]
  const cases: [string, Scenario, RegExp, string | null, string[]][] = [
    [
      "a crash after an ok summary",
      { log: runLog(ok, "corrupted size vs. prev_size"), status: 134 },
      /crashed \(exit 134\): corrupted size/,
      `tests: ${n} passed, 0 failed`,
      ALL_CALLS,
    ],
    [
      "a crash after an ok summary, with nothing else said (999 tests)",
      { log: runLog("ok | 999 passed | 0 failed"), status: 134 },
      /crashed \(exit 134\)/,
      "tests: 999 passed, 0 failed",
      ALL_CALLS,
    ],
    [
      "a segmentation fault before the summary",
      { log: runLog("", "Segmentation fault"), status: 139 },
      /crashed \(exit 139\)/,
      "tests: 0 passed, 0 failed",
      ALL_CALLS,
    ],
    [
      "a failed test",
      { log: runLog(`FAILED | ${n - 1} passed | 1 failed (1m5s)`), status: 1 },
      /exited with status 1/,
      `tests: ${n - 1} passed, 1 failed`,
      ALL_CALLS,
    ],
    [
      "an ok summary with exit status 1",
      { log: runLog(ok), status: 1 },
      /exited with status 1/,
      `tests: ${n} passed, 0 failed`,
      ALL_CALLS,
    ],
    [
      "an only: left in",
      { log: runLog(`ok | 1 passed | 0 failed | ${n - 1} filtered out (1s)`) },
      /filtered out/,
      "tests: 1 passed, 0 failed",
      ALL_CALLS,
    ],
    [
      "ignored tests",
      { log: runLog(`ok | ${n - 1} passed | 0 failed | 1 ignored (1m)`) },
      /ignored/,
      `tests: ${n - 1} passed, 0 failed`,
      ALL_CALLS,
    ],
    [
      "fewer tests than the suite holds",
      { log: runLog(`ok | ${n - 1} passed | 0 failed (1m)`) },
      /fewer than the suite's/,
      `tests: ${n - 1} passed, 0 failed`,
      ALL_CALLS,
    ],
    [
      "a test file that never reported",
      { log: runLog(ok).replace(/^.*b_test.*\n/m, "") },
      /no tests reported from: tests\/b_test\.ts/,
      `tests: ${n} passed, 0 failed`,
      ALL_CALLS,
    ],
    [
      "no summary",
      { log: "Check tests/a_test.ts\n" },
      /no test summary/,
      "tests: 0 passed, 0 failed",
      ALL_CALLS,
    ],
    [
      "a test run past its time limit (it and its child killed)",
      { log: runLog(ok), sleep: 30, timeout: 1 },
      /passed its time limit of 1 s and was killed \(exit 124\)/,
      "tests: 0 passed, 0 failed",
      ALL_CALLS,
    ],
    [
      "deno task check failing",
      { log: runLog(ok), check: 1 },
      /deno task check failed/,
      null,
      ["eval", "task check"],
    ],
    [
      "a benchmark that does not compile",
      { log: runLog(ok), bench: 1 },
      /deno bench --no-run bench\/: a benchmark does not compile/,
      null,
      ["eval", "task check", "bench --no-run bench/"],
    ],
    [
      "apt-get update failing (no adapter)",
      { log: "", probe: 1, aptUpdate: 100 },
      /apt-get update failed/,
      null,
      ["eval"],
    ],
    [
      "apt-get install of Mesa failing",
      { log: "", probe: 1, aptInstall: 100 },
      /apt-get install of Mesa's drivers failed/,
      null,
      ["eval"],
    ],
    [
      "no adapter and no apt-get",
      { log: "", probe: 1, apt: false },
      /no WebGPU adapter, and no apt-get/,
      null,
      ["eval"],
    ],
    [
      "no adapter after installing Mesa",
      { log: "", probe: 1 },
      /no WebGPU adapter after installing Mesa/,
      null,
      ["eval", "eval"],
    ],
    [
      "chromium missing and no apt-get",
      { log: runLog(ok), chromium: false, apt: false },
      /install_chromium: no apt-get here[^]*could not install chromium/,
      null,
      ["eval"],
    ],
    [
      "chromium missing and apt-get update failing",
      { log: runLog(ok), chromium: false, aptUpdate: 100 },
      /could not install chromium/,
      null,
      ["eval"],
    ],
    [
      "chromium missing and apt-get install failing",
      { log: runLog(ok), chromium: false, aptInstall: 100 },
      /could not install chromium/,
      null,
      ["eval"],
    ],
  ];
  for (const [what, scenario, reason, plain, calls] of cases) {
    const r = await runCi(scenario);
    assert.equal(r.code, 1, `${what}: exit code\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, reason, what);
    const why = r.stderr.match(/^ci: FAIL: (.*)$/m)?.[1];
    assert.ok(why, `${what}: one ci: FAIL line\n${r.stderr}`);
    assert.equal(lastLine(r.stdout), `CI FAILED: ${why}${plain ? ` (${plain})` : ""}`, what);
    assert.ok(!/^tests: /m.test(r.stdout), `${what}: no line reads like a pass`);
    assert.deepEqual(r.calls, calls, `${what}: what ran (the tests at most once, never again)`);
    assert.ok(!r.childAlive, `${what}: the test run's child was killed`);
  }
});

Deno.test(".ci/run: a command failing outside the checks still ends with CI FAILED", async () => {
  // A copy whose `deno --version` line is `false`: set -e stops the run there.
  const broken = await Deno.makeTempDir({ prefix: "ci-broken-" });
  try {
    await Deno.mkdir(`${broken}/.ci`);
    await Deno.writeTextFile(
      `${broken}/.ci/run`,
      (await Deno.readTextFile(CI)).replace(/^deno --version$/m, "false"),
    );
    const deadline = childDeadline("bash .ci/run (a broken copy)");
    const out = await new Deno.Command("bash", {
      args: [`${broken}/.ci/run`],
      stdin: "null",
      signal: deadline.signal,
    }).output();
    deadline.check();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.notEqual(out.code, 0);
    assert.match(lastLine(stdout)!, /^CI FAILED: a command at line \d+ of \.ci\/run failed$/);
  } finally {
    await Deno.remove(broken, { recursive: true });
  }
});

Deno.test(".ci/run compiles every benchmark of the bench task (all are bench/*_bench.ts)", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
    .tasks;
  const files = (tasks.bench as string).split(/\s+/).filter((w) => w.endsWith(".ts"));
  assert.ok(files.length >= 4, tasks.bench);
  for (const f of files) assert.match(f, /^bench\/[a-z_]+_bench\.ts$/, f);
  const ci = await Deno.readTextFile(CI);
  assert.match(ci, /^deno bench --no-run bench\/ /m);
  assert.match(ci, /^deno task check /m);
});
