/**
 * Test helper: runs `fast/main.ts` with `flags` as its own process, sends it
 * a real SIGINT once the first epoch line is on stdout (results go there,
 * notices to stderr), and checks what every interrupted run must show: exit
 * code 130, the one-line message naming the checkpoint on stderr, no stack
 * trace. Returns the interrupted epoch and stderr. Every
 * child has a deadline (tests/deadline.ts): one that outlives it is killed
 * and the test fails.
 */

import assert from "node:assert/strict";
import { childDeadline } from "./deadline.ts";

/** Runs `deno run … fast/main.ts args` with piped output (not started), killed at `signal`. */
export function fastMain(args: string[], signal?: AbortSignal): Deno.Command {
  const main = new URL("../fast/main.ts", import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", main, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: signal ?? childDeadline("fast/main.ts").signal,
  });
}

/** `fastMain(args).output()` under a deadline that fails the test when it passes. */
export async function fastMainOutput(args: string[]): Promise<Deno.CommandOutput> {
  const deadline = childDeadline(`fast/main.ts ${args.join(" ")}`);
  const out = await fastMain(args, deadline.signal).output();
  deadline.check();
  return out;
}

/**
 * Starts `fast/main.ts flags --epochs 100000`, and once `[epoch 1 done]` is on
 * stdout calls `interrupt(child)`; resolves to its exit status and stderr. A
 * child still running at the deadline is killed and fails the test.
 */
async function runUntilInterrupted(
  flags: string[],
  interrupt: (child: Deno.ChildProcess) => void,
  deadlineMs?: number,
): Promise<{ code: number; stderr: string }> {
  const deadline = childDeadline("fast/main.ts --epochs 100000 (interrupted)", deadlineMs);
  const child = fastMain([...flags, "--epochs", "100000"], deadline.signal).spawn();
  const stderrText = new Response(child.stderr).text();
  let stdout = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  let sent = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += decoder.decode(value, { stream: true });
    if (!sent && stdout.includes("[epoch 1 done]")) {
      interrupt(child);
      sent = true;
    }
  }
  const status = await child.status;
  const stderr = await stderrText;
  deadline.check();
  assert.ok(sent, stdout + stderr);
  return { code: status.code, stderr };
}

/** Interrupts a long run of `flags` (which must include `--save file`) after epoch 1. */
export async function interruptAfterFirstEpoch(
  flags: string[],
  file: string,
  deadlineMs?: number,
): Promise<{ epoch: number; stderr: string }> {
  const { code, stderr } = await runUntilInterrupted(
    flags,
    (child) => child.kill("SIGINT"),
    deadlineMs,
  );
  assert.equal(code, 130, stderr);
  const m = stderr.match(
    /interrupted during epoch (\d+); checkpoint at (.+) holds epoch (\d+); continue with --resume/,
  );
  assert.ok(m, stderr);
  const epoch = Number(m[1]);
  assert.equal(m[2], file);
  assert.equal(Number(m[3]), epoch - 1);
  assert.ok(!/^\s+at /m.test(stderr), "no stack trace");
  return { epoch, stderr };
}

/**
 * Sends SIGINT after epoch 1, then again every 5 ms until the child exits:
 * the second Ctrl-C must end it at once (exit 130), before the first one's
 * orderly stop (which would print the checkpoint line) is done.
 */
export async function interruptTwice(flags: string[]): Promise<{ code: number; stderr: string }> {
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    return await runUntilInterrupted(flags, (child) => {
      child.kill("SIGINT");
      timer = setInterval(() => {
        try {
          child.kill("SIGINT");
        } catch { /* exited */ }
      }, 5);
    });
  } finally {
    clearInterval(timer);
  }
}
