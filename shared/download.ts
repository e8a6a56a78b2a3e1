/**
 * Downloading the full MNIST dataset: the four official gzipped IDX files,
 * each checked against its known SHA-256.
 *
 * Mirrors are tried in order for each file; any failure (HTTP error, dropped
 * connection, stalled transfer, wrong checksum) moves on to the next one. A
 * file is written through a temporary file in the target directory and renamed
 * only once its checksum matches, so an interrupted or corrupt download never
 * leaves a file that looks finished. Files already present and verified are
 * skipped.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "./errors.ts";
import { sha256Hex, writeFileAtomicWith } from "./fsutil.ts";

/** A file to fetch and the SHA-256 (hex) its bytes must have. */
export interface DownloadFile {
  name: string;
  sha256: string;
}

/** The four official MNIST files (gzipped) and their SHA-256. */
export const MNIST_DOWNLOADS: readonly DownloadFile[] = [
  {
    name: "train-images-idx3-ubyte.gz",
    sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
  },
  {
    name: "train-labels-idx1-ubyte.gz",
    sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
  },
  {
    name: "t10k-images-idx3-ubyte.gz",
    sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
  },
  {
    name: "t10k-labels-idx1-ubyte.gz",
    sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaca2df9a3b3ef7e4e",
  },
];

/**
 * Public mirrors of the official files, tried in order. The original
 * yann.lecun.com address is left out: it often refuses or asks for a login.
 */
export const DEFAULT_MIRRORS: readonly string[] = [
  "https://storage.googleapis.com/cvdf-datasets/mnist/",
  "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

/** Where `deno task data` puts the files, relative to the working directory. */
export const DEFAULT_DOWNLOAD_DIR = "data/mnist";

/** Options of `downloadMnist`; all have defaults. */
export interface DownloadOptions {
  /** Target directory (created if missing). Default `data/mnist`. */
  dir?: string;
  /** Base URLs tried in order. Default `DEFAULT_MIRRORS`. */
  mirrors?: readonly string[];
  /** Files and their expected SHA-256. Default `MNIST_DOWNLOADS`. */
  files?: readonly DownloadFile[];
  /** Finished-step lines for people. Default: stderr. */
  log?: (line: string) => void;
  /**
   * Redraws one progress line (without newline); called only when `tty`.
   * Default: writes `\r` + the line to stderr.
   */
  redraw?: (line: string) => void;
  /** Draw progress in place. Default: whether stderr is a terminal. */
  tty?: boolean;
  /** Give up on a mirror when no bytes arrive for this long. Default 30 s. */
  idleTimeoutMs?: number;
  /** Give up on a mirror sending more than this. Default 64 MiB. */
  maxBytes?: number;
}

/** What happened to one file. */
export interface DownloadResult {
  name: string;
  path: string;
  /** "present": already there and verified; "downloaded": fetched now. */
  status: "present" | "downloaded";
  /** The mirror it came from, when downloaded. */
  mirror?: string;
  bytes: number;
}

/** One line saying what went wrong; a fetch error's own message is only "fetch failed". */
function message(err: unknown): string {
  let text = err instanceof Error ? err.message : String(err);
  for (let cause = (err as Error)?.cause; cause instanceof Error; cause = cause.cause) {
    text = cause.message.replace(/^error sending request for url \([^)]*\): /, "");
  }
  return text.replace(/\s+/g, " ").trim();
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A failure of one mirror for one file; the next mirror is tried. */
class MirrorError extends Error {}

/** `base` + `name`, with exactly one slash between them. */
export function mirrorUrl(base: string, name: string): URL {
  return new URL(name, base.endsWith("/") ? base : `${base}/`);
}

async function isVerified(path: string, sha256: string): Promise<boolean | "absent"> {
  try {
    return await sha256Hex(await Deno.readFile(path)) === sha256;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "absent";
    throw new UserError(`${path}: cannot read (${message(err)})`);
  }
}

/**
 * Fetches `url` into `path` (atomically), checking size limits, stalls and
 * the SHA-256. Throws `MirrorError` on any failure, leaving nothing behind.
 */
async function fetchVerified(
  url: URL,
  path: string,
  file: DownloadFile,
  opts: Required<Pick<DownloadOptions, "idleTimeoutMs" | "maxBytes">>,
  progress: (received: number, total: number | undefined) => void,
): Promise<number> {
  const abort = new AbortController();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () => abort.abort(new MirrorError(`no data for ${opts.idleTimeoutMs / 1000} s`)),
      opts.idleTimeoutMs,
    );
  };
  const reason = (err: unknown) =>
    abort.signal.aborted && abort.signal.reason instanceof MirrorError ? abort.signal.reason : err;
  armIdle();
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: abort.signal });
    } catch (err) {
      throw new MirrorError(message(reason(err)));
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel().catch(() => {});
      throw new MirrorError(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    const header = response.headers.get("content-length");
    const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
    if (total !== undefined && total > opts.maxBytes) {
      await response.body.cancel().catch(() => {});
      throw new MirrorError(`announces ${total} bytes, more than the ${opts.maxBytes} allowed`);
    }
    const body = response.body;
    let received = 0;
    await writeFileAtomicWith(path, async (out) => {
      const chunks: Uint8Array[] = [];
      const reader = body.getReader();
      try {
        while (true) {
          let step: ReadableStreamReadResult<Uint8Array>;
          try {
            step = await reader.read();
          } catch (err) {
            throw new MirrorError(
              `connection lost after ${received} bytes (${message(reason(err))})`,
            );
          }
          if (step.done) break;
          armIdle();
          received += step.value.length;
          if (received > opts.maxBytes) {
            throw new MirrorError(`sent more than the ${opts.maxBytes} bytes allowed`);
          }
          chunks.push(step.value);
          let written = 0;
          while (written < step.value.length) {
            written += await out.write(step.value.subarray(written));
          }
          progress(received, total);
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
      clearTimeout(idle);
      if (total !== undefined && received !== total) {
        throw new MirrorError(`incomplete: ${received} of ${total} bytes`);
      }
      const all = new Uint8Array(received);
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      const actual = await sha256Hex(all);
      if (actual !== file.sha256) {
        throw new MirrorError(
          `SHA-256 mismatch (got ${actual.slice(0, 12)}..., expected ${
            file.sha256.slice(0, 12)
          }...)`,
        );
      }
    });
    return received;
  } catch (err) {
    if (err instanceof MirrorError || err instanceof UserError) throw err;
    // Everything from the network is a MirrorError by now: this is the file system.
    throw new UserError(`cannot write ${path} (${message(err)})`);
  } finally {
    clearTimeout(idle);
  }
}

/**
 * Makes sure every file is in `dir` with its expected SHA-256, downloading
 * the missing or wrong ones. Throws a one-line `UserError` naming the file
 * when every mirror fails for it.
 */
export async function downloadMnist(opts: DownloadOptions = {}): Promise<DownloadResult[]> {
  const dir = opts.dir ?? DEFAULT_DOWNLOAD_DIR;
  const mirrors = opts.mirrors ?? DEFAULT_MIRRORS;
  const files = opts.files ?? MNIST_DOWNLOADS;
  const log = opts.log ?? ((line: string) => console.error(line));
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  const redraw = opts.redraw ??
    ((line: string) => Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`)));
  const limits = {
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    maxBytes: opts.maxBytes ?? 64 * 1024 * 1024,
  };
  if (mirrors.length === 0) throw new UserError("no mirror to download from");
  const created = !(await Deno.stat(dir).then(() => true, () => false));
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new UserError(`cannot create ${dir} (${message(err)})`);
  }
  try {
    return await downloadInto(dir, mirrors, files, log, tty, redraw, limits);
  } catch (err) {
    // Leave no empty directory behind that we made (it would look like a started download).
    if (created) await Deno.remove(dir).catch(() => {});
    throw err;
  }
}

async function downloadInto(
  dir: string,
  mirrors: readonly string[],
  files: readonly DownloadFile[],
  log: (line: string) => void,
  tty: boolean,
  redraw: (line: string) => void,
  limits: Required<Pick<DownloadOptions, "idleTimeoutMs" | "maxBytes">>,
): Promise<DownloadResult[]> {
  const results: DownloadResult[] = [];
  for (const file of files) {
    const path = join(dir, file.name);
    const present = await isVerified(path, file.sha256);
    if (present === true) {
      const { size } = await Deno.stat(path);
      log(`${file.name}: already present, SHA-256 ok`);
      results.push({ name: file.name, path, status: "present", bytes: size });
      continue;
    }
    if (present === false) log(`${file.name}: present but its SHA-256 is wrong; downloading again`);

    const failures: string[] = [];
    let done: DownloadResult | undefined;
    for (const mirror of mirrors) {
      const url = mirrorUrl(mirror, file.name);
      let lastDraw = 0;
      const progress = (received: number, total: number | undefined) => {
        if (!tty) return;
        const now = performance.now();
        if (now - lastDraw < 100 && received !== total) return;
        lastDraw = now;
        const pct = total ? ` ${Math.floor((100 * received) / total)}%` : "";
        redraw(
          `${file.name}:${pct} ${megabytes(received)}${total ? ` / ${megabytes(total)}` : ""}`,
        );
      };
      try {
        const bytes = await fetchVerified(url, path, file, limits, progress);
        if (tty) redraw("");
        log(`${file.name}: ${megabytes(bytes)} from ${url.origin}, SHA-256 ok`);
        done = { name: file.name, path, status: "downloaded", mirror, bytes };
        break;
      } catch (err) {
        if (!(err instanceof MirrorError)) throw err;
        if (tty) redraw("");
        log(`${file.name}: ${url.href} failed: ${err.message}`);
        failures.push(`${url.host}: ${err.message}`);
      }
    }
    if (!done) {
      throw new UserError(
        `could not download ${file.name}: all ${mirrors.length} mirror(s) failed ` +
          `(${failures.join("; ")})`,
      );
    }
    results.push(done);
  }
  return results;
}
