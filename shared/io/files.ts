/**
 * Writing files so that a reader never sees a half-written one.
 *
 * Every write goes to a temporary file in the destination's own directory
 * (so the final rename stays on one file system, where it is atomic) and is
 * renamed over the destination only once it is complete. A failed or
 * interrupted write removes its temporary file; the temporary name ends in
 * `.tmp`, which `.gitignore` ignores, in case the process is killed outright.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** A fresh temporary path next to `path`: same directory, hidden, ending in `.tmp`. */
function tempPathFor(path: string): string {
  const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return join(dirname(path), `.${basename(path)}.${Deno.pid}-${suffix}.tmp`);
}

/**
 * Creates `path` atomically from what `write` puts into an open file.
 *
 * `write` gets the temporary file, open for writing. When it resolves, the
 * file is flushed to disk and renamed to `path`; when it throws (a checksum
 * that does not match, a dropped connection), the temporary file is removed,
 * `path` is left as it was, and the error is thrown on.
 */
async function writeFileAtomicWith(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const tmp = tempPathFor(path);
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    await write(file);
    await file.syncData();
    file.close();
    file = undefined;
    await Deno.rename(tmp, path);
  } catch (err) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Writes `data` to `path` atomically: temporary file in the same directory, then rename. */
export function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  return writeFileAtomicWith(path, async (file) => {
    let written = 0;
    while (written < data.length) written += await file.write(data.subarray(written));
  });
}

/** The SHA-256 of `data` as 64 lowercase hex digits. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
