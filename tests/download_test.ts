/**
 * `deno task data` against local HTTP servers on 127.0.0.1: files land verified,
 * a second run skips them, wrong bytes and dropped or stalled connections
 * leave nothing behind, and the next mirror is tried.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDataArgs } from "../data/download.ts";
import { type DownloadFile, downloadMnist, mirrorUrl } from "../shared/download.ts";
import { UsageError, UserError } from "../shared/errors.ts";
import { sha256Hex } from "../shared/fsutil.ts";
import { encodeIdx, IMAGE_BYTES } from "../shared/idx.ts";
import { loadMnist } from "../shared/mnist.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Four small gzipped IDX files in MNIST's names, and their SHA-256 (the injected "known" hashes). */
async function makeFiles(): Promise<{ bodies: Map<string, Uint8Array>; files: DownloadFile[] }> {
  const pixels = (n: number) =>
    Uint8Array.from({ length: n * IMAGE_BYTES }, (_, i) => (i * 13) & 0xff);
  const raw: [string, Uint8Array][] = [
    ["train-images-idx3-ubyte.gz", encodeIdx([4, 28, 28], pixels(4))],
    ["train-labels-idx1-ubyte.gz", encodeIdx([4], Uint8Array.from([3, 1, 4, 1]))],
    ["t10k-images-idx3-ubyte.gz", encodeIdx([2, 28, 28], pixels(2))],
    ["t10k-labels-idx1-ubyte.gz", encodeIdx([2], Uint8Array.from([5, 9]))],
  ];
  const bodies = new Map<string, Uint8Array>();
  const files: DownloadFile[] = [];
  for (const [name, bytes] of raw) {
    const gz = await gzip(bytes);
    bodies.set(name, gz);
    files.push({ name, sha256: await sha256Hex(gz) });
  }
  return { bodies, files };
}

interface TestServer {
  /** Base URL of the files, e.g. http://127.0.0.1:PORT/mnist/ */
  url: string;
  /** Requests served so far. */
  requests: string[];
  close(): Promise<void>;
}

type Behaviour = "good" | "wrong-bytes" | "drop" | "stall" | "404";

/** A server on 127.0.0.1, port 0, serving `bodies` under /mnist/ with the given behaviour. */
function serve(bodies: Map<string, Uint8Array>, behaviour: Behaviour): TestServer {
  const requests: string[] = [];
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const name = new URL(req.url).pathname.replace(/^\/mnist\//, "");
    requests.push(name);
    const body = bodies.get(name);
    if (!body || behaviour === "404") return new Response("not here", { status: 404 });
    if (behaviour === "good") return new Response(body as Uint8Array<ArrayBuffer>);
    if (behaviour === "wrong-bytes") {
      const wrong = body.slice();
      wrong[wrong.length >> 1] ^= 0xff;
      return new Response(wrong as Uint8Array<ArrayBuffer>);
    }
    // "drop": half the file, then the connection closes short of the announced length.
    // "stall": half the file, then nothing more (until the client gives up).
    const half = body.subarray(0, body.length >> 1);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(half.slice());
        if (behaviour === "drop") setTimeout(() => controller.close(), 10);
        else open.add(controller);
      },
      cancel() {
        open.clear();
      },
    });
    return new Response(stream, { headers: { "content-length": String(body.length) } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/mnist/`,
    requests,
    async close() {
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await server.shutdown();
    },
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "download_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names.sort();
}

function isUserError(...patterns: RegExp[]): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
    assert.doesNotMatch(err.message, /\n/);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  };
}

Deno.test("a good mirror: files land verified, a second run skips them, loadMnist reads them", async () => {
  const { bodies, files } = await makeFiles();
  const server = serve(bodies, "good");
  try {
    await withTempDir(async (root) => {
      const dir = join(root, "data", "mnist");
      const lines: string[] = [];
      const first = await downloadMnist({
        dir,
        mirrors: [server.url],
        files,
        log: (l) => lines.push(l),
        tty: false,
      });
      assert.deepEqual(first.map((r) => r.status), [
        "downloaded",
        "downloaded",
        "downloaded",
        "downloaded",
      ]);
      assert.deepEqual(await listDir(dir), files.map((f) => f.name).sort());
      for (const f of files) {
        assert.deepEqual(await Deno.readFile(join(dir, f.name)), bodies.get(f.name));
      }
      assert.equal(lines.length, 4);
      assert.match(
        lines[0],
        /^train-images-idx3-ubyte\.gz: \d+\.\d MB from http:\/\/127\.0\.0\.1:\d+, SHA-256 ok$/,
      );
      assert.equal(server.requests.length, 4);

      lines.length = 0;
      const second = await downloadMnist({
        dir,
        mirrors: [server.url],
        files,
        log: (l) => lines.push(l),
        tty: false,
      });
      assert.deepEqual(second.map((r) => r.status), ["present", "present", "present", "present"]);
      assert.equal(server.requests.length, 4, "nothing fetched the second time");
      assert.match(lines[0], /already present, SHA-256 ok/);

      const data = await loadMnist({ dataDir: dir, announce: false });
      assert.deepEqual([...data.trainLabels], [3, 1, 4, 1]);
      assert.deepEqual([...data.testLabels], [5, 9]);
      assert.equal(data.trainImages[1], 13);
    });
  } finally {
    await server.close();
  }
});

Deno.test("wrong bytes: a clear checksum error, nothing left behind", async () => {
  const { bodies, files } = await makeFiles();
  const server = serve(bodies, "wrong-bytes");
  try {
    await withTempDir(async (dir) => {
      await assert.rejects(
        () => downloadMnist({ dir, mirrors: [server.url], files, log: () => {}, tty: false }),
        isUserError(
          /^could not download train-images-idx3-ubyte\.gz: all 1 mirror\(s\) failed/,
          /127\.0\.0\.1:\d+: SHA-256 mismatch \(got [0-9a-f]{12}\.\.\., expected [0-9a-f]{12}\.\.\.\)/,
        ),
      );
      assert.deepEqual(await listDir(dir), []);
    });
  } finally {
    await server.close();
  }
});

Deno.test("a dropped connection: an error, nothing left behind; with a second mirror, it is used", async () => {
  const { bodies, files } = await makeFiles();
  const dropping = serve(bodies, "drop");
  const good = serve(bodies, "good");
  try {
    await withTempDir(async (dir) => {
      await assert.rejects(
        () => downloadMnist({ dir, mirrors: [dropping.url], files, log: () => {}, tty: false }),
        isUserError(
          /could not download train-images-idx3-ubyte\.gz/,
          /connection lost after \d+ bytes|incomplete/,
        ),
      );
      assert.deepEqual(await listDir(dir), []);

      const lines: string[] = [];
      const results = await downloadMnist({
        dir,
        mirrors: [dropping.url, good.url],
        files,
        log: (l) => lines.push(l),
        tty: false,
      });
      assert.ok(results.every((r) => r.status === "downloaded" && r.mirror === good.url));
      assert.match(
        lines[0],
        /^train-images-idx3-ubyte\.gz: http:\/\/127\.0\.0\.1:\d+\/mnist\/train-images-idx3-ubyte\.gz failed: /,
      );
      assert.deepEqual(await listDir(dir), files.map((f) => f.name).sort());
      for (const f of files) {
        assert.deepEqual(await Deno.readFile(join(dir, f.name)), bodies.get(f.name));
      }
    });
  } finally {
    await dropping.close();
    await good.close();
  }
});

Deno.test("a stalled transfer times out; a 404 moves on; nothing left behind", async () => {
  const { bodies, files } = await makeFiles();
  const stalling = serve(bodies, "stall");
  const missing = serve(bodies, "404");
  try {
    await withTempDir(async (dir) => {
      await assert.rejects(
        () =>
          downloadMnist({
            dir,
            mirrors: [missing.url, stalling.url],
            files: files.slice(0, 1),
            log: () => {},
            tty: false,
            idleTimeoutMs: 300,
          }),
        isUserError(/all 2 mirror\(s\) failed/, /HTTP 404 Not Found/, /no data for 0\.3 s/),
      );
      assert.deepEqual(await listDir(dir), []);
    });
  } finally {
    await stalling.close();
    await missing.close();
  }
});

Deno.test("a present file with the wrong checksum is downloaded again; progress redraws on a TTY", async () => {
  const { bodies, files } = await makeFiles();
  const server = serve(bodies, "good");
  try {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(join(dir, files[0].name), "half a file");
      const lines: string[] = [];
      const drawn: string[] = [];
      const results = await downloadMnist({
        dir,
        mirrors: [server.url.replace(/\/$/, "")], // no trailing slash: still one slash in the URL
        files,
        log: (l) => lines.push(l),
        redraw: (l) => drawn.push(l),
        tty: true,
      });
      assert.equal(results[0].status, "downloaded");
      assert.match(lines[0], /train-images-idx3-ubyte\.gz: present but its SHA-256 is wrong/);
      assert.deepEqual(await Deno.readFile(join(dir, files[0].name)), bodies.get(files[0].name));
      assert.ok(
        drawn.some((l) => /^train-images-idx3-ubyte\.gz: 100% 0\.0 MB \/ 0\.0 MB$/.test(l)),
        drawn.join("|"),
      );
      assert.ok(server.requests.every((r) => !r.startsWith("/")));
    });
  } finally {
    await server.close();
  }
});

Deno.test("mirror URLs and the command line", () => {
  assert.equal(mirrorUrl("https://h/a/mnist", "x.gz").href, "https://h/a/mnist/x.gz");
  assert.equal(mirrorUrl("https://h/a/mnist/", "x.gz").href, "https://h/a/mnist/x.gz");
  assert.equal(parseDataArgs(["--help"]), "help");
  const defaults = parseDataArgs([]);
  assert.ok(defaults !== "help");
  assert.equal(defaults.dir, "data/mnist");
  assert.ok(defaults.mirrors.length >= 2);
  assert.ok(defaults.mirrors.every((m) => m.startsWith("https://")));
  assert.deepEqual(parseDataArgs(["--mirror", "http://a/", "--mirror=http://b/", "--dir", "d"]), {
    dir: "d",
    mirrors: ["http://a/", "http://b/"],
  });
  assert.throws(() => parseDataArgs(["--mirror", "ftp://x/"]), UsageError);
  assert.throws(
    () => parseDataArgs(["--mirror", "nope"]),
    /--mirror must be an http\(s\) URL, got 'nope'/,
  );
  assert.throws(() => parseDataArgs(["--bogus"]), UsageError);
  assert.throws(() => parseDataArgs(["extra"]), UsageError);
});

Deno.test({
  name: "deno task data's program: --help, a bad flag, and a failed download as one line",
  // Runs the program as a subprocess: needs --allow-run, which `deno task test` grants
  // (without it this test fails rather than being skipped).
}, async () => {
  const { bodies } = await makeFiles();
  const server = serve(bodies, "good"); // our tiny files, not the real MNIST: every checksum fails
  try {
    await withTempDir(async (dir) => {
      const program = new URL("../data/download.ts", import.meta.url).pathname;
      const run = async (...args: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-lock",
            "--allow-read",
            `--allow-write=${dir}`,
            "--allow-net=127.0.0.1",
            program,
            ...args,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = (b: Uint8Array) => new TextDecoder().decode(b);
        return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
      };
      const help = await run("--help");
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--mirror URL/);
      const bad = await run("--frobnicate");
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^error: .*frobnicate/);
      const target = join(dir, "mnist");
      const failed = await run("--mirror", server.url, "--dir", target);
      assert.equal(failed.code, 1);
      const lastLine = failed.stderr.trimEnd().split("\n").at(-1)!;
      assert.match(
        lastLine,
        /^error: could not download train-images-idx3-ubyte\.gz: .*SHA-256 mismatch/,
      );
      assert.doesNotMatch(failed.stderr, /^ {4}at /m, "no stack trace");
      // The directory it made for the download is gone too: nothing looks started.
      await assert.rejects(() => Deno.stat(target), Deno.errors.NotFound);
    });
  } finally {
    await server.close();
  }
});
