/**
 * `deno task data`: downloads the full MNIST dataset (four gzipped IDX files,
 * SHA-256 checked) into `data/mnist/`, where both trainers find it.
 *
 * The work is done by `shared/download.ts`; this is only its command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_DOWNLOAD_DIR, DEFAULT_MIRRORS, downloadMnist } from "../shared/download.ts";
import { runMain, UsageError } from "../shared/errors.ts";

/** The `--help` text. */
export const HELP = `Download the full MNIST dataset (60,000 train / 10,000 test images).

Usage: deno task data [flags]

Fetches the four official gzipped IDX files, checks each against its known
SHA-256, and writes them to ${DEFAULT_DOWNLOAD_DIR}/ (through a temporary file, so an
interrupted download never leaves a file that looks finished). Files already
present and verified are skipped. Mirrors are tried in order:
${DEFAULT_MIRRORS.map((m) => `  ${m}`).join("\n")}

Flags:
  --mirror URL   download from URL instead of the list above (repeatable: tried in order)
  --dir DIR      where to put the files (default ${DEFAULT_DOWNLOAD_DIR}; the trainers
                 search data/mnist/ and ./mnist/, or take --data DIR)
  --help         show this help`;

/** Parsed flags of `deno task data`, or "help". */
export interface DataArgs {
  dir: string;
  mirrors: string[];
}

/** Parses the command line; bad flags throw `UsageError`. */
export function parseDataArgs(args: string[]): DataArgs | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        mirror: { type: "string", multiple: true },
        dir: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : err} (see --help)`);
  }
  const { values } = parsed;
  if (values.help) return "help";
  const mirrors = values.mirror ?? [...DEFAULT_MIRRORS];
  for (const m of mirrors) {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(m).protocol);
    } catch { /* not a URL */ }
    if (!ok) throw new UsageError(`--mirror must be an http(s) URL, got '${m}'`);
  }
  if (values.dir !== undefined && values.dir.trim() === "") {
    throw new UsageError("--dir must not be empty");
  }
  return { dir: values.dir ?? DEFAULT_DOWNLOAD_DIR, mirrors };
}

if (import.meta.main) {
  runMain(async () => {
    const args = parseDataArgs(Deno.args);
    if (args === "help") {
      console.log(HELP);
      return;
    }
    const results = await downloadMnist({ dir: args.dir, mirrors: args.mirrors });
    const fetched = results.filter((r) => r.status === "downloaded").length;
    console.error(
      `data: MNIST ready in ${args.dir}/ (${fetched} downloaded, ${
        results.length - fetched
      } already there)` +
        (args.dir === DEFAULT_DOWNLOAD_DIR
          ? ""
          : `; train with: deno task fast --data ${args.dir}`),
    );
  });
}
