// Binary element-wise ops, comparisons and where against float64 references (fresh random inputs,
// odd and broadcast shapes, outputs poisoned with NaN first), their gradients by finite
// differences, and their error messages. Unary ops are in unary.test.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  TEST_SEED, assertClose, assertShape, broadcastMap, dotRef, gradCheck, gridStrideSizes, randomArray, rng, sameUnderEveryGrid,
  setupEngine, sizeOf, toTensor, weightsFor,
} from '../helpers.js';

const test = suite('elementwise');
const rand = rng(TEST_SEED);
test.before(setupEngine);

type Binary = (a: E.Tensor, b: E.Tensor) => E.Tensor;

const binaryCases: [string, Binary, (x: number, y: number) => number][] = [
  ['add', E.add, (x, y) => x + y],
  ['sub', E.sub, (x, y) => x - y],
  ['mul', E.mul, (x, y) => x * y],
  ['div', E.div, (x, y) => x / y],
  ['pow', E.pow, Math.pow],
  ['maximum', E.maximum, Math.max],
  ['minimum', E.minimum, Math.min],
];

const shapePairs: [number[], number[]][] = [
  [[7, 13], [7, 13]],
  [[3, 5, 7], [7]],
  [[3, 1, 7], [1, 5, 1]],
  [[], [2, 3]],
  [[2, 1, 4, 1, 5], [3, 1, 6, 5]],
  [[1031], [1]],
];

for (const [name, op, f] of binaryCases) {
  test(`${name} matches float64 with broadcasting`, async () => {
    for (const [as, bs] of shapePairs) {
      // pow needs a > 0; b away from 0 for div.
      const a = randomArray(sizeOf(as), rand, name === 'pow' ? 0.1 : -2, 2);
      const b = randomArray(sizeOf(bs), rand, 0.5, 2);
      if (name !== 'pow' && name !== 'div') for (let i = 0; i < b.length; i++) if (rand() < 0.5) b[i] = -b[i]!;
      const ref = broadcastMap([{ data: a, shape: as }, { data: b, shape: bs }], f);
      const t = op(toTensor(a, as), toTensor(b, bs));
      assertShape(t.shape, ref.shape, name);
      assertClose(await t.toArray(), ref.data, 1e-5, 0, `${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
    }
  });
}

test('number operands: add, sub, mul, div, maximum, minimum with a scalar on either side', async () => {
  const shape = [5, 11];
  const x = randomArray(55, rand, 0.5, 3);
  const t = toTensor(x, shape);
  const cases: [string, E.Tensor, (v: number) => number][] = [
    ['add(x, 2.5)', E.add(t, 2.5), (v) => v + 2.5],
    ['sub(x, 0.75)', E.sub(t, 0.75), (v) => v - 0.75],
    ['sub(3, x)', E.sub(3, t), (v) => 3 - v],
    ['mul(x, -1.5)', E.mul(t, -1.5), (v) => v * -1.5],
    ['div(x, 4)', E.div(t, 4), (v) => v / 4],
    ['div(2, x)', E.div(2, t), (v) => 2 / v],
    ['maximum(x, 1.5)', E.maximum(t, 1.5), (v) => Math.max(v, 1.5)],
    ['minimum(x, 1.5)', E.minimum(t, 1.5), (v) => Math.min(v, 1.5)],
    ['pow(x, 2.5)', E.pow(t, 2.5), (v) => v ** 2.5],
  ];
  for (const [what, y, f] of cases) {
    assertShape(y.shape, shape, what);
    assertClose(await y.toArray(), x.map(f), 1e-5, 0, what);
  }
});

// Comparisons: values drawn from a small set so that ties (eq, le, ge) actually occur.
const comparisons: [string, (a: E.Tensor, b: E.Tensor | number) => E.Tensor, (x: number, y: number) => boolean][] = [
  ['lt', E.lt, (x, y) => x < y],
  ['le', E.le, (x, y) => x <= y],
  ['gt', E.gt, (x, y) => x > y],
  ['ge', E.ge, (x, y) => x >= y],
  ['eq', E.eq, (x, y) => x === y],
  ['ne', E.ne, (x, y) => x !== y],
];

for (const dtype of ['f32', 'i32', 'u32'] as const) {
  test(`comparisons on ${dtype} tensors (ties, broadcasting, number operand) give f32 masks`, async () => {
    const as = [4, 1, 9], bs = [5, 1];
    const draw = (n: number) =>
      Array.from({ length: n }, () => {
        const v = Math.floor(rand() * 7) - (dtype === 'u32' ? 0 : 3);
        return dtype === 'f32' ? v * 0.5 : dtype === 'i32' ? v * 1000003 : v * 2000003; // large integers stay exact
      });
    const a = draw(36), b = draw(5);
    const typed = (v: number[]) => (dtype === 'f32' ? Float32Array.from(v) : dtype === 'i32' ? Int32Array.from(v) : Uint32Array.from(v));
    const ta = E.tensor(typed(a), as), tb = E.tensor(typed(b), bs);
    for (const [name, op, f] of comparisons) {
      const ref = broadcastMap([{ data: a, shape: as }, { data: b, shape: bs }], (x, y) => (f(x, y) ? 1 : 0));
      const out = op(ta, tb);
      assert.is(out.dtype, 'f32');
      assertShape(out.shape, ref.shape, name);
      assertClose(await out.toArray(), ref.data, 0, 0, `${name} ${dtype}`);
      const s = b[0]!;
      assertClose(await op(ta, s).toArray(), a.map((x) => (f(x, s) ? 1 : 0)), 0, 0, `${name} ${dtype} with number ${s}`);
    }
  });
}

test('where selects with a broadcast condition, and number branches', async () => {
  const cs = [3, 1, 5], as = [4, 1], bs = [3, 4, 5];
  const c = Array.from({ length: 15 }, () => (rand() < 0.5 ? 0 : rand() < 0.5 ? 1 : -2.5)); // any nonzero is true
  const a = randomArray(4, rand), b = randomArray(60, rand);
  const ref = broadcastMap([{ data: c, shape: cs }, { data: a, shape: as }, { data: b, shape: bs }], (k, x, y) => (k !== 0 ? x : y));
  const out = E.where(toTensor(c, cs), toTensor(a, as), toTensor(b, bs));
  assertShape(out.shape, ref.shape, 'where');
  assertClose(await out.toArray(), ref.data, 0, 0, 'where');
  const scalars = E.where(toTensor(c, cs), 7, toTensor(b, bs));
  assertClose(await scalars.toArray(), broadcastMap([{ data: c, shape: cs }, { data: b, shape: bs }], (k, y) => (k !== 0 ? 7 : y)).data, 0, 0, 'where(c, 7, b)');
  const masked = E.where(E.gt(toTensor(b, bs), 0), toTensor(b, bs), 0); // relu by where
  assertClose(await masked.toArray(), b.map((v) => Math.max(v, 0)), 0, 0, 'where(b > 0, b, 0)');
});

test('large contiguous and broadcast inputs (more than one workgroup row)', async () => {
  const n = 70007;
  const a = randomArray(n, rand), b = randomArray(n, rand);
  const bias = randomArray(7, rand);
  const sum = E.add(toTensor(a, [n]), toTensor(b, [n]));
  assertClose(await sum.toArray(), a.map((v, i) => v + b[i]!), 1e-5, 0, 'add n=70007');
  const bc = E.mul(toTensor(a, [10001, 7]), toTensor(bias, [7]));
  assertClose(await bc.toArray(), a.map((v, i) => v * bias[i % 7]!), 1e-5, 0, 'mul [10001, 7] x [7]');
});

test('grid-stride sizes (1, odd, beyond the cap): binary contiguous and broadcast, comparisons, where; bit-identical under every grid policy', async () => {
  for (const n of gridStrideSizes()) {
    // Contiguous (binary.wgsl's CONTIGUOUS path), then [n, 1] x [3] and [1] x [n] (its strided path).
    const a = randomArray(n, rand, 0.5, 2), b = randomArray(n, rand, 0.5, 2), r3 = randomArray(3, rand, 0.5, 2);
    const ta = toTensor(a, [n]), tb = toTensor(b, [n]), t3 = toTensor(r3, [3]);
    for (const [name, op, f] of binaryCases) {
      assertClose(await sameUnderEveryGrid(`${name} n=${n}`, () => op(ta, tb)), a.map((v, i) => f(v, b[i]!)), 1e-5, 0, `${name} n=${n}`);
    }
    const outer = await sameUnderEveryGrid(`mul [n, 1] x [3] n=${n}`, () => E.mul(ta.reshape([n, 1]), t3));
    assertClose(outer, Float64Array.from({ length: 3 * n }, (_, i) => a[Math.floor(i / 3)]! * r3[i % 3]!), 1e-5, 0, `mul [${n}, 1] x [3]`);
    const one = toTensor([a[0]!], [1]);
    const sub1 = await sameUnderEveryGrid(`sub [1] - [n] n=${n}`, () => E.sub(one, tb));
    assertClose(sub1, b.map((v) => a[0]! - v), 1e-5, 0, `sub [1] - [${n}]`);
    const ints = E.tensor(Int32Array.from(a, (v) => Math.round(4 * v)), [n], 'i32');
    const intRef = Array.from(a, (v) => Math.round(4 * v));
    assertClose(await sameUnderEveryGrid(`ge i32 n=${n}`, () => E.ge(ints, 4)), intRef.map((v) => (v >= 4 ? 1 : 0)), 0, 0, `ge i32 n=${n}`);
    const cond = E.gt(ta, 1);
    const picked = await sameUnderEveryGrid(`where n=${n}`, () => E.where(cond, ta, tb));
    assertClose(picked, a.map((v, i) => (v > 1 ? v : b[i]!)), 0, 0, `where n=${n}`);
    const bcast = await sameUnderEveryGrid(`where broadcast n=${n}`, () => E.where(cond.reshape([n, 1]), t3, 0));
    assertClose(bcast, Float64Array.from({ length: 3 * n }, (_, i) => (a[Math.floor(i / 3)]! > 1 ? r3[i % 3]! : 0)), 0, 0, `where [n, 1] ? [3] : 0`);
    for (const t of [ta, tb, t3, one, ints, cond]) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Gradients

for (const [name, op, f] of binaryCases) {
  test(`${name} gradient (finite differences, broadcast both ways)`, async () => {
    const as = [3, 1, 5], bs = [4, 1];
    const w = weightsFor(3 * 4 * 5, rand);
    const positive = name === 'pow' || name === 'div';
    await gradCheck(
      ([a, b]) => E.sum(E.mul(op(a!, b!), toTensor(w, [3, 4, 5]))),
      ([a, b]) => dotRef(broadcastMap([{ data: a!, shape: as }, { data: b!, shape: bs }], f).data, w),
      [
        { data: randomArray(15, rand, positive ? 0.5 : -2, 2), shape: as },
        { data: randomArray(4, rand, positive ? 0.5 : -2, 2), shape: bs },
      ],
      { what: name },
    );
  });
}

test('maximum and minimum split the gradient evenly on ties', async () => {
  for (const [op, name] of [[E.maximum, 'maximum'], [E.minimum, 'minimum']] as const) {
    const a = E.tensor([1, 2, 3, 4]);
    const b = E.tensor([1, 5, 3, 0]);
    a.requiresGrad = b.requiresGrad = true;
    E.tidy(() => E.backward(E.sum(op(a, b))));
    const wins = name === 'maximum' ? [0.5, 0, 0.5, 1] : [0.5, 1, 0.5, 0];
    assertClose(await a.grad!.toArray(), wins, 0, 0, `${name} d/da`);
    assertClose(await b.grad!.toArray(), wins.map((v) => 1 - v), 0, 0, `${name} d/db`);
  }
});

test('where gradient flows to the chosen side only (broadcast branches)', async () => {
  const cs = [3, 4], as = [4], bs = [3, 1];
  const c = Array.from({ length: 12 }, () => (rand() < 0.5 ? 1 : 0));
  const w = weightsFor(12, rand);
  await gradCheck(
    ([a, b]) => E.sum(E.mul(E.where(toTensor(c, cs), a!, b!), toTensor(w, cs))),
    ([a, b]) =>
      dotRef(broadcastMap([{ data: c, shape: cs }, { data: a!, shape: as }, { data: b!, shape: bs }], (k, x, y) => (k ? x : y)).data, w),
    [{ data: randomArray(4, rand), shape: as }, { data: randomArray(3, rand), shape: bs }],
    { what: 'where' },
  );
});

test('pow with a scalar exponent: negative bases with integer exponents, zero, and its gradient', async () => {
  const x = [-2, -1.5, -0.5, 0, 0.5, 1.5, 2];
  for (const p of [0, 1, 2, 3, -1, -2, 0.5, 2.5]) {
    const expected = x.map((v) => v ** p); // NaN for negative bases with fractional p, as torch
    assertClose(await E.pow(E.tensor(x), p).toArray(), expected, 1e-5, 0, `pow(x, ${p})`);
  }
  for (const p of [2, 3, -1, 0.5, 1.7]) {
    const pos = p === -1 || p === 0.5 || p === 1.7; // keep fractional and negative powers on x > 0
    const data = randomArray(9, rand, pos ? 0.5 : -2, 2);
    const w = weightsFor(9, rand);
    await gradCheck(
      ([a]) => E.sum(E.mul(E.pow(a!, p), toTensor(w, [9]))),
      ([a]) => dotRef(a!.map((v) => v ** p), w),
      [{ data, shape: [9] }],
      { what: `pow(x, ${p})` },
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Errors

test('broadcasting errors name both shapes', () => {
  const a = E.zeros([3, 4]), b = E.zeros([5]);
  for (const op of [E.add, E.sub, E.mul, E.div, E.maximum, E.lt] as Binary[]) {
    assert.throws(() => op(a, b), /\[3, 4\].*\[5\]/);
  }
  assert.throws(() => E.where(E.zeros([2, 3]), a, b), /\[2, 3\].*\[3, 4\].*\[5\]/);
});

test('ranks above the kernels\' limit of 8 throw', () => {
  const big = E.zeros([1, 1, 1, 1, 1, 1, 1, 1, 2]);
  assert.throws(() => E.add(big, E.zeros([2])), /rank 9 exceeds the engine's limit of 8/);
  assert.throws(() => E.permute(big, [8, 7, 6, 5, 4, 3, 2, 1, 0]), /rank 9 exceeds/);
});

test('wrong dtypes throw', () => {
  const i = E.tensor(new Int32Array([1, 2, 3]));
  const f = E.tensor([1, 2, 3]);
  assert.throws(() => E.add(i, f), /add: expects an f32 tensor, got i32/);
  assert.throws(() => E.mul(f, i), /mul: expects an f32 tensor, got i32/);
  assert.throws(() => E.exp(i), /exp: expects an f32 tensor, got i32/);
  assert.throws(() => E.lt(i, f), /lt: dtypes differ \(i32 and f32\)/);
  assert.throws(() => E.where(i, f, f), /where: expects an f32 tensor, got i32/);
});

test.run();
