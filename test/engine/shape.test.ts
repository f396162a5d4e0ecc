// Data-moving ops (permute, transpose, slice, concat, indexSelect, expand, clone, reshape,
// flatten) against index-by-index float64 references, on f32 and i32 data, and their gradients
// by finite differences.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  TEST_SEED, assertClose, assertShape, dotRef, gradCheck, randomArray, readAt, rng, setupEngine, sizeOf, tabulate, toTensor,
  weightsFor,
} from '../helpers.js';
import { gradientOf, gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('shape');
const rand = rng(TEST_SEED);
test.before(setupEngine);

// References: each output element read from its source position.
const permuteRef = (x: ArrayLike<number>, shape: number[], dims: number[]) => {
  const out = dims.map((a) => shape[a]!);
  return { shape: out, data: tabulate(out, (idx) => readAt(x, shape, shape.map((_, d) => idx[dims.indexOf(d)]!))) };
};
const sliceRef = (x: ArrayLike<number>, shape: number[], begin: number[], out: number[]) =>
  tabulate(out, (idx) => readAt(x, shape, idx.map((v, d) => v + begin[d]!)));
const concatRef = (pieces: { data: ArrayLike<number>; shape: number[] }[], axis: number) => {
  const shape = [...pieces[0]!.shape];
  shape[axis] = pieces.reduce((p, t) => p + t.shape[axis]!, 0);
  const data = tabulate(shape, (idx) => {
    let k = idx[axis]!;
    for (const t of pieces) {
      if (k < t.shape[axis]!) return readAt(t.data, t.shape, idx.map((v, d) => (d === axis ? k : v)));
      k -= t.shape[axis]!;
    }
    throw new Error('unreachable');
  });
  return { shape, data };
};
const indexSelectRef = (x: ArrayLike<number>, shape: number[], axis: number, index: number[]) => {
  const out = shape.map((d, i) => (i === axis ? index.length : d));
  return { shape: out, data: tabulate(out, (idx) => readAt(x, shape, idx.map((v, d) => (d === axis ? index[v]! : v)))) };
};
const expandRef = (x: ArrayLike<number>, shape: number[], out: number[]) =>
  tabulate(out, (idx) => readAt(x, shape, idx.slice(out.length - shape.length).map((v, d) => (shape[d] === 1 ? 0 : v))));

/** Random i32 data (large values: shape ops copy raw words and must not round through f32). */
const intData = (n: number) => Array.from({ length: n }, () => Math.floor((rand() - 0.5) * 2 ** 31));

test('permute and transpose match the reference (f32 and i32)', async () => {
  const shape = [2, 3, 5, 7];
  const x = randomArray(210, rand);
  const xi = intData(210);
  const t = toTensor(x, shape);
  const ti = E.tensor(Int32Array.from(xi), shape);
  for (const dims of [[0, 1, 2, 3], [3, 2, 1, 0], [0, 2, 1, 3], [1, 3, 0, 2], [2, 0, 3, 1]]) {
    const ref = permuteRef(x, shape, dims);
    const y = E.permute(t, dims);
    assertShape(y.shape, ref.shape, `permute ${dims}`);
    assertClose(await y.toArray(), ref.data, 0, 0, `permute ${dims}`);
    const yi = E.permute(ti, dims);
    assert.is(yi.dtype, 'i32');
    assertClose(await yi.toArray(), permuteRef(xi, shape, dims).data, 0, 0, `permute i32 ${dims}`);
  }
  assertClose(await E.transpose(t).toArray(), permuteRef(x, shape, [0, 1, 3, 2]).data, 0, 0, 'transpose default');
  assertClose(await E.transpose(t, 0, -2).toArray(), permuteRef(x, shape, [2, 1, 0, 3]).data, 0, 0, 'transpose(0, -2)');
  const m = randomArray(13 * 29, rand);
  assertClose(await E.transpose(toTensor(m, [13, 29])).toArray(), permuteRef(m, [13, 29], [1, 0]).data, 0, 0, 'matrix transpose');
  assert.throws(() => E.permute(t, [0, 1, 1, 2]), /not a permutation/);
});

test('slice with positive, negative and clamped bounds', async () => {
  const shape = [5, 6, 7];
  const x = randomArray(210, rand);
  const t = toTensor(x, shape);
  const cases: [number[], number[], number[], number[]][] = [
    // starts, ends, resolved begin, resolved shape
    [[1, 2, 3], [4, 5, 6], [1, 2, 3], [3, 3, 3]],
    [[-3, 0, -7], [-1, 6, -2], [2, 0, 0], [2, 6, 5]],
    [[2], [3], [2, 0, 0], [1, 6, 7]],
    [[0, -100, 5], [100, 3, 100], [0, 0, 5], [5, 3, 2]],
    [[3, 0, 0], [2, 6, 7], [3, 0, 0], [0, 6, 7]],
  ];
  for (const [starts, ends, begin, out] of cases) {
    const y = E.slice(t, starts, ends);
    assertShape(y.shape, out, `slice ${starts}:${ends}`);
    assertClose(await y.toArray(), sliceRef(x, shape, begin, out), 0, 0, `slice ${starts}:${ends}`);
  }
  const xi = intData(210);
  assertClose(await E.slice(E.tensor(Int32Array.from(xi), shape), [1, -2], [-1, 6]).toArray(), sliceRef(xi, shape, [1, 4, 0], [3, 2, 7]), 0, 0, 'slice i32');
});

test('concat of three pieces along the first, a middle and the last axis', async () => {
  for (const axis of [0, 1, 2, -2]) {
    const a = axis < 0 ? axis + 3 : axis;
    const sizes = [2, 5, 3];
    const pieces = sizes.map((k) => {
      const shape = [4, 3, 6];
      shape[a] = k;
      return { shape, data: randomArray(sizeOf(shape), rand) };
    });
    const ref = concatRef(pieces, a);
    const y = E.concat(pieces.map((p) => toTensor(p.data, p.shape)), axis);
    assertShape(y.shape, ref.shape, `concat axis ${axis}`);
    assertClose(await y.toArray(), ref.data, 0, 0, `concat axis ${axis}`);
  }
  const ints = [[2, 3], [1, 3], [4, 3]].map((shape) => ({ shape, data: intData(sizeOf(shape)) }));
  const yi = E.concat(ints.map((p) => E.tensor(Int32Array.from(p.data), p.shape)), 0);
  assert.is(yi.dtype, 'i32');
  assertClose(await yi.toArray(), concatRef(ints, 0).data, 0, 0, 'concat i32');
  assert.throws(() => E.concat([E.zeros([2, 3]), E.zeros([2, 4])], 0), /\[2, 4\].*does not match \[2, 3\]/);
  assert.throws(() => E.concat([E.zeros([2, 3]), E.zeros([2, 3], 'i32')], 0), /does not match/);
});

test('indexSelect: a permutation along axis 1 of a 4-D tensor, repeated indices, i32 data', async () => {
  const shape = [3, 7, 4, 5];
  const x = randomArray(sizeOf(shape), rand);
  const t = toTensor(x, shape);
  const perm = [...Array(7).keys()].sort(() => rand() - 0.5);
  const cases: [number, number[]][] = [
    [1, perm],
    [1, [6, 0, 0, 3, 6, 6, 1, 2, 2, 5, 4]],
    [0, [2, 2, 0]],
    [3, [4, 0]],
    [-1, [1, 1, 1, 1, 1, 1]],
  ];
  for (const [axis, index] of cases) {
    const a = axis < 0 ? axis + 4 : axis;
    const ref = indexSelectRef(x, shape, a, index);
    const y = E.indexSelect(t, axis, E.tensor(Int32Array.from(index)));
    assertShape(y.shape, ref.shape, `indexSelect axis ${axis} [${index}]`);
    assertClose(await y.toArray(), ref.data, 0, 0, `indexSelect axis ${axis} [${index}]`);
  }
  const xi = intData(sizeOf(shape));
  const yi = E.indexSelect(E.tensor(Int32Array.from(xi), shape), 1, E.tensor(Int32Array.from(perm)));
  assertClose(await yi.toArray(), indexSelectRef(xi, shape, 1, perm).data, 0, 0, 'indexSelect i32');
  assert.throws(() => E.indexSelect(t, 1, E.tensor([0, 1])), /index must be a 1-D i32 tensor/);
});

test('expand broadcasts (materialized), and rejects shapes it cannot reach', async () => {
  const cases: [number[], number[]][] = [
    [[3, 1], [3, 5]],
    [[5], [2, 3, 5]],
    [[1, 4, 1], [2, 3, 4, 7]],
    [[], [3, 2]],
    [[2, 3], [2, 3]],
  ];
  for (const [from, to] of cases) {
    const x = randomArray(sizeOf(from), rand);
    const y = E.expand(toTensor(x, from), to);
    assertShape(y.shape, to, `expand [${from}] to [${to}]`);
    assertClose(await y.toArray(), expandRef(x, from, to), 0, 0, `expand [${from}] to [${to}]`);
  }
  assert.throws(() => E.expand(E.zeros([3, 2]), [3, 4]), /\[3, 2\] cannot broadcast to \[3, 4\]|do not broadcast/);
  assert.throws(() => E.expand(E.zeros([2, 3]), [3]), /cannot broadcast to \[3\]/);
});

test('clone copies into a buffer of its own; reshape and flatten are views with the same data', async () => {
  const x = randomArray(60, rand);
  const t = toTensor(x, [3, 4, 5]);
  const c = E.clone(t);
  assert.is.not(c.buffer, t.buffer);
  assertClose(await c.toArray(), x, 0, 0, 'clone');
  const r = E.reshape(t, [5, -1]);
  assertShape(r.shape, [5, 12], 'reshape -1');
  assert.is(r.buffer, t.buffer);
  assertClose(await r.toArray(), x, 0, 0, 'reshape');
  assertShape(E.flatten(t).shape, [3, 20], 'flatten');
  assertShape(E.flatten(t, 0).shape, [60], 'flatten(0)');
  assertShape(E.flatten(t, -1).shape, [3, 4, 5], 'flatten(-1)');
  t.dispose();
  assertClose(await r.toArray(), x, 0, 0, 'a reshape keeps the buffer alive after its source is disposed');
  assertClose(await c.toArray(), x, 0, 0, 'a clone is independent of its source');
  assert.throws(() => E.reshape(c, [7, -1]), /cannot reshape 60 elements into \[7, -1\]/);
});

// ---------------------------------------------------------------------------------------------
// Gradients

test('permute and transpose gradients', async () => {
  const shape = [2, 3, 4];
  for (const dims of [[2, 0, 1], [1, 2, 0], [0, 2, 1]]) {
    const w = weightsFor(24, rand);
    await gradCheck(
      ([a]) => E.sum(E.mul(E.permute(a!, dims), toTensor(w, dims.map((d) => shape[d]!)))),
      ([a]) => dotRef(permuteRef(a!, shape, dims).data, w),
      [{ data: randomArray(24, rand), shape }],
      { what: `permute ${dims}` },
    );
  }
});

test('slice gradient (negative bounds)', async () => {
  const shape = [4, 5, 3];
  const w = weightsFor(2 * 3 * 2, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(E.slice(a!, [1, -4, -2], [3, -1, 3]), toTensor(w, [2, 3, 2]))),
    ([a]) => dotRef(sliceRef(a!, shape, [1, 1, 1], [2, 3, 2]), w),
    [{ data: randomArray(60, rand), shape }],
    { what: 'slice' },
  );
});

test('concat gradient (three pieces, middle axis)', async () => {
  const shapes = [[2, 1, 3], [2, 4, 3], [2, 2, 3]];
  const w = weightsFor(2 * 7 * 3, rand);
  await gradCheck(
    (ts) => E.sum(E.mul(E.concat(ts, 1), toTensor(w, [2, 7, 3]))),
    (arrs) => dotRef(concatRef(arrs.map((data, i) => ({ data, shape: shapes[i]! })), 1).data, w),
    shapes.map((shape) => ({ data: randomArray(sizeOf(shape), rand), shape })),
    { what: 'concat' },
  );
});

test('indexSelect gradient (permutation and repeated indices on axis 1 of a 4-D tensor)', async () => {
  const shape = [2, 5, 3, 2];
  for (const index of [[3, 0, 4, 1, 2], [4, 4, 0, 2, 4, 0, 1]]) {
    const outShape = [2, index.length, 3, 2];
    const w = weightsFor(sizeOf(outShape), rand);
    await gradCheck(
      ([a]) => E.sum(E.mul(E.indexSelect(a!, 1, E.tensor(Int32Array.from(index))), toTensor(w, outShape))),
      ([a]) => dotRef(indexSelectRef(a!, shape, 1, index).data, w),
      [{ data: randomArray(60, rand), shape }],
      { what: `indexSelect [${index}]` },
    );
  }
});

test('expand, clone, reshape and flatten gradients', async () => {
  const w = weightsFor(2 * 3 * 4 * 5, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(E.expand(a!, [2, 3, 4, 5]), toTensor(w, [2, 3, 4, 5]))),
    ([a]) => dotRef(expandRef(a!, [3, 1, 5], [2, 3, 4, 5]), w),
    [{ data: randomArray(15, rand), shape: [3, 1, 5] }],
    { what: 'expand' },
  );
  const v = weightsFor(24, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(E.flatten(E.reshape(E.clone(a!), [4, -1, 2])), toTensor(v, [4, 6]))),
    ([a]) => dotRef(a!, v),
    [{ data: randomArray(24, rand), shape: [2, 3, 4] }],
    { what: 'clone, reshape, flatten' },
  );
});

test('grid-stride sizes (1, odd, beyond the policy): gather (clone, transpose, slice), scatter (concat), indexSelect and its backward, bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    const a = randomArray(3 * n, rand);
    const x = toTensor(a, [n, 3]);
    assertClose(await sameUnderEveryGrid(`clone n=${n}`, () => E.clone(x)), a, 0, 0, `clone n=${n}`);
    const tr = await sameUnderEveryGrid(`transpose n=${n}`, () => E.transpose(x));
    assertClose(tr, Float64Array.from({ length: 3 * n }, (_, i) => a[(i % n) * 3 + Math.floor(i / n)]!), 0, 0, `transpose [${n}, 3]`);
    const sl = await sameUnderEveryGrid(`slice n=${n}`, () => E.slice(x, [0, 1], [n, 3]));
    assertClose(sl, Float64Array.from({ length: 2 * n }, (_, i) => a[Math.floor(i / 2) * 3 + 1 + (i % 2)]!), 0, 0, `slice [${n}, 1:3]`);
    const cat = await sameUnderEveryGrid(`concat n=${n}`, () => E.concat([x, x], 1));
    assertClose(cat, Float64Array.from({ length: 6 * n }, (_, i) => a[Math.floor(i / 6) * 3 + ((i % 6) % 3)]!), 0, 0, `concat [${n}, 6]`);
    const order = [2, 0, 2, 1];
    const idx = E.tensor(Int32Array.from(order), [4], 'i32');
    const sel = await sameUnderEveryGrid(`indexSelect n=${n}`, () => E.indexSelect(x, 1, idx));
    assertClose(sel, Float64Array.from({ length: 4 * n }, (_, i) => a[Math.floor(i / 4) * 3 + order[i % 4]!]!), 0, 0, `indexSelect [${n}, 3] -> [${n}, 4]`);
    const wv = randomArray(4 * n, rand);
    const w = toTensor(wv, [n, 4]);
    const g = await sameUnderEveryGrid(`indexSelect backward n=${n}`, () => gradientOf(x, w, (t) => E.indexSelect(t, 1, idx)));
    const ref = new Float64Array(3 * n);
    for (let i = 0; i < 4 * n; i++) ref[Math.floor(i / 4) * 3 + order[i % 4]!] += wv[i]!;
    assertClose(g, ref, 1e-6, 0, `indexSelect backward n=${n}`);
    for (const t of [x, idx, w]) t.dispose();
  }
});

test.run();
