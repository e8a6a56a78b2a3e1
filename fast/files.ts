/**
 * The files of the fast trainer, at the edge: the run loop's (fast/run.ts)
 * checks that `--save` and `--plot` can be written before any work, reading
 * `--load` and `--resume` files, writing checkpoints and the chart atomically
 * (each failure a one-line `UserError` naming the flag), and the tuners'
 * cache file (`TUNE_CACHE_PATH`), so that fast/mlp/ and fast/cnn/ touch no files.
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

// ---------------------------------------------------------------------------
// The tuners' cache (fast/mlp/variants/tuner.ts, fast/cnn/tuner.ts)

/** Where the tuners' choices are remembered, per adapter and shape. */
export const TUNE_CACHE_PATH: string = decodeURIComponent(
  new URL("../data/tune-cache.json", import.meta.url).pathname,
);

/** The tuning cache: adapter description → shape key → variant name. */
export type TuneCache = Record<string, Record<string, string>>;

/** The tuning cache as a tuner uses it: read it, write it back (false: not written). */
export interface TuneCacheFile {
  read(): TuneCache;
  write(cache: TuneCache): Promise<boolean>;
}

/** The cache file at `path` (`readTuneCache`, `writeTuneCache`); `null` for none. */
export function tuneCacheFile(path: string | null): TuneCacheFile | null {
  return path === null ? null : {
    read: () => readTuneCache(path),
    write: (known) => writeTuneCache(path, known),
  };
}

/** Reads the cache at `path`; an absent or unreadable file gives an empty cache. */
export function readTuneCache(path: string): TuneCache {
  try {
    const parsed = JSON.parse(Deno.readTextFileSync(path));
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/**
 * Writes the cache atomically (`writeFileAtomic`: a temporary file, then a
 * rename). A read-only directory or a missing permission is not an error:
 * the choice is only remembered for next time. Resolves to whether it was
 * written.
 */
export async function writeTuneCache(path: string, cache: TuneCache): Promise<boolean> {
  try {
    await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(cache, null, 2) + "\n"));
    return true;
  } catch {
    return false;
  }
}
