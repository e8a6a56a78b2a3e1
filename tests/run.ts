/**
 * `deno task test`: runs each `tests/*_test.ts` file in a `deno test` process
 * of its own, as many at a time as there are cores (or `DENO_JOBS`), and ends
 * with one summary line in `deno test`'s own form.
 *
 * Why not `deno test --parallel`: a `deno test` process that runs more than
 * one test file with WebGPU now and then aborts while exiting, after its
 * summary (glibc "corrupted size vs. prev_size", sometimes a segmentation
 * fault). Each file runs in a Deno runtime on a thread of its own, and that
 * thread's teardown races libEGL's exit handler in the main thread
 * (bench/RESULTS.md, _Exit aborts_, has the backtrace, the stand-alone
 * reproduction `bench/exit_abort/` and the rates). A process that runs one
 * file did not abort in our loops.
 *
 * Every line a file's process prints comes out as `./tests/<file> => <line>`.
 * A process that fails, or ends by a signal or without a summary, fails the
 * run and is named at the end; the exit code is then 1. Arguments: test files
 * to run (default: all), and flags passed on to every `deno test`
 * (e.g. `--filter`).
 *
 * @module
 */

import { basename, relative } from "node:path";

/** What `deno test` needs for this project's tests (README, _Tests, CI and dependencies_). */
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-run",
];

/** A summary line of `deno test`, e.g. `ok | 12 passed (3 steps) | 0 failed | 1 ignored (4s)`. */
const SUMMARY =
  /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?(?: \| (\d+) filtered out)?/;

/** Counts from one file's summary line, and how its process ended. */
interface FileResult {
  file: string;
  passed: number;
  failed: number;
  ignored: number;
  filtered: number;
  steps: number;
  summary: boolean;
  code: number;
  signal: Deno.Signal | null;
}

async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  out: (line: string) => void,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      onLine(line);
      out(`${prefix}${line}`);
    }
  }
  if (rest) {
    onLine(rest);
    out(`${prefix}${rest}`);
  }
}

async function runFile(file: string, flags: string[]): Promise<FileResult> {
  const result: FileResult = {
    file,
    passed: 0,
    failed: 0,
    ignored: 0,
    filtered: 0,
    steps: 0,
    summary: false,
    code: 0,
    signal: null,
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", ...PERMISSIONS, ...flags, file],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const prefix = `./${file} => `;
  const onLine = (line: string) => {
    const m = SUMMARY.exec(line);
    if (!m) return;
    result.summary = true;
    result.passed = Number(m[2]);
    result.steps = Number(m[3] ?? 0);
    result.failed = Number(m[4]);
    result.ignored = Number(m[6] ?? 0);
    result.filtered = Number(m[7] ?? 0);
  };
  const encoder = new TextEncoder();
  const write = (fd: typeof Deno.stdout) => (line: string) =>
    fd.writeSync(encoder.encode(line + "\n"));
  await Promise.all([
    pipeLines(child.stdout, prefix, write(Deno.stdout), onLine),
    pipeLines(child.stderr, prefix, write(Deno.stderr), () => {}),
  ]);
  const status = await child.status;
  result.code = status.code;
  result.signal = status.signal;
  return result;
}

function elapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/** Runs the files, `jobs` at a time; resolves with their results in file order. */
async function runAll(files: string[], flags: string[], jobs: number): Promise<FileResult[]> {
  const results: FileResult[] = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      results[i] = await runFile(files[i], flags);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));
  return results;
}

/** Why a file's process counts as failed, or undefined when it passed. */
function problem(r: FileResult): string | undefined {
  if (r.signal) return `ended by ${r.signal} (exit ${r.code})`;
  if (r.code !== 0) return `exit ${r.code}${r.failed ? `, ${r.failed} failed` : ""}`;
  if (!r.summary) return "no summary line";
  return undefined;
}

if (import.meta.main) {
  const t0 = performance.now();
  const flags = Deno.args.filter((a) => a.startsWith("-"));
  let files = Deno.args.filter((a) => !a.startsWith("-")).map((f) => relative(Deno.cwd(), f));
  if (files.length === 0) {
    files = [...Deno.readDirSync("tests")]
      .filter((e) => e.isFile && e.name.endsWith("_test.ts"))
      .map((e) => `tests/${e.name}`)
      .sort();
  }
  const jobs = Number(Deno.env.get("DENO_JOBS")) || navigator.hardwareConcurrency || 1;
  const results = await runAll(files, flags, jobs);
  const sum = (k: "passed" | "failed" | "ignored" | "filtered" | "steps") =>
    results.reduce((a, r) => a + r[k], 0);
  const bad = results.flatMap((r) => {
    const why = problem(r);
    return why ? [`${basename(r.file)}: ${why}`] : [];
  });
  console.log("");
  for (const line of bad) console.log(`failed: ${line}`);
  const steps = sum("steps");
  const parts = [
    `${bad.length === 0 && sum("failed") === 0 ? "ok" : "FAILED"}`,
    `${sum("passed")} passed${steps ? ` (${steps} steps)` : ""}`,
    `${sum("failed")} failed`,
    ...(sum("ignored") ? [`${sum("ignored")} ignored`] : []),
    ...(sum("filtered") ? [`${sum("filtered")} filtered out`] : []),
  ];
  console.log(`${parts.join(" | ")} (${elapsed(performance.now() - t0)})`);
  if (bad.length > 0 || sum("failed") > 0) Deno.exit(1);
}
