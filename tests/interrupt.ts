/**
 * Test helper: runs `fast/main.ts` with `flags` as its own process, sends it
 * a real SIGINT once the first epoch line is on stdout (results go there,
 * notices to stderr), and checks what every interrupted run must show: exit
 * code 130, the one-line message naming the checkpoint on stderr, no stack
 * trace. Returns the interrupted epoch and stderr.
 */

import assert from "node:assert/strict";

/** Runs `deno run … fast/main.ts args` with piped output (not started). */
export function fastMain(args: string[]): Deno.Command {
  const main = new URL("../fast/main.ts", import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", main, ...args],
    stdout: "piped",
    stderr: "piped",
  });
}

/** Interrupts a long run of `flags` (which must include `--save file`) after epoch 1. */
export async function interruptAfterFirstEpoch(
  flags: string[],
  file: string,
): Promise<{ epoch: number; stderr: string }> {
  const child = fastMain([...flags, "--epochs", "100000"]).spawn();
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
      child.kill("SIGINT");
      sent = true;
    }
  }
  const status = await child.status;
  const stderr = await stderrText;
  assert.ok(sent, stdout + stderr);
  assert.equal(status.code, 130, stderr);
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
