// Unary element-wise ops against float64 references (fresh random inputs of odd sizes, outputs
// poisoned with NaN first) and their gradients by finite differences.
//
// Tolerances: relative 1e-5. Functions whose WGSL precision is specified as an absolute error
// (log near 1, sin and cos, tanh and sigmoid via exp) also get an absolute 1e-6.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  TEST_SEED, assertClose, assertShape, dotRef, gradCheck, gridStrideSizes, randomArray, rng, sameUnderEveryGrid, setupEngine, toTensor, weightsFor,
  withGrid,
} from '../helpers.js';

const test = suite('unary');
const rand = rng(TEST_SEED);
test.before(setupEngine);

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

interface Case {
  name: string;
  op: (x: E.Tensor) => E.Tensor;
  f: (v: number) => number;
  /** Input range (avoid the kinks and the domain's edge for the gradient check). */
  lo: number;
  hi: number;
  atol?: number;
  /** Values that must be exact or well-behaved (extremes, kinks). */
  special?: number[];
  /** Derivative defined and continuous on [lo, hi]; false for relu/abs/clamp (tested away from kinks). */
  smooth?: boolean;
}

const cases: Case[] = [
  { name: 'neg', op: E.neg, f: (v) => -v, lo: -3, hi: 3, special: [0, -0, 1e30] },
  { name: 'exp', op: E.exp, f: Math.exp, lo: -5, hi: 5, special: [0, -80, 80] },
  { name: 'log', op: E.log, f: Math.log, lo: 0.05, hi: 20, atol: 1e-6, special: [1, 1e-30, 1e30] },
  { name: 'sqrt', op: E.sqrt, f: Math.sqrt, lo: 0.05, hi: 20, special: [0, 1, 4, 1e30] },
  { name: 'relu', op: E.relu, f: (v) => Math.max(v, 0), lo: -3, hi: 3, special: [0, -1e-30, 1e-30] },
  { name: 'abs', op: E.abs, f: Math.abs, lo: -3, hi: 3, special: [0, -1e30] },
  { name: 'clamp(-0.5, 0.75)', op: (x) => E.clamp(x, -0.5, 0.75), f: (v) => Math.min(Math.max(v, -0.5), 0.75), lo: -2, hi: 2, special: [-0.5, 0.75] },
  { name: 'clamp(low only)', op: (x) => E.clamp(x, 0.25), f: (v) => Math.max(v, 0.25), lo: -2, hi: 2 },
  // affine cancels near its zero (-1.5 v + 0.25 at v = 1/6): an absolute error of
  // float32 rounding of the terms (about 1e-7), however small the result.
  { name: 'affine(-1.5, 0.25)', op: (x) => E.affine(x, -1.5, 0.25), f: (v) => -1.5 * v + 0.25, lo: -3, hi: 3, atol: 1e-6, smooth: true },
  { name: 'mulScalar(3)', op: (x) => E.mulScalar(x, 3), f: (v) => 3 * v, lo: -3, hi: 3, smooth: true },
  { name: 'addScalar(-2)', op: (x) => E.addScalar(x, -2), f: (v) => v - 2, lo: -3, hi: 3, smooth: true },
  { name: 'square', op: E.square, f: (v) => v * v, lo: -3, hi: 3, smooth: true },
  { name: 'reciprocal', op: E.reciprocal, f: (v) => 1 / v, lo: 0.2, hi: 5, special: [1, -4, 1e-30] },
  { name: 'sigmoid', op: E.sigmoid, f: sigmoid, lo: -6, hi: 6, atol: 1e-6, special: [0, -100, 100, -1000, 1000] },
  { name: 'tanh', op: E.tanh, f: Math.tanh, lo: -4, hi: 4, atol: 1e-6, special: [0, -20, 20, -100, 100, -1000, 1000] },
  { name: 'sin', op: E.sin, f: Math.sin, lo: -3, hi: 3, atol: 1e-6, special: [0] },
  { name: 'cos', op: E.cos, f: Math.cos, lo: -3, hi: 3, atol: 1e-6, special: [0] },
];

for (const c of cases) {
  test(`${c.name} matches float64 (odd shape, special values)`, async () => {
    const shape = [3, 7, 11];
    const x = randomArray(231, rand, c.lo, c.hi);
    const y = c.op(toTensor(x, shape));
    assertShape(y.shape, shape, c.name);
    assertClose(await y.toArray(), x.map(c.f), 1e-5, c.atol ?? 0, c.name);
    if (c.special) {
      const s = c.special.map(Math.fround);
      assertClose(await c.op(toTensor(s, [s.length])).toArray(), s.map(c.f), 1e-5, c.atol ?? 0, `${c.name} at ${c.special}`);
    }
  });

  test(`${c.name} gradient (finite differences)`, async () => {
    const n = 13;
    const x = randomArray(n, rand, c.lo, c.hi);
    // Keep samples away from kinks (relu, abs at 0; clamp at its bounds).
    for (let i = 0; i < n; i++) {
      for (const k of [0, -0.5, 0.75, 0.25]) if (Math.abs(x[i]! - k) < 0.02) x[i] = Math.fround(x[i]! + 0.05);
    }
    const w = weightsFor(n, rand);
    await gradCheck(
      ([a]) => E.sum(E.mul(c.op(a!), toTensor(w, [n]))),
      ([a]) => dotRef(a!.map(c.f), w),
      [{ data: x, shape: [n] }],
      { what: c.name },
    );
  });
}

test('sign gives -1, 0, 1', async () => {
  const x = [-3, -1e-30, 0, 2e-30, 5];
  assertClose(await E.sign(E.tensor(x)).toArray(), x.map(Math.sign), 0, 0, 'sign');
});

test('relu and abs pass zero gradient at exactly 0; clamp passes gradient at its bounds', async () => {
  const x = E.tensor([0, 0.5, -0.5]);
  x.requiresGrad = true;
  E.tidy(() => E.backward(E.sum(E.relu(x))));
  assertClose(await x.grad!.toArray(), [0, 1, 0], 0, 0, 'relu grad');
  x.grad!.dispose();
  x.grad = null;
  E.tidy(() => E.backward(E.sum(E.abs(x))));
  assertClose(await x.grad!.toArray(), [0, 1, -1], 0, 0, 'abs grad');
  x.grad!.dispose();
  x.grad = null;
  E.tidy(() => E.backward(E.sum(E.clamp(x, -0.5, 0.5))));
  assertClose(await x.grad!.toArray(), [1, 1, 1], 0, 0, 'clamp grad at bounds');
});

test('a tensor larger than 65535 workgroups of 256 is fully written: grid-stride loops, and at one element per invocation a folded 2-D grid', async () => {
  const n = 65535 * 256 + 1001;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (i % 4093) - 2000;
  const t = E.tensor(x, [n]);
  for (const cap of [null, { maxGroups: 0, perInvocation: 1 }]) {
    const y = await withGrid(cap, () => E.affine(t, 2, 1));
    const v = await y.toArray();
    let bad = -1;
    for (let i = 0; i < n; i++) if (v[i] !== 2 * x[i]! + 1) { bad = i; break; }
    assert.is(bad, -1, `grid ${JSON.stringify(cap)}: element ${bad} is ${v[bad]}, expected ${2 * x[bad]! + 1}`);
    y.dispose();
  }
  t.dispose();
});

for (const c of cases) {
  test(`${c.name}: grid-stride sizes (1, odd, beyond the cap) match float64, bit-identical under every grid policy`, async () => {
    for (const n of gridStrideSizes()) {
      const x = toTensor(randomArray(n, rand, c.lo, c.hi), [n]);
      const xs = await x.toArray();
      const y = await sameUnderEveryGrid(`${c.name} n=${n}`, () => c.op(x));
      assertClose(y, Array.from(xs, c.f), 1e-5, c.atol ?? 0, `${c.name} n=${n}`);
      x.dispose();
    }
  });
}

test('empty tensors: unary ops give empty outputs', async () => {
  const y = E.exp(E.zeros([0, 3]));
  assertShape(y.shape, [0, 3], 'exp of [0, 3]');
  assert.is((await y.toArray()).length, 0);
});

test.run();
