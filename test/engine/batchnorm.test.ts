// Batch normalization against float64 references: training and evaluation forward passes for
// [N, C], [N, C, L] and [N, C, H, W] (outputs poisoned first), PyTorch's running-statistics
// update (unbiased variance) over two steps, and finite-difference gradients in both modes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertClose, gradCheck, randomArray, rng, setupEngine, sizeOf, toTensor, weightsFor } from '../helpers.js';
import { assertSameBits, bitsOf, gradientOf, gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('batchnorm');
const rand = rng(TEST_SEED);
test.before(setupEngine);

interface Stats {
  mean: Float64Array;
  /** Biased (divided by n): what training normalizes with. */
  variance: Float64Array;
  /** Unbiased (divided by n - 1): what the running variance averages. */
  unbiased: Float64Array;
}

/** Per-channel statistics of x [N, C, ...] in float64, two-pass. */
function statsRef(x: ArrayLike<number>, shape: number[]): Stats {
  const [n, c] = shape as [number, number];
  const s = sizeOf(shape.slice(2));
  const count = n * s;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  const unbiased = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let b = 0; b < n; b++) for (let j = 0; j < s; j++) sum += x[(b * c + ch) * s + j]!;
    const m = sum / count;
    let q = 0;
    for (let b = 0; b < n; b++) for (let j = 0; j < s; j++) q += (x[(b * c + ch) * s + j]! - m) ** 2;
    mean[ch] = m;
    variance[ch] = q / count;
    unbiased[ch] = q / (count - 1);
  }
  return { mean, variance, unbiased };
}

/** y = (x - mean) / sqrt(var + eps) * w + b per channel, in float64. */
function normalizeRef(x: ArrayLike<number>, shape: number[], mean: ArrayLike<number>, variance: ArrayLike<number>, w: ArrayLike<number> | null, b: ArrayLike<number> | null, eps: number): Float64Array {
  const c = shape[1]!;
  const s = sizeOf(shape.slice(2));
  return Float64Array.from(x, (v, i) => {
    const ch = Math.floor(i / s) % c;
    return ((v - mean[ch]!) / Math.sqrt(variance[ch]! + eps)) * (w ? w[ch]! : 1) + (b ? b[ch]! : 0);
  });
}

function trainRef(x: ArrayLike<number>, shape: number[], w: ArrayLike<number> | null, b: ArrayLike<number> | null, eps = 1e-5): Float64Array {
  const st = statsRef(x, shape);
  return normalizeRef(x, shape, st.mean, st.variance, w, b, eps);
}

function dot(a: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * w[i]!;
  return s;
}

// [N, C] (1-d), [N, C, L] (1-d), [N, C, H, W] (2-d). The per-channel reductions split a channel
// into runs of at least 1024 values: [3, 5, 23, 19] has two uneven runs, [3, 2, 37, 31] four.
const GRAD_SHAPES = [[6, 5], [3, 5, 7], [3, 5, 7, 9], [3, 5, 23, 19]];
const SHAPES = [...GRAD_SHAPES, [3, 2, 37, 31]];

test('training forward matches float64 (batch statistics), with and without affine parameters', async () => {
  for (const shape of SHAPES) {
    const c = shape[1]!;
    const x = randomArray(sizeOf(shape), rand, -2, 3);
    const w = randomArray(c, rand, 0.5, 2);
    const b = randomArray(c, rand, -1, 1);
    const y = E.batchNorm(toTensor(x, shape), null, null, toTensor(w, [c]), toTensor(b, [c]), { training: true });
    assertClose(await y.toArray(), trainRef(x, shape, w, b), 1e-5, 1e-5, `affine ${shape}`);
    const plain = E.batchNorm(toTensor(x, shape), null, null, null, null, { training: true, eps: 1e-3 });
    assertClose(await plain.toArray(), trainRef(x, shape, null, null, 1e-3), 1e-5, 1e-5, `no affine ${shape}`);
  }
});

test('statistics are sound for data with a large mean and a small spread', async () => {
  // Var(x) ~ 0.08 around a mean of 300: E[x^2] - E[x]^2 in float32 would lose about all digits.
  const shape = [3, 5, 23, 19];
  const x = Float64Array.from(randomArray(sizeOf(shape), rand, -0.5, 0.5), (v) => Math.fround(300 + v));
  const y = E.batchNorm(toTensor(x, shape), null, null, null, null, { training: true });
  assertClose(await y.toArray(), trainRef(x, shape, null, null), 0, 5e-4, 'offset data');
});

test('running statistics after two training steps follow PyTorch (unbiased variance, momentum)', async () => {
  for (const [shape, momentum] of [[[3, 5, 7, 9], 0.1], [[6, 5], 0.3], [[3, 2, 37, 31], 0.1]] as const) {
    const c = shape[1]!;
    const rm0 = randomArray(c, rand, -1, 1);
    const rv0 = randomArray(c, rand, 0.5, 2);
    const runningMean = toTensor(rm0, [c]);
    const runningVar = toTensor(rv0, [c]);
    const rm = Float64Array.from(rm0);
    const rv = Float64Array.from(rv0);
    for (let step = 0; step < 2; step++) {
      const x = randomArray(sizeOf(shape), rand, -1 + step, 2 + 3 * step);
      E.batchNorm(toTensor(x, [...shape]), runningMean, runningVar, null, null, { training: true, momentum });
      const st = statsRef(x, [...shape]);
      for (let ch = 0; ch < c; ch++) {
        rm[ch] = (1 - momentum) * rm[ch]! + momentum * st.mean[ch]!;
        rv[ch] = (1 - momentum) * rv[ch]! + momentum * st.unbiased[ch]!;
      }
    }
    assertClose(await runningMean.toArray(), rm, 1e-5, 1e-6, `running mean ${shape}`);
    assertClose(await runningVar.toArray(), rv, 1e-5, 1e-6, `running var ${shape}`);
  }
});

test('evaluation mode normalizes with the running statistics and leaves them alone', async () => {
  const shape = [3, 5, 7, 9];
  const c = 5;
  const x = randomArray(sizeOf(shape), rand, -2, 3);
  const w = randomArray(c, rand, 0.5, 2);
  const b = randomArray(c, rand, -1, 1);
  const rm = randomArray(c, rand, -1, 1);
  const rv = randomArray(c, rand, 0.5, 2);
  const runningMean = toTensor(rm, [c]);
  const runningVar = toTensor(rv, [c]);
  const args = [toTensor(x, shape), runningMean, runningVar, toTensor(w, [c]), toTensor(b, [c])] as const;

  const evalOut = await E.batchNorm(...args, { training: false, eps: 1e-4 }).toArray();
  assertClose(evalOut, normalizeRef(x, shape, rm, rv, w, b, 1e-4), 1e-5, 1e-5, 'eval output');
  assertClose(await runningMean.toArray(), rm, 0, 0, 'eval keeps running mean');
  assertClose(await runningVar.toArray(), rv, 0, 0, 'eval keeps running var');

  // The same input in training mode uses the batch statistics instead, and moves the running ones.
  const trainOut = await E.batchNorm(...args, { training: true, eps: 1e-4 }).toArray();
  assertClose(trainOut, trainRef(x, shape, w, b, 1e-4), 1e-5, 1e-5, 'train output');
  assert.ok(trainOut.some((v, i) => Math.abs(v - evalOut[i]!) > 1e-2), 'training and eval outputs differ');
  const st = statsRef(x, shape);
  assertClose(await runningMean.toArray(), rm.map((m, ch) => 0.9 * m + 0.1 * st.mean[ch]!), 1e-5, 1e-6, 'train moves running mean');
});

test('evaluation mode needs running statistics; training needs more than one value per channel', () => {
  const x = toTensor(randomArray(10, rand), [2, 5]);
  assert.throws(() => E.batchNorm(x, null, null, null, null, { training: false }), /running statistics/);
  const single = toTensor(randomArray(5, rand), [1, 5]);
  assert.throws(() => E.batchNorm(single, null, null, null, null, { training: true }), /more than 1 value/);
});

test('no graph is recorded for the running statistics; none at all without gradients', async () => {
  const c = 5;
  const runningMean = toTensor(new Float64Array(c), [c]);
  const runningVar = toTensor(new Float64Array(c).fill(1), [c]);
  const weight = toTensor(new Float64Array(c).fill(1), [c]);
  weight.requiresGrad = true;
  const y = E.batchNorm(toTensor(randomArray(35, rand), [7, c]), runningMean, runningVar, weight, null, { training: true });
  assert.is(y.node?.inputs.length, 2); // x and weight
  assert.ok(!y.node!.inputs.includes(runningMean) && !runningMean.requiresGrad && !runningVar.requiresGrad);
  const z = E.batchNorm(toTensor(randomArray(35, rand), [7, c]), runningMean, runningVar, null, null, { training: true });
  assert.is(z.node, null);
});

for (const shape of GRAD_SHAPES) {
  test(`training-mode gradient w.r.t. x, weight and bias ${JSON.stringify(shape)} (finite differences)`, async () => {
    const c = shape[1]!;
    const n = sizeOf(shape);
    const wts = weightsFor(n, rand);
    await gradCheck(
      ([x, w, b]) => E.sum(E.mul(E.batchNorm(x!, null, null, w!, b!, { training: true }), toTensor(wts, shape))),
      ([x, w, b]) => dot(trainRef(x!, shape, w!, b!), wts),
      [
        { data: randomArray(n, rand, -2, 3), shape },
        { data: randomArray(c, rand, 0.5, 2), shape: [c] },
        { data: randomArray(c, rand, -1, 1), shape: [c] },
      ],
      { what: `batchNorm train ${shape}`, rtol: 2e-3, atol: 2e-4 },
    );
  });
}

test('training-mode gradient without affine parameters (finite differences)', async () => {
  const shape = [3, 5, 7];
  const wts = weightsFor(sizeOf(shape), rand);
  await gradCheck(
    ([x]) => E.sum(E.mul(E.batchNorm(x!, null, null, null, null, { training: true }), toTensor(wts, shape))),
    ([x]) => dot(trainRef(x!, shape, null, null), wts),
    [{ data: randomArray(sizeOf(shape), rand, -2, 3), shape }],
    { what: 'batchNorm train, no affine', rtol: 2e-3, atol: 2e-4 },
  );
});

test('relu(batchNorm(x) + residual) in one op: gradient w.r.t. x, weight, bias and the residual (finite differences)', async () => {
  const shape = [3, 4, 5, 6];
  const c = 4;
  const wts = weightsFor(sizeOf(shape), rand);
  await gradCheck(
    ([x, w, b, r]) => E.sum(E.mul(E.batchNorm(x!, null, null, w!, b!, { training: true, relu: true, residual: r! }), toTensor(wts, shape))),
    ([x, w, b, r]) => dot(Float64Array.from(trainRef(x!, shape, w!, b!), (v, i) => Math.max(v + r![i]!, 0)), wts),
    [
      { data: randomArray(sizeOf(shape), rand, -2, 3), shape },
      { data: randomArray(c, rand, 0.5, 2), shape: [c] },
      { data: randomArray(c, rand, -1, 1), shape: [c] },
      { data: randomArray(sizeOf(shape), rand, -1, 1), shape },
    ],
    { what: 'batchNorm train + residual + relu', rtol: 2e-3, atol: 2e-4 },
  );
});

test('evaluation-mode gradient w.r.t. x, weight and bias (finite differences)', async () => {
  const shape = [3, 5, 7, 9];
  const c = 5;
  const rm = randomArray(c, rand, -1, 1);
  const rv = randomArray(c, rand, 0.5, 2);
  const wts = weightsFor(sizeOf(shape), rand);
  const runningMean = toTensor(rm, [c]);
  const runningVar = toTensor(rv, [c]);
  await gradCheck(
    ([x, w, b]) => E.sum(E.mul(E.batchNorm(x!, runningMean, runningVar, w!, b!, { training: false }), toTensor(wts, shape))),
    ([x, w, b]) => dot(normalizeRef(x!, shape, rm, rv, w!, b!, 1e-5), wts),
    [
      { data: randomArray(sizeOf(shape), rand, -2, 3), shape },
      { data: randomArray(c, rand, 0.5, 2), shape: [c] },
      { data: randomArray(c, rand, -1, 1), shape: [c] },
    ],
    { what: 'batchNorm eval', rtol: 2e-3, atol: 2e-4 },
  );
});

/** dx of sum(y * dy) for training-mode batch norm with weight w, in float64 (the batch statistics depend on x). */
/**
 * The training-mode input gradient in float64, and beside it a first-order bound on the error that
 * float32 arithmetic cannot avoid. xhat = (x - mean) * invstd is known to float32 only up to about
 * u * max|x| * invstd (u = 2^-24: the mean and x - mean are rounded at the data's magnitude), and
 * dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) carries that error through both
 * xhat terms. With few elements per channel and a small spread (two values 0.02 apart, say) the
 * bracket cancels to a few percent of its terms, invstd is large, and the float32 result is off by
 * ~1e-4 relative whatever the kernel does; the bound says by how much (4x the first-order terms).
 */
function trainInputGradRef(x: ArrayLike<number>, shape: number[], w: ArrayLike<number>, dy: ArrayLike<number>, eps = 1e-5): { value: Float64Array; bound: Float64Array } {
  const c = shape[1]!;
  const s = sizeOf(shape.slice(2));
  const count = x.length / c;
  const st = statsRef(x, shape);
  const ch = (i: number) => Math.floor(i / s) % c;
  const invstd = Float64Array.from(st.variance, (v) => 1 / Math.sqrt(v + eps));
  const sumDy = new Float64Array(c), sumDyXhat = new Float64Array(c);
  const sumAbsDy = new Float64Array(c), sumAbsDyXhat = new Float64Array(c), maxAbsX = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const k = ch(i);
    const xhat = (x[i]! - st.mean[k]!) * invstd[k]!;
    sumDy[k] += dy[i]!;
    sumDyXhat[k] += dy[i]! * xhat;
    sumAbsDy[k] += Math.abs(dy[i]!);
    sumAbsDyXhat[k] += Math.abs(dy[i]! * xhat);
    maxAbsX[k] = Math.max(maxAbsX[k]!, Math.abs(x[i]!));
  }
  const u = 2 ** -24;
  const value = new Float64Array(x.length), bound = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const k = ch(i);
    const xhat = (x[i]! - st.mean[k]!) * invstd[k]!;
    value[i] = w[k]! * invstd[k]! * (dy[i]! - sumDy[k]! / count - xhat * sumDyXhat[k]! / count);
    const rounding = Math.abs(dy[i]!) + sumAbsDy[k]! / count + Math.abs(xhat) * sumAbsDyXhat[k]! / count;
    const xhatError = maxAbsX[k]! * invstd[k]!; // in units of u
    const propagated = xhatError * (sumAbsDyXhat[k]! / count + Math.abs(xhat) * sumAbsDy[k]! / count);
    bound[i] = 4 * u * Math.abs(w[k]!) * invstd[k]! * (rounding + propagated);
  }
  return { value, bound };
}

test('grid-stride sizes (1, odd, beyond the policy): forward and input gradient in both modes, bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    for (const shape of [[n + 1, 3], [2, 5, n]]) {
      const c = shape[1]!;
      const xv = randomArray(sizeOf(shape), rand, -2, 2), wv = randomArray(c, rand, 0.5, 1.5), bv = randomArray(c, rand);
      const mv = randomArray(c, rand), vv = randomArray(c, rand, 0.5, 2), dyv = randomArray(xv.length, rand);
      const [x, w, b, rm, rv, dy] = [toTensor(xv, shape), toTensor(wv, [c]), toTensor(bv, [c]), toTensor(mv, [c]), toTensor(vv, [c]), toTensor(dyv, shape)];
      const what = `[${shape}]`;
      const train = await sameUnderEveryGrid(`train ${what}`, () => E.batchNorm(x, null, null, w, b, { training: true }));
      assertClose(train, trainRef(xv, shape, wv, bv), 1e-5, 1e-5, `training forward ${what}`);
      const evalOut = await sameUnderEveryGrid(`eval ${what}`, () => E.batchNorm(x, rm, rv, w, b, { training: false }));
      assertClose(evalOut, normalizeRef(xv, shape, mv, vv, wv, bv, 1e-5), 1e-5, 1e-5, `eval forward ${what}`);
      const gTrain = await sameUnderEveryGrid(`train dx ${what}`, () => gradientOf(x, dy, (t) => E.batchNorm(t, null, null, w, b, { training: true })));
      const ref = trainInputGradRef(xv, shape, wv, dyv);
      assertClose(gTrain, ref.value, 1e-4, ref.bound.map((b) => b + 1e-5), `training dx ${what}`);
      const s = sizeOf(shape.slice(2));
      const gEval = await sameUnderEveryGrid(`eval dx ${what}`, () => gradientOf(x, dy, (t) => E.batchNorm(t, rm, rv, w, b, { training: false })));
      assertClose(gEval, Float64Array.from(dyv, (g, i) => { const k = Math.floor(i / s) % c; return (g * wv[k]!) / Math.sqrt(vv[k]! + 1e-5); }), 1e-5, 0, `eval dx ${what}`);
      for (const t of [x, w, b, rm, rv, dy]) t.dispose();
    }
  }
});

test('the per-plane kernels give the bits of the grid-stride ones (forward and input gradient, both modes)', async () => {
  for (const shape of [[3, 5, 7, 9], [2, 4, 16], [5, 3, 17, 1]]) {
    const c = shape[1]!;
    const [x, w, b, rm, rv, dy] = [
      toTensor(randomArray(sizeOf(shape), rand, -2, 2), shape), toTensor(randomArray(c, rand, 0.5, 1.5), [c]), toTensor(randomArray(c, rand), [c]),
      toTensor(randomArray(c, rand), [c]), toTensor(randomArray(c, rand, 0.5, 2), [c]), toTensor(randomArray(sizeOf(shape), rand), shape),
    ];
    const runs: Record<string, () => E.Tensor> = {
      'train forward': () => E.batchNorm(x, null, null, w, b, { training: true }),
      'eval forward': () => E.batchNorm(x, rm, rv, w, b, { training: false }),
      'eval forward, no affine': () => E.batchNorm(x, rm, rv, null, null, { training: false }),
      'train dx': () => gradientOf(x, dy, (t) => E.batchNorm(t, null, null, w, b, { training: true })),
      'train dx, no affine': () => gradientOf(x, dy, (t) => E.batchNorm(t, null, null, null, null, { training: true })),
      'eval dx': () => gradientOf(x, dy, (t) => E.batchNorm(t, rm, rv, w, b, { training: false })),
    };
    for (const [what, run] of Object.entries(runs)) {
      const bits = async (flat: boolean) => {
        E.setBatchNormFlat(flat);
        try {
          const out = E.tidy(run);
          const b = await bitsOf(out);
          out.dispose();
          return b;
        } finally {
          E.setBatchNormFlat(false);
        }
      };
      assertSameBits(await bits(false), await bits(true), `${what} [${shape}]`);
    }
    for (const t of [x, w, b, rm, rv, dy]) t.dispose();
  }
});

test('the relu option gives the bits of relu(batchNorm(x)): output and the gradients of x, weight and bias, both modes', async () => {
  for (const shape of [[4, 3, 5, 7], [6, 4]]) {
    const c = shape[1]!;
    const xv = randomArray(sizeOf(shape), rand, -2, 2);
    const wv = randomArray(c, rand, 0.5, 1.5);
    const bv = randomArray(c, rand);
    const dy = toTensor(randomArray(xv.length, rand), shape);
    for (const training of [true, false]) {
      const results: Uint32Array[][] = [];
      for (const fused of [false, true]) {
        const leaves = [toTensor(xv, shape), toTensor(wv, [c]), toTensor(bv, [c])];
        for (const t of leaves) t.requiresGrad = true;
        const [x, w, b] = leaves as [E.Tensor, E.Tensor, E.Tensor];
        const rm = toTensor(new Float64Array(c).fill(0.1), [c]);
        const rv = toTensor(new Float64Array(c).fill(1.5), [c]);
        const y = E.tidy(() => {
          const out = fused ? E.batchNorm(x, rm, rv, w, b, { training, relu: true }) : E.relu(E.batchNorm(x, rm, rv, w, b, { training }));
          E.backward(E.sum(E.mul(out, dy)));
          return out;
        });
        results.push([await bitsOf(y), await bitsOf(x.grad!), await bitsOf(w.grad!), await bitsOf(b.grad!), await bitsOf(rm), await bitsOf(rv)]);
        for (const t of [y, rm, rv, ...leaves.map((l) => l.grad!), ...leaves]) t.dispose();
      }
      ['output', 'x.grad', 'weight.grad', 'bias.grad', 'running_mean', 'running_var'].forEach((what, i) => {
        assertSameBits(results[1]![i]!, results[0]![i]!, `${training ? 'training' : 'eval'} [${shape}] ${what}`);
      });
    }
    dy.dispose();
  }
});

test('the residual option gives the bits of relu(add(batchNorm(x), r)) and of add(batchNorm(x), r): output and every gradient', async () => {
  const shape = [3, 4, 6, 5];
  const c = shape[1]!;
  const [xv, rv, gv] = [randomArray(sizeOf(shape), rand, -2, 2), randomArray(sizeOf(shape), rand, -1, 1), randomArray(sizeOf(shape), rand)];
  const [wv, bv] = [randomArray(c, rand, 0.5, 1.5), randomArray(c, rand)];
  const dy = toTensor(gv, shape);
  for (const relu of [true, false]) {
    for (const training of [true, false]) {
      const results: Uint32Array[][] = [];
      for (const fused of [false, true]) {
        const leaves = [toTensor(xv, shape), toTensor(wv, [c]), toTensor(bv, [c]), toTensor(rv, shape)];
        for (const t of leaves) t.requiresGrad = true;
        const [x, w, b, r] = leaves as [E.Tensor, E.Tensor, E.Tensor, E.Tensor];
        const [rm, rvar] = [toTensor(new Float64Array(c).fill(0.2), [c]), toTensor(new Float64Array(c).fill(0.8), [c])];
        const y = E.tidy(() => {
          const out = fused
            ? E.batchNorm(x, rm, rvar, w, b, { training, relu, residual: r })
            : (relu ? E.relu : (t: E.Tensor) => t)(E.add(E.batchNorm(x, rm, rvar, w, b, { training }), r));
          E.backward(E.sum(E.mul(out, dy)));
          return out;
        });
        results.push(await Promise.all([y, ...leaves.map((l) => l.grad!)].map(bitsOf)));
        for (const t of [y, rm, rvar, ...leaves.map((l) => l.grad!), ...leaves]) t.dispose();
      }
      ['output', 'x.grad', 'weight.grad', 'bias.grad', 'residual.grad'].forEach((what, i) => {
        assertSameBits(results[1]![i]!, results[0]![i]!, `${relu ? 'relu' : 'no relu'} ${training ? 'training' : 'eval'} ${what}`);
      });
    }
  }
  dy.dispose();
  const [x, wrong] = [E.zeros([2, 3, 4]), E.zeros([2, 3])];
  assert.throws(() => E.batchNorm(x, null, null, null, null, { training: true, residual: wrong }), /residual must be f32 \[2, 3, 4\] like x, got f32\[2, 3\]/);
  x.dispose();
  wrong.dispose();
});

test.run();
