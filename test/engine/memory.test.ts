// Tensor lifetimes and GPU memory: dispose, use after dispose, reshape views sharing a buffer,
// tidy/keep/nested scopes (measured through the pool's inUse), and a 500-step training loop whose
// memory must stay flat. Device limits: a tensor larger than the adapter can bind is refused before
// any buffer is created, and a size class never rounds past the limit.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { BufferPool, DeviceLimitError, sizeClass } from '../../src/engine/buffer-pool.js';
import { runtime } from '../../src/engine/runtime.js';
import { TEST_SEED, poolInUse, randomArray, rng, setupEngine, toTensor } from '../helpers.js';

const test = suite('memory');
const rand = rng(TEST_SEED);
test.before(setupEngine);

test('dispose frees the buffer once; disposing twice is safe', () => {
  const base = poolInUse();
  const t = E.zeros([3, 100]);
  assert.is(poolInUse() - base, sizeClass(1200));
  t.dispose();
  assert.is(poolInUse(), base);
  t.dispose();
  assert.is(poolInUse(), base, 'a second dispose releases nothing');
  assert.ok(t.isDisposed);
});

test('using a disposed tensor throws a clear error', async () => {
  const t = E.ones([2, 3]);
  t.dispose();
  assert.throws(() => t.buffer, /tensor \[2, 3\] used after dispose\(\)/);
  assert.throws(() => E.add(t, t), /used after dispose/);
  assert.throws(() => E.exp(t), /used after dispose/);
  assert.throws(() => E.sum(t), /used after dispose/);
  assert.throws(() => t.reshape([6]), /disposed/);
  try {
    await t.toArray();
    assert.unreachable('toArray of a disposed tensor resolved');
  } catch (e) {
    assert.match((e as Error).message, /used after dispose/);
  }
});

test('reshape views share the buffer, which is freed with the last of them', async () => {
  const base = poolInUse();
  const t = toTensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const v = t.reshape([3, -1]);
  const w = E.reshape(v, [-1]);
  assert.equal([...v.shape], [3, 2]);
  assert.equal([...w.shape], [6]);
  assert.is(poolInUse() - base, 256, 'one buffer for three tensors');
  t.dispose();
  v.dispose();
  assert.equal([...(await w.toArray())], [1, 2, 3, 4, 5, 6]);
  w.dispose();
  assert.is(poolInUse(), base);
  assert.throws(() => E.zeros([2, 3]).reshape([4, -1]), /cannot reshape 6 elements into \[4, -1\]/);
  assert.throws(() => E.zeros([2, 3]).reshape([-1, -1]), /cannot reshape/);
  assert.equal([...E.zeros([0, 3]).reshape([-1, 3]).shape], [0, 3]);
});

test('tidy frees what it does not return; returned tensors and kept ones survive', async () => {
  const base = poolInUse();
  const x = toTensor([1, 2, 3], [3]);
  const afterX = poolInUse();
  let kept: E.Tensor | null = null;
  const y = E.tidy(() => {
    const a = E.exp(x);
    const b = E.mul(a, a);
    kept = E.keep(E.add(b, 1));
    return E.sum(b);
  });
  assert.is(poolInUse() - afterX, 2 * 256, 'the result and the kept tensor remain');
  assert.ok(!x.isDisposed, 'an input made outside the scope survives');
  assert.ok(kept!.kept);
  const expected = [1, 2, 3].reduce((s, v) => s + Math.exp(2 * v), 0);
  assert.ok(Math.abs((await y.item()) - expected) < 1e-5 * expected);
  for (const t of [x, y, kept!]) t.dispose();
  assert.is(poolInUse(), base);
});

test('tidy returns arrays, objects and maps of tensors; nested scopes hand results outward', () => {
  const base = poolInUse();
  const out = E.tidy(() => {
    const inner = E.tidy(() => {
      E.zeros([10]); // freed by the inner scope
      return { a: E.ones([3]), list: [E.ones([4]), E.ones([5])] };
    });
    E.zeros([11]); // freed by the outer scope
    const m = new Map([['m', E.ones([6])]]);
    return [inner, m] as const;
  });
  assert.is(poolInUse() - base, 4 * 256, 'the four returned tensors remain');
  const [inner, m] = out;
  for (const t of [inner.a, ...inner.list, m.get('m')!]) assert.ok(!t.isDisposed);
  // A tensor returned by the inner scope belongs to the outer one, which frees it unless returned.
  let escaped: E.Tensor | null = null;
  E.tidy(() => {
    escaped = E.tidy(() => E.ones([7]));
  });
  assert.ok(escaped!.isDisposed, 'freed by the enclosing scope');
  for (const t of [inner.a, ...inner.list, m.get('m')!]) t.dispose();
  assert.is(poolInUse(), base);
});

test('tidy frees its tensors when the function throws, and rejects async functions', () => {
  const base = poolInUse();
  assert.throws(
    () =>
      E.tidy(() => {
        E.zeros([100]);
        throw new Error('inside');
      }),
    /inside/,
  );
  assert.is(poolInUse(), base);
  assert.throws(() => E.tidy((async () => E.zeros([1])) as never), /synchronous function/);
  assert.throws(() => E.endScope(), /endScope\(\) without startScope\(\)/);
});

test('startScope/endScope around awaits', async () => {
  const base = poolInUse();
  E.startScope();
  const a = E.rand([33]);
  await a.toArray();
  const b = E.mulScalar(a, 2);
  E.endScope(b);
  assert.ok(a.isDisposed);
  assert.ok(!b.isDisposed);
  b.dispose();
  assert.is(poolInUse(), base);
});

test('forward ops in noGrad leave only their output allocated (no leaked temporaries)', () => {
  const x = toTensor(randomArray(4 * 9, rand), [4, 9]);
  const labels = E.tensor(new Int32Array([0, 8, 2, 2]));
  const long = E.rand([100003]);
  const ops: [string, () => E.Tensor][] = [
    ['mean', () => E.mean(x, 1)],
    ['logSoftmax', () => E.logSoftmax(x)],
    ['softmax', () => E.softmax(x)],
    ['crossEntropy', () => E.crossEntropy(x, labels)],
    ['maximum(x, 0)', () => E.maximum(x, 0)],
    ['lt(x, 0)', () => E.lt(x, 0)],
    ['where(c, x, 0)', () => E.where(x, x, 0)],
    ['div(1, x)', () => E.div(1, x)],
    ['sub(1, x)', () => E.sub(1, x)],
    ['clamp', () => E.clamp(x, -0.5, 0.5)],
    ['max', () => E.max(x, 0)],
    ['sum (two-pass)', () => E.sum(long)],
    ['argmax', () => E.argmax(x, 1)],
  ];
  E.noGrad(() => {
    for (const [name, f] of ops) {
      const base = poolInUse();
      const y = f();
      assert.is(poolInUse() - base, sizeClass(y.bytes), `${name} holds ${poolInUse() - base - sizeClass(y.bytes)} extra bytes`);
      y.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A training loop must hold its GPU memory flat.

test('500 SGD steps of a 2-layer MLP: inUse returns to one value each step, the pool stops growing', async () => {
  const rt = E.runtime();
  const [n, inputs, hidden, classes] = [13, 7, 17, 5];
  const x = E.keep(toTensor(randomArray(n * inputs, rand), [n, inputs]));
  const y = E.keep(E.tensor(Int32Array.from({ length: n }, () => Math.floor(rand() * classes))));
  let params = [
    toTensor(randomArray(inputs * hidden, rand, -0.5, 0.5), [inputs, hidden]),
    toTensor(randomArray(hidden, rand, -0.1, 0.1), [hidden]),
    toTensor(randomArray(hidden * classes, rand, -0.5, 0.5), [hidden, classes]),
    toTensor(randomArray(classes, rand, -0.1, 0.1), [classes]),
  ].map((p) => {
    p.requiresGrad = true;
    return E.keep(p);
  });
  const lr = 0.5;
  const step = () =>
    E.tidy(() => {
      const [w1, b1, w2, b2] = params as [E.Tensor, E.Tensor, E.Tensor, E.Tensor];
      const h = E.relu(E.add(E.matmul(x, w1), b1));
      const loss = E.crossEntropy(E.add(E.matmul(h, w2), b2), y);
      E.backward(loss);
      params = E.noGrad(() =>
        params.map((p) => {
          const next = E.keep(E.sub(p, E.mulScalar(p.grad!, lr)));
          next.requiresGrad = true;
          p.grad!.dispose();
          p.dispose();
          return next;
        }),
      );
      return loss;
    });

  await rt.stream.finish();
  rt.pool.trim(); // forget free buffers from earlier tests, so the peak measures this loop
  rt.pool.resetPeak();
  let inUse = -1;
  let peakAt20 = -1;
  let creationsAt20 = -1;
  const losses: number[] = [];
  for (let s = 1; s <= 500; s++) {
    const loss = step();
    if (s === 1 || s % 50 === 0) losses.push(await loss.item());
    loss.dispose();
    const now = poolInUse();
    if (s === 1) inUse = now;
    assert.is(now, inUse, `inUse after step ${s}`);
    if (s === 20) {
      peakAt20 = rt.pool.getStats().peakAllocated;
      creationsAt20 = rt.pool.getStats().creations;
    }
  }
  const stats = rt.pool.getStats();
  assert.is(stats.peakAllocated, peakAt20, `peak allocated after step 20 ${peakAt20}, after step 500 ${stats.peakAllocated}`);
  assert.is(stats.creations, creationsAt20, 'no buffer created after step 20');
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses[losses.length - 1]! < 0.5 * losses[0]!, `loss fell: ${losses.map((l) => l.toFixed(3))} (seed ${TEST_SEED})`);
  for (const t of [x, y, ...params]) t.dispose();
});

test('a tensor over the adapter\'s binding limit is a DeviceLimitError naming its shape and the limit; nothing is allocated', async () => {
  const { pool } = runtime();
  const before = pool.getStats();
  const elements = Math.floor(pool.maxBytes / 4) + 1; // one float more than a kernel can bind
  const shape = [elements];
  let error: unknown;
  try {
    E.zeros(shape);
  } catch (e) {
    error = e;
  }
  assert.instance(error, DeviceLimitError);
  const message = (error as Error).message;
  assert.ok(message.includes(`shape [${elements}]`) && message.includes(`${elements * 4} bytes`) && message.includes(`(${pool.maxBytes} bytes)`), message);
  assert.ok(!message.includes('\n'), 'one line');
  const after = pool.getStats();
  assert.is(after.creations, before.creations, 'no createBuffer call');
  assert.is(after.inUse, before.inUse);
  // The engine goes on: no WebGPU error is pending.
  const t = E.addScalar(E.ones([5]), 1);
  assert.equal([...(await t.toArray())], [2, 2, 2, 2, 2]);
  t.dispose();
});

test('BufferPool: the limit is min(maxBufferSize, maxStorageBufferBindingSize), and a size class is capped at it', () => {
  const created: number[] = [];
  const fake = (maxBufferSize: number, maxStorageBufferBindingSize: number) =>
    ({ limits: { maxBufferSize, maxStorageBufferBindingSize }, createBuffer: ({ size }: { size: number }) => (created.push(size), { size, destroy() {} }) }) as unknown as GPUDevice;
  const pool = new BufferPool(fake(1000, 5000));
  assert.is(pool.maxBytes, 1000);
  assert.ok(sizeClass(999) > 1000, 'the class of 999 bytes is past the limit');
  assert.is(pool.acquire(999).size, 1000, 'capped at the limit');
  assert.throws(() => pool.acquire(1001, () => 'the thing'), (e: Error) => e instanceof DeviceLimitError && /^the thing needs 1001 B .* maxBufferSize of 1000 B/.test(e.message));
  assert.equal(created, [1000], 'nothing created for the refused request');
  const binding = new BufferPool(fake(1 << 20, 4096));
  assert.is(binding.maxBytes, 4096);
  assert.throws(() => binding.acquire(5000), /maxStorageBufferBindingSize of 4.00 KiB \(4096 bytes\)/);
});

test('BufferPool: best fit within twice the class above 64 KiB, exact classes below; trim destroys only free buffers', () => {
  const created: number[] = [];
  const destroyed: number[] = [];
  const device = {
    limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30 },
    createBuffer: ({ size }: { size: number }) => (created.push(size), { size, destroy: () => destroyed.push(size) }),
  } as unknown as GPUDevice;
  const pool = new BufferPool(device);
  const MiB = 2 ** 20;
  const big = pool.acquire(3 * MiB);
  pool.release(big);
  assert.is(pool.acquire(2 * MiB), big, 'a free 3 MiB buffer serves a 2 MiB request (within 2x)');
  assert.is(pool.getStats().inUse, 3 * MiB, 'counted whole');
  pool.release(big);
  const small = pool.acquire(MiB);
  assert.is.not(small, big, 'a 1 MiB request does not take a 3 MiB buffer (over 2x)');
  const other = pool.acquire(2.5 * MiB);
  assert.is(other, big, 'the smallest fitting free buffer');
  const tiny = pool.acquire(1024);
  pool.release(tiny);
  assert.is.not(pool.acquire(768), tiny, 'below 64 KiB only the exact class is reused');
  assert.equal(created, [3 * MiB, MiB, 1024, 768]);
  pool.release(small);
  pool.trim();
  assert.equal(destroyed, [1024, MiB], 'the free buffers, and none in use');
  assert.is(pool.getStats().allocated, 3 * MiB + 768);
  assert.is(pool.acquire(MiB) === small, false, 'a trimmed buffer is never handed out again');
});

test.run();
