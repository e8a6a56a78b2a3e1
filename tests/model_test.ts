/**
 * The CPU reference is the oracle of every GPU test, so it is checked here
 * against finite differences of the loss, and its init against its contract.
 */

import assert from "node:assert/strict";
import {
  batchRanges,
  cloneParams,
  initialParams,
  initParams,
  LAYER_SIZES,
  lossAndGradients,
  type MlpParams,
  mlpSizes,
  originalParams,
  pixelsToFloats,
  predict,
  stepMultiplyAdds,
  trainStep,
} from "../shared/model/mlp.ts";
import { mulberry32 } from "../shared/model/rng.ts";

function randomBatch(batch: number, inputs: number, seed: number) {
  const rand = mulberry32(seed);
  const x = new Float64Array(batch * inputs).map(() => rand());
  const labels = new Uint8Array(batch).map(() => Math.floor(rand() * 10));
  return { x, labels };
}

function meanLoss(p: MlpParams, x: ArrayLike<number>, labels: Uint8Array): number {
  return lossAndGradients(p, x, labels).loss;
}

Deno.test("originalParams: the original program's weights, entry for entry", () => {
  // Computed independently of this code (the figures, from the original's formula).
  const p = originalParams();
  const [w1, w2, w3] = p.weights;
  assert.deepEqual([w1.length, w2.length, w3.length], [784 * 512, 512 * 128, 128 * 10]);
  const want: [Float32Array, number, number][] = [
    [w1, 0, 0.0674097836],
    [w1, 1, -0.0387124754],
    [w1, 2, 0.0074887630],
    [w1, 401407, 0.0618076548],
    [w2, 0, 0.0959258005],
    [w2, 1, -0.0550888143],
    [w3, 0, 0.2065788656],
    [w3, 1279, -0.1165582016],
  ];
  for (const [w, i, v] of want) {
    assert.ok(Math.abs(w[i] - v) <= 5e-11, `entry ${i}: ${w[i].toFixed(10)}, want ${v}`);
  }
  for (const b of p.biases) assert.ok(b.every((x) => x === 0));
  // Bounded by the Glorot limit sqrt(6 / (in + out)), and no seed: always the same.
  assert.ok(w1.every((x) => Math.abs(x) <= Math.sqrt(6 / (784 + 512))));
  assert.deepEqual(initialParams("original", 1), initialParams("original", 2));
  assert.deepEqual(initialParams("kaiming", 5), initParams(5));
});

Deno.test("initParams: same seed same numbers, bounded by sqrt(6/fan_in), zero biases", () => {
  const a = initParams(1337), b = initParams(1337), c = initParams(1338);
  assert.deepEqual(a.weights[0], b.weights[0]);
  assert.notDeepEqual(a.weights[0], c.weights[0]);
  for (let l = 0; l < 3; l++) {
    const limit = Math.sqrt(6 / LAYER_SIZES[l]);
    const w = a.weights[l];
    assert.equal(w.length, LAYER_SIZES[l] * LAYER_SIZES[l + 1]);
    let min = Infinity, max = -Infinity, mean = 0;
    for (const v of w) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      mean += v / w.length;
    }
    assert.ok(min >= -limit && max <= limit, `layer ${l} within ±${limit}`);
    assert.ok(max > 0.9 * limit && min < -0.9 * limit, `layer ${l} spans the range`);
    assert.ok(Math.abs(mean) < 0.05 * limit, `layer ${l} centred`);
    assert.ok(a.biases[l].every((v) => v === 0));
  }
});

Deno.test("lossAndGradients matches central finite differences on a small MLP", () => {
  const sizes = [7, 6, 5, 4];
  const p0 = initParams(42, sizes);
  // Non-zero biases so their gradients are exercised away from the init.
  const rand = mulberry32(9);
  for (const b of p0.biases) for (let i = 0; i < b.length; i++) b[i] = rand() * 0.2 - 0.1;
  const { x } = randomBatch(5, 7, 3);
  const labels = new Uint8Array([0, 3, 1, 2, 3]);
  // Evaluate in float64 with float64 parameters copied from the float32 ones.
  const toF64 = (p: MlpParams) => ({
    sizes: p.sizes,
    weights: p.weights.map((w) => Float64Array.from(w)),
    biases: p.biases.map((b) => Float64Array.from(b)),
  });
  const p = toF64(p0) as unknown as MlpParams;
  const grads = lossAndGradients(p, x, labels);
  const h = 1e-6;
  let checked = 0;
  for (const kind of ["weights", "biases"] as const) {
    for (let l = 0; l < 3; l++) {
      const t = p[kind][l];
      for (let i = 0; i < t.length; i++) {
        const keep = t[i];
        t[i] = keep + h;
        const up = meanLoss(p, x, labels);
        t[i] = keep - h;
        const down = meanLoss(p, x, labels);
        t[i] = keep;
        const numeric = (up - down) / (2 * h);
        const analytic = grads[kind][l][i];
        assert.ok(
          Math.abs(numeric - analytic) <= 1e-6 + 1e-4 * Math.abs(numeric),
          `${kind}[${l}][${i}]: analytic ${analytic} vs numeric ${numeric}`,
        );
        checked++;
      }
    }
  }
  assert.equal(checked, 7 * 6 + 6 * 5 + 5 * 4 + 6 + 5 + 4);
});

Deno.test("lossAndGradients matches central finite differences with 1 to 4 hidden layers", () => {
  // Every weight and bias of MLPs of other depths than the default's, in float64.
  for (const sizes of [[6, 5, 4], [6, 5, 4, 3], [7, 3, 6, 4, 5], [5, 4, 6, 3, 5, 4]]) {
    const L = sizes.length - 1, classes = sizes[L];
    const p = initParams(7 + L, sizes);
    const rand = mulberry32(L);
    for (const b of p.biases) for (let i = 0; i < b.length; i++) b[i] = rand() * 0.2 - 0.1;
    const f64 = {
      sizes: p.sizes,
      weights: p.weights.map((w) => Float64Array.from(w)),
      biases: p.biases.map((b) => Float64Array.from(b)),
    } as unknown as MlpParams;
    const { x } = randomBatch(4, sizes[0], 11 + L);
    const labels = new Uint8Array([0, classes - 1, 1, 2 % classes]);
    const grads = lossAndGradients(f64, x, labels);
    assert.equal(grads.weights.length, L);
    const h = 1e-6;
    let checked = 0;
    for (const kind of ["weights", "biases"] as const) {
      for (let l = 0; l < L; l++) {
        const t = f64[kind][l];
        assert.equal(grads[kind][l].length, t.length, `${sizes}: ${kind}[${l}] length`);
        for (let i = 0; i < t.length; i++) {
          const keep = t[i];
          t[i] = keep + h;
          const up = meanLoss(f64, x, labels);
          t[i] = keep - h;
          const down = meanLoss(f64, x, labels);
          t[i] = keep;
          const numeric = (up - down) / (2 * h);
          const analytic = grads[kind][l][i];
          assert.ok(
            Math.abs(numeric - analytic) <= 1e-6 + 1e-4 * Math.abs(numeric),
            `${sizes}: ${kind}[${l}][${i}]: analytic ${analytic} vs numeric ${numeric}`,
          );
          checked++;
        }
      }
    }
    let params = 0;
    for (let l = 0; l < L; l++) params += sizes[l] * sizes[l + 1] + sizes[l + 1];
    assert.equal(checked, params, `${sizes}: every parameter checked`);
  }
});

Deno.test("mlpSizes: [pixels, ...hidden, classes], the original's by default", () => {
  assert.deepEqual(mlpSizes(), [784, 512, 128, 10]);
  assert.deepEqual(LAYER_SIZES, [784, 512, 128, 10]);
  assert.deepEqual(mlpSizes([256]), [784, 256, 10]);
  assert.deepEqual(mlpSizes([1024, 256, 64], { height: 32, width: 32, classes: 3 }), [
    1024,
    1024,
    256,
    64,
    3,
  ]);
  // The multiply-adds of any depth: forward and ∂W per layer, ∂x for all but the first.
  assert.equal(stepMultiplyAdds(2, [784, 256, 10]), 2 * (2 * (784 * 256 + 256 * 10) + 256 * 10));
});

Deno.test("trainStep lowers the loss on its own batch", () => {
  const p = initParams(1337);
  const { labels } = randomBatch(16, 1, 5);
  const bytes = new Uint8Array(16 * 784).map((_, i) => (i * 37) % 256);
  const x = pixelsToFloats(bytes, 0, 16);
  const before = meanLoss(p, x, labels);
  const q = cloneParams(p);
  const stepLoss = trainStep(q, x, labels, 0.05);
  assert.equal(stepLoss, before);
  assert.ok(meanLoss(q, x, labels) < before);
  assert.equal(predict(q, x, 16).length, 16);
});

Deno.test("batchRanges covers every image once, in order, last batch partial", () => {
  assert.deepEqual(batchRanges(10, 4), [[0, 4], [4, 4], [8, 2]]);
  assert.deepEqual(batchRanges(8, 4), [[0, 4], [4, 4]]);
  assert.deepEqual(batchRanges(3, 5), [[0, 3]]);
});

Deno.test("stepMultiplyAdds counts forward, weight- and input-gradient products", () => {
  // forward 784·512 + 512·128 + 128·10, the same again for ∂W, and ∂x for layers 2 and 3.
  const fwd = 784 * 512 + 512 * 128 + 128 * 10;
  assert.equal(stepMultiplyAdds(1), 2 * fwd + 512 * 128 + 128 * 10);
});
