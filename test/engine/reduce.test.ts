// Reductions (sum, mean, max, min over any axes, with and without keepDims; argmax) against
// float64 references, including long reductions that take the two-pass chunked path, and their
// gradients by finite differences.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  TEST_SEED, assertClose, assertShape, dotRef, gradCheck, randomArray, reduceRef, rng, setupEngine, sizeOf, sumOf, toTensor,
  weightsFor,
} from '../helpers.js';

const test = suite('reduce');
const rand = rng(TEST_SEED);
test.before(setupEngine);

type ReduceOp = (x: E.Tensor, axes?: number | readonly number[], opts?: E.ReduceOptions) => E.Tensor;
const ops: [string, ReduceOp, (v: number[]) => number][] = [
  ['sum', E.sum, sumOf],
  ['mean', E.mean, (v) => sumOf(v) / v.length],
  ['max', E.max, (v) => v.reduce((m, x) => Math.max(m, x), -Infinity)],
  ['min', E.min, (v) => v.reduce((m, x) => Math.min(m, x), Infinity)],
];

const axisCases: [number[], (number[] | undefined)[]][] = [
  [[5, 7, 9], [[0], [1], [2], [-1], [0, 2], [0, 1], [1, 2], [0, 1, 2], undefined]],
  [[3, 1, 6, 5], [[0, 2, 3], [1], [0, 1], [1, 3], [-3, -1], undefined]],
  [[2, 3, 4, 5, 3], [[0, 2, 4], [1, 3], [4]]],
  [[11], [[0]]],
];

/**
 * max and min must be exact. A sum of mixed signs can nearly cancel, so its float32 error is
 * bounded relative to the sum of |x| (likewise the mean): error / sum |x| < 1e-6.
 */
function checkReduction(name: string, got: ArrayLike<number>, x: ArrayLike<number>, shape: number[], axes: number[], expected: Float64Array, what: string): void {
  if (name === 'max' || name === 'min') return assertClose(got, expected, 0, 0, what);
  const scale = reduceRef(x, shape, axes, (v) => sumOf(v.map(Math.abs)) / (name === 'mean' ? v.length : 1)).data;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!) / (scale[i]! || 1));
  assert.ok(worst < 1e-6, `${what}: error ${worst} relative to sum |x| (seed ${TEST_SEED})`);
}

for (const [name, op, f] of ops) {
  test(`${name} over many axis sets, keepDims and not`, async () => {
    for (const [shape, axesList] of axisCases) {
      const x = randomArray(sizeOf(shape), rand, -3, 3);
      const t = toTensor(x, shape);
      for (const axes of axesList) {
        for (const keepDims of [false, true]) {
          const ref = reduceRef(x, shape, axes ?? shape.map((_, i) => i), f, keepDims);
          const y = op(t, axes, { keepDims });
          const what = `${name} of [${shape}] over ${JSON.stringify(axes)} keepDims ${keepDims}`;
          assertShape(y.shape, ref.shape, what);
          checkReduction(name, await y.toArray(), x, shape, axes ?? shape.map((_, i) => i), ref.data, what);
          y.dispose();
        }
      }
      t.dispose();
    }
  });
}

test('long reductions (two-pass chunked path) match float64', async () => {
  const cases: [number[], number[]][] = [
    [[100003], [0]],
    [[3, 100003], [1]],
    [[100003, 3], [0]],
    [[7, 4099, 5], [0, 2]],
    [[257, 1031], [0, 1]],
  ];
  for (const [shape, axes] of cases) {
    const x = randomArray(sizeOf(shape), rand, -1, 1);
    const t = toTensor(x, shape);
    for (const [name, op, f] of ops) {
      const ref = reduceRef(x, shape, axes, f);
      const y = op(t, axes);
      const what = `${name} of [${shape}] over [${axes}]`;
      assertShape(y.shape, ref.shape, what);
      checkReduction(name, await y.toArray(), x, shape, axes, ref.data, what);
      y.dispose();
    }
    t.dispose();
  }
});

test('long sum of data with a large mean keeps relative error below 1e-5', async () => {
  const n = 100003;
  const x = randomArray(n, rand, 999, 1001);
  const t = toTensor(x, [n]);
  const expected = sumOf(x);
  const s = await E.sum(t).item();
  assert.ok(Math.abs(s - expected) / expected < 1e-5, `sum ${s}, expected ${expected}: relative error ${Math.abs(s - expected) / expected}`);
  const m = await E.mean(t).item();
  assert.ok(Math.abs(m - expected / n) / (expected / n) < 1e-5, `mean ${m}, expected ${expected / n}`);
  // The same with a column layout: 3 outputs each over 100003 strided elements.
  const x3 = randomArray(3 * n, rand, 999, 1001);
  const cols = await E.sum(toTensor(x3, [n, 3]), 0).toArray();
  const ref = reduceRef(x3, [n, 3], [0], sumOf).data;
  assertClose(cols, ref, 1e-5, 0, 'column sums');
});

test('max and min of infinite values are exact', async () => {
  const x = E.tensor([[-Infinity, -Infinity], [Infinity, -Infinity], [3, Infinity]]);
  assertClose(await E.max(x, 1).toArray(), [-Infinity, Infinity, Infinity], 0, 0, 'max');
  assertClose(await E.min(x, 1).toArray(), [-Infinity, -Infinity, 3], 0, 0, 'min');
  assertClose(await E.max(E.full([1000], -Infinity)).toArray(), [-Infinity], 0, 0, 'max of 1000 -inf (chunked)');
});

test('argmax returns the first maximum, i32, along any axis', async () => {
  const shape = [4, 6, 5];
  // Few distinct values, so ties are common.
  const x = Array.from({ length: 120 }, () => Math.floor(rand() * 3));
  const t = toTensor(x, shape);
  for (const axis of [0, 1, 2, -1]) {
    for (const keepDims of [false, true]) {
      const ref = reduceRef(x, shape, [axis], (v) => v.indexOf(v.reduce((m, u) => Math.max(m, u))), keepDims);
      const y = E.argmax(t, axis, { keepDims });
      assert.is(y.dtype, 'i32');
      assertShape(y.shape, ref.shape, `argmax axis ${axis}`);
      assertClose(await y.toArray(), ref.data, 0, 0, `argmax axis ${axis} keepDims ${keepDims}`);
    }
  }
  const long = randomArray(100003, rand);
  long[77777] = 5;
  long[88888] = 5;
  assert.is(await E.argmax(toTensor(long, [1, 100003]), 1).item(), 77777, 'argmax over 100003, first of two maxima');
  assert.is(await E.argmax(E.tensor([-Infinity, -Infinity, -Infinity]), 0).item(), 0, 'argmax of all -inf');
});

test('reductions of empty and scalar tensors', async () => {
  const s = E.sum(E.zeros([0, 4]), 0);
  assertShape(s.shape, [4], 'sum over an empty axis');
  assertClose(await s.toArray(), [0, 0, 0, 0], 0, 0, 'sum over an empty axis is 0');
  assert.is(await E.sum(E.full([], 2.5)).item(), 2.5);
  assert.is(await E.max(E.full([1, 1, 1], -7)).item(), -7);
  assert.throws(() => E.max(E.zeros([0, 4]), 0), /cannot reduce an empty axis/);
  assert.throws(() => E.sum(E.zeros([2, 3]), 2), /axis 2 out of range for rank 2/);
});

// ---------------------------------------------------------------------------------------------
// Gradients

for (const [name, op, f] of ops) {
  test(`${name} gradient over axes (finite differences)`, async () => {
    const shape = [3, 4, 5];
    for (const axes of [[1], [0, 2], undefined, [2]] as (number[] | undefined)[]) {
      for (const keepDims of [false, true]) {
        const ref = reduceRef(new Float64Array(60), shape, axes ?? [0, 1, 2], f, keepDims);
        const w = weightsFor(ref.data.length, rand);
        await gradCheck(
          ([a]) => E.sum(E.mul(op(a!, axes, { keepDims }), toTensor(w, ref.shape))),
          ([a]) => dotRef(reduceRef(a!, shape, axes ?? [0, 1, 2], f, keepDims).data, w),
          [{ data: randomArray(60, rand, -2, 2), shape }],
          { what: `${name} over ${JSON.stringify(axes)} keepDims ${keepDims}` },
        );
      }
    }
  });
}

test('max and min split the gradient evenly among tied extremes', async () => {
  const x = E.tensor([[1, 3, 3, 0], [2, 2, 2, 5]]);
  x.requiresGrad = true;
  E.tidy(() => E.backward(E.sum(E.max(x, 1))));
  assertClose(await x.grad!.toArray(), [0, 0.5, 0.5, 0, 0, 0, 0, 1], 0, 0, 'max');
  x.grad!.dispose();
  x.grad = null;
  E.tidy(() => E.backward(E.sum(E.min(x, 1))));
  assertClose(await x.grad!.toArray(), [0, 0, 0, 1, 1 / 3, 1 / 3, 1 / 3, 0], 1e-7, 0, 'min');
});

test.run();
