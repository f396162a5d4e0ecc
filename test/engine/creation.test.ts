// Making tensors: from nested arrays and typed arrays, full/zeros/ones/arange, and the seeded
// counter-based random generators (reproducibility, independence of draws, moments, ranges).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { assertClose, assertShape, setupEngine } from '../helpers.js';
import { gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('creation');
test.before(setupEngine);

test('tensor() from nested arrays infers the shape; from typed arrays the dtype', async () => {
  const a = E.tensor([[1, 2, 3], [4, 5, 6]]);
  assertShape(a.shape, [2, 3], 'nested');
  assert.is(a.dtype, 'f32');
  assertClose(await a.toArray(), [1, 2, 3, 4, 5, 6], 0, 0, 'nested');
  const b = E.tensor([[[1.5], [-2]], [[3], [4]], [[5], [6]]]);
  assertShape(b.shape, [3, 2, 1], 'nested 3-D');
  const s = E.tensor(2.5);
  assertShape(s.shape, [], 'scalar');
  assert.is(await s.item(), 2.5);
  assertShape(E.tensor([]).shape, [0], 'empty');
  assertShape(E.tensor([[], []]).shape, [2, 0], 'empty rows');

  const f = E.tensor(new Float32Array([0.1, -2, 3e30]));
  assert.is(f.dtype, 'f32');
  assertClose(await f.toArray(), new Float32Array([0.1, -2, 3e30]), 0, 0, 'f32');
  const i = E.tensor(new Int32Array([-(2 ** 31), -1, 0, 2 ** 31 - 1, 16777217]), [5]);
  assert.is(i.dtype, 'i32');
  const iv = await i.toArray();
  assert.ok(iv instanceof Int32Array);
  assert.equal([...iv], [-(2 ** 31), -1, 0, 2 ** 31 - 1, 16777217]);
  const u = E.tensor(new Uint32Array([0, 1, 2 ** 32 - 1]));
  assert.is(u.dtype, 'u32');
  const uv = await u.toArray();
  assert.ok(uv instanceof Uint32Array);
  assert.equal([...uv], [0, 1, 2 ** 32 - 1]);

  const shaped = E.tensor(new Float32Array(12).map((_, k) => k), [3, 4]);
  assertShape(shaped.shape, [3, 4], 'typed array with shape');
  const asInt = E.tensor([[1, 2], [3, -4]], undefined, 'i32');
  assert.is(asInt.dtype, 'i32');
  assert.equal([...(await asInt.toArray())], [1, 2, 3, -4]);
});

test('tensor() rejects ragged arrays and data that does not fill the shape', () => {
  assert.throws(() => E.tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => E.tensor([[1, 2], 3]), /ragged/);
  assert.throws(() => E.tensor([1, [2, 3]]), /ragged/);
  assert.throws(() => E.tensor([[1], [[2]]]), /ragged/);
  assert.throws(() => E.tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => E.zeros([2, -1]), /invalid shape \[2, -1\]/);
  assert.throws(() => E.zeros([1.5]), /invalid shape/);
});

test('full, zeros, ones, zerosLike, onesLike for every dtype', async () => {
  for (const dtype of ['f32', 'i32', 'u32'] as const) {
    const z = E.zeros([3, 5], dtype);
    const o = E.ones([7], dtype);
    const v = dtype === 'f32' ? -2.75 : dtype === 'i32' ? -123456789 : 4000000000;
    const f = E.full([2, 3, 4], v, dtype);
    for (const [t, shape, value] of [[z, [3, 5], 0], [o, [7], 1], [f, [2, 3, 4], v]] as const) {
      assert.is(t.dtype, dtype);
      assertShape(t.shape, shape, `${dtype} ${value}`);
      assert.ok((await t.toArray()).every((x) => x === value), `${dtype} filled with ${value}`);
    }
    const zl = E.zerosLike(f);
    const ol = E.onesLike(f);
    assert.is(zl.dtype, dtype);
    assertShape(ol.shape, [2, 3, 4], 'onesLike');
    assert.ok((await zl.toArray()).every((x) => x === 0));
    assert.ok((await ol.toArray()).every((x) => x === 1));
  }
  assertShape(E.full([], 3).shape, [], 'full scalar');
  assert.is(await E.full([], 3).item(), 3);
});

test('arange for f32 and i32: one, two and three arguments, negative and fractional steps', async () => {
  const ref = (start: number, end: number, step: number) => {
    const out: number[] = [];
    for (let k = 0; start + k * step < end === step > 0 && start + k * step !== end; k++) out.push(start + k * step);
    return out;
  };
  const f32cases: [number, number | undefined, number | undefined, number[]][] = [
    [5, undefined, undefined, ref(0, 5, 1)],
    [2, 9, undefined, ref(2, 9, 1)],
    [-1, 1, 0.25, ref(-1, 1, 0.25)],
    [3, -2, -0.5, ref(3, -2, -0.5)],
    [0, 1, 0.3, [0, 0.3, 0.6, 0.9]],
    [4, 4, 1, []],
    [5, 2, 1, []],
  ];
  for (const [start, end, step, expected] of f32cases) {
    const t = E.arange(start, end, step);
    assert.is(t.dtype, 'f32');
    assertShape(t.shape, [expected.length], `arange(${start}, ${end}, ${step})`);
    assertClose(await t.toArray(), expected.map(Math.fround), 1e-6, 1e-7, `arange(${start}, ${end}, ${step})`);
  }
  const i = E.arange(-3, 10007, 1, 'i32');
  assert.is(i.dtype, 'i32');
  assertShape(i.shape, [10010], 'arange i32');
  const iv = await i.toArray();
  assert.ok(iv.every((v, k) => v === k - 3), 'arange(-3, 10007) i32 is exact');
  assert.equal([...(await E.arange(10, 0, -3, 'i32').toArray())], [10, 7, 4, 1]);
  assert.equal([...(await E.arange(7, undefined, 1, 'i32').toArray())], [0, 1, 2, 3, 4, 5, 6]);
  assert.throws(() => E.arange(0, 5, 0), /step must be finite and nonzero, got 0/);
});

// ---------------------------------------------------------------------------------------------
// Random numbers

async function moments(t: E.Tensor): Promise<{ mean: number; variance: number; min: number; max: number; values: Float32Array }> {
  const values = await t.toArray('f32');
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (const v of values) {
    s += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = s / values.length;
  for (const v of values) s2 += (v - mean) ** 2;
  return { mean, variance: s2 / (values.length - 1), min, max, values };
}

const sameValues = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => v === b[i]);
const countEqual = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).filter((v, i) => v === b[i]).length;

test('manualSeed: the same seed repeats the same draws; another seed and later draws differ', async () => {
  E.manualSeed(1234);
  const a1 = await E.rand([1001]).toArray();
  const a2 = await E.randn([3, 7]).toArray();
  E.manualSeed(1234);
  const b1 = await E.rand([1001]).toArray();
  const b2 = await E.randn([3, 7]).toArray();
  assert.ok(sameValues(a1, b1), 'rand repeats under the same seed');
  assert.ok(sameValues(a2, b2), 'randn repeats under the same seed');
  E.manualSeed(1235);
  const c1 = await E.rand([1001]).toArray();
  assert.ok(countEqual(a1, c1) < 5, 'a different seed gives different values');
  E.manualSeed(1234);
  await E.rand([1001]);
  const d = await E.rand([1001]).toArray();
  assert.ok(countEqual(a1, d) < 5, 'a second draw differs from the first');
});

test('Generator objects are independent of the default generator and of each other', async () => {
  const g1 = new E.Generator(7);
  const g2 = new E.Generator(7);
  const x1 = await E.randn([513], 0, 1, { generator: g1 }).toArray();
  E.manualSeed(99);
  await E.rand([100]); // draws from the default generator do not move g2
  const x2 = await E.randn([513], 0, 1, { generator: g2 }).toArray();
  assert.ok(sameValues(x1, x2), 'equal seeds, equal draws');
  const y1 = await E.randn([513], 0, 1, { generator: g1 }).toArray();
  assert.ok(countEqual(x1, y1) < 3, 'consecutive draws of one generator differ');
  assert.is(g1.offset, 1026, 'each draw advances the offset by its size');
  const h = await E.randn([513], 0, 1, { generator: new E.Generator(8) }).toArray();
  assert.ok(countEqual(x1, h) < 3, 'seed 8 differs from seed 7');
});

test('rand: 100k samples uniform in [0, 1) with mean 1/2 and variance 1/12', async () => {
  const m = await moments(E.rand([100003], 0, 1, { generator: new E.Generator(11) }));
  assert.ok(m.min >= 0 && m.max < 1, `range [${m.min}, ${m.max}]`);
  assert.ok(Math.abs(m.mean - 0.5) < 0.01, `mean ${m.mean}`);
  assert.ok(Math.abs(m.variance - 1 / 12) < 0.005, `variance ${m.variance}`);
  // Deciles hold about a tenth each.
  const bins = new Array(10).fill(0);
  for (const v of m.values) bins[Math.floor(v * 10)]++;
  for (const b of bins) assert.ok(Math.abs(b / 100003 - 0.1) < 0.01, `decile counts ${bins}`);
});

test('rand(low, high) stays in [low, high), even where float32 rounding would reach high', async () => {
  for (const [low, high] of [[-3, 5], [2, 2.5], [100, 101], [1e6, 1e6 + 1], [-1e6 - 1, -1e6]]) {
    const m = await moments(E.rand([100003], low, high, { generator: new E.Generator(3) }));
    assert.ok(m.min >= low && m.max < high, `rand(${low}, ${high}) range [${m.min}, ${m.max}]`);
    const mid = (low + high) / 2;
    assert.ok(Math.abs(m.mean - mid) < 0.02 * (high - low) + Math.abs(mid) * 1e-7, `rand(${low}, ${high}) mean ${m.mean}`);
  }
});

test('randn: 100k samples with mean 0 and std 1; mean and std arguments', async () => {
  const m = await moments(E.randn([100003], 0, 1, { generator: new E.Generator(5) }));
  assert.ok(Math.abs(m.mean) < 0.02, `mean ${m.mean}`);
  assert.ok(Math.abs(Math.sqrt(m.variance) - 1) < 0.02, `std ${Math.sqrt(m.variance)}`);
  assert.ok(m.values.every(Number.isFinite), 'all finite');
  // Tails: P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027.
  const beyond = (k: number) => m.values.filter((v) => Math.abs(v) > k).length / m.values.length;
  assert.ok(Math.abs(beyond(2) - 0.0455) < 0.004, `P(|z| > 2) = ${beyond(2)}`);
  assert.ok(Math.abs(beyond(3) - 0.0027) < 0.001, `P(|z| > 3) = ${beyond(3)}`);
  const s = await moments(E.randn([100003], 3, 0.5, { generator: new E.Generator(6) }));
  assert.ok(Math.abs(s.mean - 3) < 0.01, `mean ${s.mean}`);
  assert.ok(Math.abs(Math.sqrt(s.variance) - 0.5) < 0.01, `std ${Math.sqrt(s.variance)}`);
  // Neighbouring samples are uncorrelated.
  let c = 0;
  for (let i = 1; i < m.values.length; i++) c += (m.values[i]! - m.mean) * (m.values[i - 1]! - m.mean);
  const corr = c / (m.values.length - 1) / m.variance;
  assert.ok(Math.abs(corr) < 0.02, `lag-1 correlation ${corr}`);
});

test('grid-stride sizes (1, odd, beyond the policy): fill, arange, add_i32, rand, randn written in full, bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    assertClose(await sameUnderEveryGrid(`full n=${n}`, () => E.full([n], -2.5)), new Float64Array(n).fill(-2.5), 0, 0, `full n=${n}`);
    assertClose(await sameUnderEveryGrid(`arange f32 n=${n}`, () => E.arange(3, 3 + 0.5 * n, 0.5)), Float64Array.from({ length: n }, (_, i) => Math.fround(3 + i * 0.5)), 0, 0, `arange f32 n=${n}`);
    assertClose(await sameUnderEveryGrid(`arange i32 n=${n}`, () => E.arange(-7, n - 7, 1, 'i32')), Float64Array.from({ length: n }, (_, i) => i - 7), 0, 0, `arange i32 n=${n}`);
    const counted = await sameUnderEveryGrid(`addInPlaceInt n=${n}`, () => {
      const t = E.full([n], 40, 'i32');
      E.addInPlaceInt(t, -3);
      return t;
    });
    assertClose(counted, new Float64Array(n).fill(37), 0, 0, `addInPlaceInt n=${n}`);
    const u = await sameUnderEveryGrid(`rand n=${n}`, () => E.rand([n], -1, 3, { generator: new E.Generator(11, 5) }));
    assert.ok(u.every((v) => v >= -1 && v < 3), `rand n=${n} in [-1, 3)`);
    const z = await sameUnderEveryGrid(`randn n=${n}`, () => E.randn([n], 1, 2, { generator: new E.Generator(12, 9) }));
    assert.ok(z.every(Number.isFinite), `randn n=${n} finite`);
  }
});

test.run();
