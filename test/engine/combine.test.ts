// linearCombination (ops/combine.ts, lincomb.wgsl): sum_k c_k w_k against a float64 reference on
// fresh random inputs and coefficients, 1 to 9 terms (more than one launch of four), odd sizes
// (1, 255, 257 and a size past the grid-stride loop's 512 x 256 invocations), zero coefficients
// skipped, the output poisoned first (setupEngine); gradients by finite differences; and
// withL2Gradient, the identity whose backward adds the gradient of an L2 penalty.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertClose, dotRef, gradCheck, randomArray, rng, setupEngine, toTensor } from '../helpers.js';
import { gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('combine');
test.before(setupEngine);
const rand = rng(TEST_SEED);

for (const size of [1, 255, 257, 512 * 256 + 1001]) {
  test(`linearCombination of 1..9 tensors of ${size} elements equals the float64 sum`, async () => {
    for (const terms of [1, 2, 3, 4, 5, 7, 9]) {
      const data = Array.from({ length: terms }, () => randomArray(size, rand, -3, 3));
      const c = Array.from({ length: terms }, (_, k) => (k === 1 && terms > 2 ? 0 : Math.fround(rand() * 4 - 2)));
      const expected = new Float64Array(size);
      data.forEach((d, k) => d.forEach((v, i) => (expected[i] += c[k]! * v)));
      const got = await E.tidy(() => E.linearCombination(data.map((d) => toTensor(d, [size])), c)).toArray();
      assertClose(got, expected, 1e-5, 1e-5, `${terms} terms, ${size} elements`);
    }
  });
}

test('all-zero coefficients give zeros; shapes must agree', async () => {
  const out = await E.tidy(() => E.linearCombination([toTensor([1, 2, 3], [3]), toTensor([4, 5, 6], [3])], [0, 0])).toArray();
  assert.equal(Array.from(out), [0, 0, 0]);
  assert.throws(() => E.tidy(() => E.linearCombination([toTensor([1, 2], [2]), toTensor([1, 2, 3], [3])], [1, 1])), /shape/);
});

test('linearCombination gradient (finite differences): c_k times the output gradient', async () => {
  const shape = [3, 7];
  const c = [0.75, -1.5, 2, 0.25, -0.5];
  const w = randomArray(21, rand);
  await gradCheck(
    (ts) => E.sum(E.mul(E.linearCombination(ts, c), toTensor(w, shape))),
    (arrays) => dotRef(Float64Array.from(arrays[0]!, (_, i) => arrays.reduce((s, a, k) => s + c[k]! * a[i]!, 0)), w),
    c.map(() => ({ data: randomArray(21, rand), shape })),
    { what: 'linearCombination' },
  );
});

test('withL2Gradient: the value unchanged, the gradient of 1/2 wd ||w||^2 added (finite differences)', async () => {
  const shape = [5, 3];
  const wd = 0.3;
  const weights = randomArray(15, rand);
  const data = randomArray(15, rand);
  const same = await E.tidy(() => E.clone(E.withL2Gradient(toTensor(data, shape), wd))).toArray();
  assert.equal(Array.from(same), Array.from(Float32Array.from(data)));
  await gradCheck(
    ([w]) => E.sum(E.mul(E.withL2Gradient(w!, wd), toTensor(weights, shape))),
    ([w]) => dotRef(w!, weights) + (wd / 2) * w!.reduce((s, v) => s + v * v, 0),
    [{ data, shape }],
    { what: 'withL2Gradient' },
  );
});

test('grid-stride sizes (1, odd, beyond the policy): linearCombination bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    const data = [0, 1, 2, 3, 4].map(() => randomArray(n, rand, -3, 3));
    const c = [0.5, -1.25, 2, 0.75, -0.5];
    const ts = data.map((d) => toTensor(d, [n]));
    const out = await sameUnderEveryGrid(`linearCombination n=${n}`, () => E.linearCombination(ts, c));
    assertClose(out, Float64Array.from({ length: n }, (_, i) => data.reduce((acc, d, k) => acc + c[k]! * d[i]!, 0)), 1e-5, 1e-5, `linearCombination n=${n}`);
    for (const t of ts) t.dispose();
  }
});

test.run();
