/**
 * Fuzzing the IDX reader with seeded random and mutated inputs (mulberry32):
 * whatever the bytes, only a one-line `UserError` may escape, a success must
 * be self-consistent, and nothing may hang.
 */

import assert from "node:assert/strict";
import { UserError } from "../shared/io/errors.ts";
import { checkImagePair, encodeIdx, type Idx, parseIdx, parseIdxGz } from "../shared/data/idx.ts";
import { mulberry32 } from "../shared/model/rng.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

type Rand = () => number;
const int = (rand: Rand, n: number) => Math.floor(rand() * n);

/** Valid files to mutate: MNIST-shaped images and labels, and a few other shapes. */
function seeds(): Uint8Array[] {
  const pixels = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37) & 0xff);
  return [
    encodeIdx([2, 28, 28], pixels(2 * 784)),
    encodeIdx([5], Uint8Array.from([0, 9, 3, 7, 1])),
    encodeIdx([3, 4], pixels(12)),
    encodeIdx([0], new Uint8Array(0)),
    encodeIdx([1, 1, 1, 1], pixels(1)),
  ];
}

/** A random input: noise, an IDX-looking header with noise, or a mutated valid file. */
function randomInput(rand: Rand, valid: Uint8Array[]): Uint8Array {
  const kind = int(rand, 4);
  if (kind === 0) return Uint8Array.from({ length: int(rand, 64) }, () => int(rand, 256));
  if (kind === 1) {
    // Plausible header (zero magic, type 8 mostly), random sizes, random-length body.
    const ndims = int(rand, 6);
    const head = [0, 0, rand() < 0.8 ? 8 : int(rand, 256), ndims];
    for (let i = 0; i < 4 * ndims; i++) head.push(rand() < 0.7 ? 0 : int(rand, 256));
    const body = Array.from({ length: int(rand, 100) }, () => int(rand, 256));
    return Uint8Array.from([...head, ...body]);
  }
  const bytes = valid[int(rand, valid.length)].slice();
  const mutations = 1 + int(rand, 4);
  let out = bytes;
  for (let m = 0; m < mutations; m++) {
    const op = int(rand, 5);
    if (op === 0 && out.length > 0) out[int(rand, out.length)] ^= 1 << int(rand, 8);
    else if (op === 1 && out.length > 0) out[int(rand, Math.min(out.length, 24))] = int(rand, 256);
    else if (op === 2) out = out.slice(0, int(rand, out.length + 1));
    else if (op === 3) {
      out = Uint8Array.from([
        ...out,
        ...Array.from({ length: 1 + int(rand, 8) }, () => int(rand, 256)),
      ]);
    } else if (op === 4 && out.length > 8) out[4 + int(rand, 4)] = 0xff; // a huge size
  }
  return out;
}

/** Either a consistent `Idx` or a one-line `UserError` naming the file; anything else fails. */
function checkOutcome(
  outcome: Idx | unknown,
  threw: boolean,
  name: string,
  input: Uint8Array,
): void {
  if (threw) {
    assert.ok(
      outcome instanceof UserError,
      `non-UserError for ${[...input.subarray(0, 32)]}: ${outcome}`,
    );
    assert.ok(
      outcome.message.startsWith(`${name}: `) || outcome.message.includes(name),
      outcome.message,
    );
    assert.doesNotMatch(outcome.message, /\n/);
    return;
  }
  const idx = outcome as Idx;
  const items = idx.dims.reduce((a, b) => a * b, 1);
  assert.equal(idx.data.length, items);
  assert.ok(idx.dims.length >= 1);
}

Deno.test("fuzz parseIdx: 4,000 random and mutated inputs, only UserError escapes", () => {
  const rand = mulberry32(0x1d8);
  const valid = seeds();
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const input = randomInput(rand, valid);
    let outcome: unknown;
    let threw = false;
    try {
      outcome = parseIdx(input, "fuzz.idx");
      accepted++;
    } catch (err) {
      outcome = err;
      threw = true;
      refused++;
    }
    checkOutcome(outcome, threw, "fuzz.idx", input);
    if (!threw && rand() < 0.5) {
      // Pairing it with anything is an images/labels check that also only refuses politely.
      const other = parseIdx(valid[int(rand, 2)], "other");
      for (const [a, b] of [[outcome as Idx, other], [other, outcome as Idx]]) {
        try {
          checkImagePair(a, "a.idx", b, "b.idx");
        } catch (err) {
          assert.ok(err instanceof UserError, String(err));
        }
      }
    }
  }
  // The generator reaches both sides.
  assert.ok(accepted > 100, `accepted ${accepted}`);
  assert.ok(refused > 1000, `refused ${refused}`);
});

/** Rejects when `promise` takes longer than `ms`: a hang is a failure. */
function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

Deno.test("fuzz the gzip path: 3,000 gzipped and mutated-gzip inputs, only UserError, no hang", async () => {
  const rand = mulberry32(0x9e3);
  const valid = seeds();
  const validGz = await Promise.all(valid.map(gzip));
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    let input: Uint8Array;
    const kind = int(rand, 3);
    if (kind === 0) {
      input = await gzip(randomInput(rand, valid)); // valid gzip, bad or good IDX inside
    } else {
      input = validGz[int(rand, validGz.length)].slice(); // good IDX, damaged gzip
      const mutations = 1 + int(rand, 3);
      for (let m = 0; m < mutations; m++) {
        const op = int(rand, 3);
        if (op === 0) input[int(rand, input.length)] ^= 1 << int(rand, 8);
        else if (op === 1) input = input.slice(0, int(rand, input.length + 1));
        else {input = Uint8Array.from([
            ...input,
            ...Array.from({ length: 1 + int(rand, 16) }, () => int(rand, 256)),
          ]);}
      }
    }
    let outcome: unknown;
    let threw = false;
    try {
      outcome = await withinMs(parseIdxGz(input, "fuzz.gz"), 20_000, `input ${i}`);
      accepted++;
    } catch (err) {
      outcome = err;
      threw = true;
      refused++;
    }
    checkOutcome(outcome, threw, "fuzz.gz", input);
  }
  assert.ok(accepted > 20, `accepted ${accepted}`);
  assert.ok(refused > 1000, `refused ${refused}`);
});
