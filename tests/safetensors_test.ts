/** Saved models: safetensors round trip, a file written by hand to the spec, and fuzzing. */

import assert from "node:assert/strict";
import { UserError } from "../shared/io/errors.ts";
import { initParams } from "../shared/model/mlp.ts";
import { mulberry32 } from "../shared/model/rng.ts";
import {
  decodeMlp,
  decodeSafetensors,
  encodeMlp,
  encodeSafetensors,
} from "../shared/io/safetensors.ts";

Deno.test("an MLP survives encode → decode bit for bit, with its metadata", () => {
  const p = initParams(7);
  p.biases[1][3] = 0.25;
  const bytes = encodeMlp(p, { epoch: "3" });
  const { params, metadata } = decodeMlp(bytes, "m.safetensors", [784, 512, 128, 10]);
  assert.deepEqual(params.sizes, [784, 512, 128, 10]);
  for (let l = 0; l < 3; l++) {
    assert.deepEqual(params.weights[l], p.weights[l]);
    assert.deepEqual(params.biases[l], p.biases[l]);
  }
  assert.equal(metadata.epoch, "3");
  assert.equal((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8, 0);
});

Deno.test("reads a file laid out by hand from the format's description", () => {
  const header = JSON.stringify({
    b: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    a: { dtype: "F32", shape: [1, 1], data_offsets: [8, 12] },
    __metadata__: { k: "v" },
  });
  const h = new TextEncoder().encode(header);
  const bytes = new Uint8Array(8 + h.length + 12);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, h.length, true);
  bytes.set(h, 8);
  dv.setFloat32(8 + h.length, 1.5, true);
  dv.setFloat32(8 + h.length + 4, -2, true);
  dv.setFloat32(8 + h.length + 8, 3.25, true);
  const f = decodeSafetensors(bytes, "hand.safetensors");
  assert.deepEqual([...f.tensors.get("b")!.data], [1.5, -2]);
  assert.deepEqual(f.tensors.get("a")!.shape, [1, 1]);
  assert.deepEqual([...f.tensors.get("a")!.data], [3.25]);
  assert.equal(f.metadata.k, "v");
});

Deno.test("bad files get a one-line error naming the file", () => {
  const good = encodeSafetensors(new Map([["t", { shape: [2], data: new Float32Array([1, 2]) }]]));
  const hugeHeader = good.slice();
  new DataView(hugeHeader.buffer).setBigUint64(0, 4_000_000_000n, true);
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(3), /shorter than/],
    [hugeHeader, /exceeds the file/],
    [good.slice(0, good.length - 1), /outside|needs/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => decodeSafetensors(bytes, "bad.safetensors"), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  const cnn = encodeSafetensors(new Map(), { format: "webgpu-mnist-cnn" });
  assert.throws(() => decodeMlp(cnn, "c.safetensors"), /c\.safetensors: holds a CNN .*--model cnn/);
  const other = encodeMlp(initParams(1, [4, 3, 2]));
  assert.throws(() => decodeMlp(other, "small.safetensors", [784, 512, 128, 10]), /4→3→2/);
});

Deno.test("fuzz: 3000 mutated and random files raise only UserError", () => {
  const rand = mulberry32(2024);
  const base = encodeMlp(initParams(3, [5, 4, 3]));
  for (let i = 0; i < 3000; i++) {
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 64)).map(() => Math.floor(rand() * 256));
    } else {
      bytes = base.slice(0, i % 3 === 1 ? base.length : Math.floor(rand() * base.length));
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips && bytes.length; f++) {
        // Mutate mostly the length field and the JSON header, where parsing decides.
        const at = Math.floor(rand() * Math.min(bytes.length, 8 + 400));
        bytes[at] = Math.floor(rand() * 256);
      }
    }
    try {
      decodeMlp(bytes, `fuzz-${i}`);
    } catch (e) {
      if (!(e instanceof UserError)) throw new Error(`case ${i}: ${e}`);
    }
  }
});
