/**
 * What the fast trainer's two models (the MLP of fast/run.ts, the CNN of
 * fast/cnn/engine.ts) share around their epoch loops: the files they read and
 * write (`--save`, `--load`, `--resume`, `--plot`) and the one-line errors of
 * the faults a user can meet (a loss that is no longer finite, Ctrl-C, a
 * checkpoint made with other flags).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { UserError } from "../shared/io/errors.ts";
import { writeFileAtomic } from "../shared/io/files.ts";
import { type EpochPoint, lossAccuracySvg, type SvgStrip } from "../shared/io/report.ts";

/** Throws a one-line `UserError` when `file` may not be written (permission, missing directory). */
export function checkWritable(flag: string, file: string): void {
  const dir = dirname(resolve(file));
  if (Deno.permissions.querySync({ name: "write", path: file }).state !== "granted") {
    throw new UserError(
      `${flag} ${file}: no permission to write there (deno run --allow-write=${dir} …)`,
    );
  }
  let isDir = false;
  try {
    isDir = Deno.statSync(dir).isDirectory;
  } catch { /* reported below */ }
  if (!isDir) throw new UserError(`${flag} ${file}: directory ${dir} does not exist`);
}

/** The bytes of a model file named by `flag` (`--resume`, `--load`); a missing file is one line. */
export async function readModelFile(file: string, flag: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(
        flag === "--resume"
          ? `--resume: ${file} does not exist (nothing to resume; run without --resume to start)`
          : `${flag} ${file}: no such file`,
      );
    }
    throw new UserError(`${flag} ${file}: cannot read (${(err as Error).message})`);
  }
}

/** `writeFileAtomic`, with a failure as a one-line `UserError` naming `flag` and `file`. */
export async function writeFileAtomicOrFail(
  file: string,
  bytes: Uint8Array,
  flag: string,
): Promise<void> {
  try {
    await writeFileAtomic(file, bytes);
  } catch (err) {
    const why = err instanceof Deno.errors.NotCapable
      ? "no write permission (run with --allow-write)"
      : (err as Error).message.split("\n")[0];
    throw new UserError(`${flag} ${file}: cannot write (${why})`);
  }
}

/** Writes the `--plot` chart (loss and accuracy per epoch, and any `extra` SVG below it). */
export async function writePlot(
  file: string,
  history: EpochPoint[],
  title: string,
  extra?: SvgStrip,
): Promise<void> {
  await writeFileAtomicOrFail(
    file,
    new TextEncoder().encode(lossAccuracySvg(history, title, extra)),
    "--plot",
  );
}
