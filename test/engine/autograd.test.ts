// The autodiff tape: accumulation across backward() calls, residual diamonds (each node's backward
// runs once), tensors used twice in one op, noGrad, errors, and backward's memory discipline
// (intermediate gradients and backward temporaries are freed as it goes).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { sizeClass } from '../../src/engine/buffer-pool.js';
import { runtime } from '../../src/engine/runtime.js';
import { TEST_SEED, assertClose, assertSameBits, bitsOf, dotRef, gradCheck, poolInUse, randomArray, rng, setupEngine, toTensor, weightsFor } from '../helpers.js';

const test = suite('autograd');
const rand = rng(TEST_SEED);
test.before(setupEngine);

function leaf(data: ArrayLike<number>, shape: number[]): E.Tensor {
  const t = toTensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** The identity, recorded as its own node whose backward counts its calls. */
function counted(x: E.Tensor, calls: Map<string, number>, name: string): E.Tensor {
  const y = E.noGrad(() => E.clone(x));
  return E.record(y, name, [x], (g) => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    return [g];
  });
}

test('gradients accumulate across two backward() calls', async () => {
  const x = randomArray(7, rand);
  const w = weightsFor(7, rand);
  const t = leaf(x, [7]);
  E.tidy(() => E.backward(E.sum(E.mul(t, toTensor(w, [7])))));
  E.tidy(() => E.backward(E.sum(E.square(t))));
  assertClose(await t.grad!.toArray(), x.map((v, i) => w[i]! + 2 * v), 1e-6, 1e-7, 'w + 2x');
});

test('a residual diamond chain: right gradient, each node backward runs once', async () => {
  // h_{k+1} = tanh(c_k(h_k)) + 0.5 * c_k(h_k) with c_k a counted identity used twice; 20 levels
  // would cost 2^20 backward calls if the walk followed every path separately.
  const depth = 20;
  const x = randomArray(5, rand, -1, 1);
  const t = leaf(x, [5]);
  const calls = new Map<string, number>();
  E.tidy(() => {
    let h = t;
    for (let k = 0; k < depth; k++) {
      const c = counted(h, calls, `c${k}`);
      h = E.add(E.tanh(c), E.mulScalar(c, 0.5));
    }
    E.backward(E.sum(h));
  });
  assert.is(calls.size, depth);
  for (const [name, n] of calls) assert.is(n, 1, `${name} ran ${n} times`);
  // Reference: derivative of the chain, element by element, in float64.
  const expected = x.map((v) => {
    let h = v, d = 1;
    for (let k = 0; k < depth; k++) {
      d *= 1 - Math.tanh(h) ** 2 + 0.5;
      h = Math.tanh(h) + 0.5 * h;
    }
    return d;
  });
  assertClose(await t.grad!.toArray(), expected, 1e-4, 0, 'diamond chain gradient');
});

test('a diamond with branches of different ops (finite differences)', async () => {
  const w = weightsFor(12, rand);
  const ref = ([a, b]: Float64Array[]) => {
    const y = a!.map((v, i) => {
      const u = v * b![i % 4]!; // u = a * b (broadcast)
      const s = Math.exp(u) + u * u + Math.sin(u); // three branches from u
      return s * u; // u reused again
    });
    return dotRef(y, w);
  };
  await gradCheck(
    ([a, b]) => {
      const u = E.mul(a!, b!);
      const s = E.add(E.add(E.exp(u), E.mul(u, u)), E.sin(u));
      return E.sum(E.mul(E.mul(s, u), toTensor(w, [3, 4])));
    },
    ref,
    [{ data: randomArray(12, rand, -1, 1), shape: [3, 4] }, { data: randomArray(4, rand, -1, 1), shape: [4] }],
    { what: 'diamond' },
  );
});

test('a tensor used twice in one op: add(a, a), mul(a, a), sub(a, a), div(a, a), maximum(a, a), concat([a, a])', async () => {
  const x = randomArray(6, rand, 0.5, 2);
  const cases: [string, (a: E.Tensor) => E.Tensor, (v: number) => number][] = [
    ['add(a, a)', (a) => E.add(a, a), () => 2],
    ['mul(a, a)', (a) => E.mul(a, a), (v) => 2 * v],
    ['sub(a, a)', (a) => E.sub(a, a), () => 0],
    ['div(a, a)', (a) => E.div(a, a), () => 0],
    ['maximum(a, a)', (a) => E.maximum(a, a), () => 1],
    ['concat([a, a])', (a) => E.concat([a, a]), () => 2],
    ['where(c, a, a)', (a) => E.where(E.gt(a, 1), a, a), () => 1],
    ['add(add(a, a), a)', (a) => E.add(E.add(a, a), a), () => 3],
  ];
  for (const [what, f, d] of cases) {
    const t = leaf(x, [6]);
    E.tidy(() => E.backward(E.sum(f(t))));
    assertClose(await t.grad!.toArray(), x.map(d), 1e-6, 1e-6, what);
    t.grad!.dispose();
    t.dispose();
  }
  // The same while `a` already has a gradient from another path in the same graph.
  const t = leaf(x, [6]);
  E.tidy(() => E.backward(E.sum(E.add(E.mulScalar(t, 3), E.add(t, t)))));
  assertClose(await t.grad!.toArray(), x.map(() => 5), 0, 0, '3a + (a + a)');
});

test('an op handing one tensor (g itself or another) to two inputs that already hold gradients', async () => {
  // twin(a, b) = a + b whose backward returns the same tensor for both inputs.
  const twin = (a: E.Tensor, b: E.Tensor, same: (g: E.Tensor) => E.Tensor) =>
    E.record(E.noGrad(() => E.add(a, b)), 'twin', [a, b], (g) => {
      const t = same(g);
      return [t, t];
    });
  for (const [what, same] of [['g itself', (g: E.Tensor) => g], ['a new tensor', (g: E.Tensor) => E.mulScalar(g, 1)]] as const) {
    const x = leaf([1, 2, 3], [3]);
    const base = poolInUse();
    // x reaches the loss directly and twice through twin: d/dx = 3 * 2 (the factor 2 from the mul).
    E.tidy(() => E.backward(E.sum(E.mulScalar(E.add(twin(x, x, same), x), 2))));
    assertClose(await x.grad!.toArray(), [6, 6, 6], 0, 0, what);
    x.grad!.dispose();
    assert.is(poolInUse(), base, `${what}: nothing left over`);
  }
});

test('one gradient for two inputs is shared, not copied: no dispatch, and each handle is disposed on its own', async () => {
  const x = leaf(randomArray(7, rand), [7]);
  const y = leaf(randomArray(7, rand), [7]);
  const gv = randomArray(7, rand);
  const gradOutput = toTensor(gv, [7]);
  const base = poolInUse();
  const z = E.add(x, y); // its backward hands g to both inputs
  const stream = runtime().stream;
  let before = stream.dispatchCount;
  E.noGrad(() => E.clone(gradOutput)).dispose();
  const copy = stream.dispatchCount - before;
  before = stream.dispatchCount;
  E.backward(z, { gradOutput });
  // Only backward's own copy of gradOutput; nothing for the second input.
  assert.is(stream.dispatchCount - before, copy, `dispatches in backward (a copy is ${copy})`);
  assert.is(poolInUse() - base, sizeClass(z.bytes) + sizeClass(x.bytes), 'z, and one buffer for both gradients');
  x.grad!.dispose();
  assertClose(await y.grad!.toArray(), gv, 0, 0, "y's gradient after x's was disposed");
  y.grad!.dispose();
  z.dispose();
  assert.is(poolInUse(), base, 'the shared buffer is freed with its last handle');
  for (const t of [x, y, gradOutput]) t.dispose();
});

test('only tensors that require gradients get them', async () => {
  const a = leaf([1, 2, 3], [3]);
  const b = toTensor([4, 5, 6], [3]);
  E.tidy(() => E.backward(E.sum(E.mul(a, b))));
  assertClose(await a.grad!.toArray(), [4, 5, 6], 0, 0, 'a');
  assert.is(b.grad, null);
  assert.is(b.requiresGrad, false);
});

test('backward with gradOutput on a non-scalar; a scalar leaf as its own loss', async () => {
  const x = randomArray(6, rand);
  const gOut = randomArray(6, rand);
  const t = leaf(x, [2, 3]);
  E.tidy(() => E.backward(E.mulScalar(t, 3), { gradOutput: toTensor(gOut, [2, 3]) }));
  assertClose(await t.grad!.toArray(), gOut.map((v) => 3 * v), 1e-6, 0, 'gradOutput');
  const s = leaf([2], []);
  E.backward(s);
  assert.is(await s.grad!.item(), 1);
});

test('noGrad records nothing and restores the previous mode (also after a throw and across awaits)', async () => {
  const a = leaf([1, 2], [2]);
  const y = E.noGrad(() => E.mul(E.exp(a), a));
  assert.is(y.requiresGrad, false);
  assert.is(y.node, null);
  assert.is(E.isGradEnabled(), true);
  E.noGrad(() => {
    E.noGrad(() => undefined);
    assert.is(E.isGradEnabled(), false, 'a nested noGrad leaves grad mode off');
  });
  assert.throws(() => E.noGrad(() => { throw new Error('boom'); }), /boom/);
  assert.is(E.isGradEnabled(), true, 'restored after a throw');
  const pending = E.noGrad(async () => {
    await Promise.resolve();
    return E.add(a, a);
  });
  assert.is(E.isGradEnabled(), false, 'off while the async function runs');
  const z = await pending;
  assert.is(z.requiresGrad, false, 'ops after an await inside noGrad are not recorded');
  assert.is(E.isGradEnabled(), true, 'restored when the promise settles');
  assert.throws(() => E.backward(E.sum(y)), /does not require a gradient/);
  assert.is(E.mul(a, 2).requiresGrad, true);
});

test('backward errors: non-scalar without gradOutput, wrong gradOutput shape, disposed intermediate', () => {
  const a = leaf([1, 2, 3, 4, 5, 6], [2, 3]);
  const y = E.mul(a, 2);
  assert.throws(() => E.backward(y), /backward\(\): needs a scalar, got shape \[2, 3\]; pass gradOutput/);
  assert.throws(() => E.backward(y, { gradOutput: E.ones([3, 2]) }), /gradOutput has shape \[3, 2\]/);
  const h = E.relu(a);
  const loss = E.sum(h);
  h.dispose();
  assert.throws(() => E.backward(loss), /disposed before backward/);
  assert.is(a.grad, null);
});

test('backward frees intermediate gradients and its temporaries as it goes', async () => {
  // A graph whose backward makes many temporaries (masks, broadcast products before sumTo).
  const x = leaf(randomArray(3 * 17, rand), [3, 17]);
  const w = leaf(randomArray(17, rand), [17]);
  const c = toTensor(randomArray(17, rand), [17]);
  E.startScope();
  let h = x;
  for (let k = 0; k < 6; k++) h = E.add(E.relu(E.mul(h, w)), E.clamp(E.mul(E.sub(h, c), 0.5), -0.5, 0.5));
  const loss = E.mean(E.maximum(h, 0.1));
  const before = poolInUse();
  E.backward(loss);
  const grew = poolInUse() - before;
  // Only the two leaf gradients remain.
  assert.is(grew, sizeClass(x.bytes) + sizeClass(w.bytes), `backward left ${grew} bytes in use`);
  E.endScope();
  for (const t of [x, w]) {
    t.grad!.dispose();
    t.dispose();
  }
});

test('backward with free: the same gradient bits, each intermediate freed once its node has run, the spared ones kept', async () => {
  const xs = randomArray(4 * 13, rand);
  const ws = randomArray(13, rand);
  const c = toTensor(randomArray(13, rand), [13]);
  // Gradients of x and w through a graph with a residual diamond, with and without `free`.
  const run = (free: boolean) => {
    const x = leaf(xs, [4, 13]);
    const w = leaf(ws, [13]);
    E.startScope();
    const inner: E.Tensor[] = [];
    let h = x;
    for (let k = 0; k < 4; k++) {
      const a = E.relu(E.mul(h, w));
      h = E.add(a, E.tanh(E.sub(h, c)));
      inner.push(a, h);
    }
    const logits = E.mulScalar(h, 2);
    const loss = E.mean(E.square(logits));
    const before = poolInUse();
    E.backward(loss, free ? { free: { except: [logits] } } : {});
    const freed = before - poolInUse() + sizeClass(x.bytes) + sizeClass(w.bytes); // leaf gradients aside
    const state = { freed, inner: inner.map((t) => t.isDisposed), logits: logits.isDisposed, loss: loss.isDisposed, leaves: [x, w].map((t) => t.isDisposed), c: c.isDisposed };
    E.endScope();
    return { x, w, state };
  };
  const plain = run(false);
  const freed = run(true);
  assert.equal(plain.state.inner, plain.state.inner.map(() => false), 'without free nothing of the graph is disposed');
  assert.equal(freed.state.inner, freed.state.inner.map(() => true), 'with free every intermediate is disposed');
  assert.equal([freed.state.logits, freed.state.loss, ...freed.state.leaves, freed.state.c], [false, false, false, false, false], 'the spared tensor, the loss, the leaves and a constant input stay');
  assert.ok(freed.state.freed >= 8 * sizeClass(4 * 13 * 4), `the intermediates' buffers went back to the pool (${freed.state.freed} bytes)`);
  for (const k of ['x', 'w'] as const) assertSameBits(await bitsOf(freed[k].grad!), await bitsOf(plain[k].grad!), `d loss / d ${k}`);
  for (const r of [plain, freed]) for (const t of [r.x, r.w]) { t.grad!.dispose(); t.dispose(); }
  c.dispose();
});

test('a training step inside tidy returns the pool to its baseline (leaf gradients aside)', async () => {
  const x = leaf(randomArray(5 * 9, rand), [5, 9]);
  const b = leaf(randomArray(9, rand), [9]);
  const labels = E.tensor(new Int32Array([1, 0, 8, 3, 3]));
  const base = poolInUse();
  for (let step = 0; step < 3; step++) {
    const loss = E.tidy(() => {
      const l = E.crossEntropy(E.tanh(E.add(x, b)), labels);
      E.backward(l);
      return l;
    });
    loss.dispose();
    for (const t of [x, b]) {
      t.grad!.dispose();
      t.grad = null;
    }
    assert.is(poolInUse(), base, `step ${step}`);
  }
});

test.run();
