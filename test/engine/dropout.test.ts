// Dropout: the mask is reproducible from the generator's seed and equals rand() >= p for the same
// counters; about p of the entries are dropped and the rest scaled by 1 / (1 - p); evaluation is
// the identity; the backward pass applies the forward's mask.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertClose, gradCheck, randomArray, rng, setupEngine, sizeOf, toTensor, weightsFor } from '../helpers.js';
import { gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('dropout');
const rand = rng(TEST_SEED);
test.before(setupEngine);

const SHAPE = [3, 5, 7, 9];
const N = sizeOf(SHAPE);

/** x drawn away from 0, so a zero in the output means a dropped element. */
function nonZeroInput(n: number): Float64Array {
  return Float64Array.from(randomArray(n, rand, 0.5, 2), (v) => (rand() < 0.5 ? -v : v));
}

async function run(x: Float64Array, shape: number[], p: number, seed: number): Promise<Float32Array> {
  return await E.dropout(toTensor(x, shape), p, { generator: new E.Generator(seed) }).toArray('f32');
}

test('kept entries are scaled by 1 / (1 - p); about p of them are dropped', async () => {
  for (const p of [0.1, 0.5, 0.8]) {
    const shape = [37, 5, 11, 13]; // 26455 elements: the drop rate's standard error is < 0.0031
    const x = nonZeroInput(sizeOf(shape));
    const y = await run(x, shape, p, TEST_SEED);
    const scale = Math.fround(1 / (1 - p));
    let dropped = 0;
    y.forEach((v, i) => {
      if (v === 0) dropped++;
      else if (v !== Math.fround(x[i]! * scale)) assert.unreachable(`p ${p}: element ${i} is ${v}, expected ${x[i]! * scale} (seed ${TEST_SEED})`);
    });
    const rate = dropped / y.length;
    assert.ok(Math.abs(rate - p) < 0.02, `p ${p}: drop rate ${rate} (seed ${TEST_SEED})`);
  }
});

test('the same seed gives the same mask; another seed or a later draw a different one', async () => {
  const x = nonZeroInput(N);
  const a = await run(x, SHAPE, 0.5, 7);
  const b = await run(x, SHAPE, 0.5, 7);
  const c = await run(x, SHAPE, 0.5, 8);
  assert.equal(Array.from(a), Array.from(b));
  const differ = (u: Float32Array, v: Float32Array) => u.filter((_, i) => (u[i] === 0) !== (v[i] === 0)).length;
  assert.ok(differ(a, c) > N / 4, 'seeds 7 and 8 give different masks');
  // One generator advances between calls: two layers (or two steps) get different masks.
  const g = new E.Generator(7);
  const first = await E.dropout(toTensor(x, SHAPE), 0.5, { generator: g }).toArray('f32');
  const second = await E.dropout(toTensor(x, SHAPE), 0.5, { generator: g }).toArray('f32');
  assert.equal(Array.from(first), Array.from(a));
  assert.ok(differ(first, second) > N / 4, 'consecutive draws differ');
});

test('the mask is rand() >= p for the same generator state (the hash matches random.wgsl)', async () => {
  const x = nonZeroInput(N);
  const p = 0.3;
  const y = await run(x, SHAPE, p, 1234);
  const u = await E.rand(SHAPE, 0, 1, { generator: new E.Generator(1234) }).toArray();
  y.forEach((v, i) => assert.is(v !== 0, u[i]! >= p, `element ${i}: output ${v}, uniform ${u[i]}`));
});

test('evaluation mode and p = 0 are the identity; p = 1 drops everything', async () => {
  const x = toTensor(nonZeroInput(N), SHAPE);
  assert.is(E.dropout(x, 0.5, { training: false }), x);
  assert.is(E.dropout(x, 0, { generator: new E.Generator(1) }), x);
  const all = await E.dropout(x, 1, { generator: new E.Generator(1) }).toArray();
  assert.ok(all.every((v) => v === 0));
  assert.throws(() => E.dropout(x, 1.5), /not in \[0, 1\]/);
});

test('the gradient uses the forward mask (finite differences with the same seed)', async () => {
  const p = 0.4;
  const seed = TEST_SEED % 100000;
  const x = nonZeroInput(N);
  const out = await run(x, SHAPE, p, seed);
  const mask = Float64Array.from(out, (v) => (v === 0 ? 0 : 1 / (1 - p)));
  const w = weightsFor(N, rand);
  // The engine's forward and backward each run with a fresh generator of the same seed; the
  // reference applies the mask read from the first run.
  await gradCheck(
    ([t]) => E.sum(E.mul(E.dropout(t!, p, { generator: new E.Generator(seed) }), toTensor(w, SHAPE))),
    ([t]) => t!.reduce((s, v, i) => s + v * mask[i]! * w[i]!, 0),
    [{ data: x, shape: SHAPE }],
    { what: 'dropout' },
  );
  // And directly: the gradient is zero exactly where the output was.
  const xt = toTensor(x, SHAPE);
  xt.requiresGrad = true;
  const y = E.dropout(xt, p, { generator: new E.Generator(seed) });
  E.backward(y, { gradOutput: toTensor(new Float64Array(N).fill(1), SHAPE) });
  const grad = await xt.grad!.toArray();
  assertClose(grad, mask, 1e-6, 0, 'gradient of sum');
  xt.grad!.dispose();
});

test('grid-stride sizes (1, odd, beyond the policy): the mask is rand() >= p and bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    const xv = nonZeroInput(n);
    const x = toTensor(xv, [n]);
    const y = await sameUnderEveryGrid(`dropout n=${n}`, () => E.dropout(x, 0.3, { generator: new E.Generator(21, 4) }));
    const u = await E.rand([n], 0, 1, { generator: new E.Generator(21, 4) }).toArray();
    assertClose(y, Float64Array.from(xv, (v, i) => (u[i]! >= 0.3 ? Math.fround(v * Math.fround(1 / 0.7)) : 0)), 0, 0, `dropout n=${n}`);
    x.dispose();
  }
});

test.run();
