// logSoftmax, softmax, crossEntropy with integer labels, pick and oneHot against float64
// references, including large logits (the max-shift must keep exp finite), and gradients by
// finite differences.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  TEST_SEED, assertClose, assertShape, dotRef, gradCheck, logSoftmaxRef, randomArray, rng, setupEngine, toTensor, weightsFor,
} from '../helpers.js';
import { gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('loss');
const rand = rng(TEST_SEED);
test.before(setupEngine);

const labelsFor = (rows: number, classes: number) => Array.from({ length: rows }, () => Math.floor(rand() * classes));
const crossEntropyRef = (x: ArrayLike<number>, labels: number[], classes: number) => {
  const lp = logSoftmaxRef(x, labels.length, classes);
  return -labels.reduce((s, c, r) => s + lp[r * classes + c]!, 0) / labels.length;
};

test('logSoftmax and softmax over the last axis, any rank, large logits', async () => {
  const cases: [number[], number, number][] = [
    [[13, 7], -3, 3],
    [[2, 3, 5], -10, 10],
    [[5, 11], 990, 1010], // exp(1000) overflows f32 without the max shift
    [[3, 1], -1, 1], // one class: log-probability 0
  ];
  for (const [shape, lo, hi] of cases) {
    const cols = shape[shape.length - 1]!;
    const rows = shape.reduce((p, d) => p * d, 1) / cols;
    const x = randomArray(rows * cols, rand, lo, hi);
    const ref = logSoftmaxRef(x, rows, cols);
    const ls = E.logSoftmax(toTensor(x, shape));
    assertShape(ls.shape, shape, 'logSoftmax');
    assertClose(await ls.toArray(), ref, 1e-5, 1e-6, `logSoftmax [${shape}] in [${lo}, ${hi}]`);
    const sm = E.softmax(toTensor(x, shape));
    assertClose(await sm.toArray(), ref.map(Math.exp), 1e-5, 1e-7, `softmax [${shape}] in [${lo}, ${hi}]`);
  }
});

/** log_softmax of x (row-major `shape`) along `axis`, float64. */
function logSoftmaxAlongRef(x: ArrayLike<number>, shape: number[], axis: number): Float64Array {
  const len = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const outer = x.length / (len * inner);
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * len + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x[at(k)]!);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x[at(k)]! - m);
      for (let k = 0; k < len; k++) out[at(k)] = x[at(k)]! - m - Math.log(s);
    }
  }
  return out;
}

test('logSoftmax along any axis (the columns of a batch of matrices, as Sinkhorn uses it) and its gradient', async () => {
  for (const [shape, axis] of [[[3, 7, 5], 1], [[3, 7, 5], -2], [[6, 9], 0], [[2, 3, 4, 5], 2], [[4, 5], -1]] as [number[], number][]) {
    const x = randomArray(shape.reduce((p, d) => p * d, 1), rand, -20, 20);
    const a = axis < 0 ? axis + shape.length : axis;
    const ls = E.logSoftmax(toTensor(x, shape), axis);
    assertShape(ls.shape, shape, 'logSoftmax');
    assertClose(await ls.toArray(), logSoftmaxAlongRef(x, shape, a), 1e-5, 1e-5, `logSoftmax [${shape}] axis ${axis}`);
  }
  const shape = [2, 5, 3];
  const w = weightsFor(30, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(E.logSoftmax(a!, 1), toTensor(w, shape))),
    ([a]) => dotRef(logSoftmaxAlongRef(a!, shape, 1), w),
    [{ data: randomArray(30, rand, -3, 3), shape }],
    { what: 'logSoftmax axis 1' },
  );
});

test('crossEntropy with integer labels matches float64', async () => {
  for (const [rows, classes, spread] of [[13, 7, 3], [1, 10, 1], [37, 3, 50]] as const) {
    const x = randomArray(rows * classes, rand, -spread, spread);
    const labels = labelsFor(rows, classes);
    const loss = E.crossEntropy(toTensor(x, [rows, classes]), E.tensor(Int32Array.from(labels)));
    assertShape(loss.shape, [], 'crossEntropy');
    const expected = crossEntropyRef(x, labels, classes);
    assertClose([await loss.item()], [expected], 1e-5, 1e-6, `crossEntropy ${rows}x${classes}`);
  }
});

test('pick and oneHot', async () => {
  const rows = 11, classes = 6;
  const x = randomArray(rows * classes, rand);
  const labels = labelsFor(rows, classes);
  const picked = E.pick(toTensor(x, [rows, classes]), E.tensor(Int32Array.from(labels)));
  assertShape(picked.shape, [rows], 'pick');
  assertClose(await picked.toArray(), labels.map((c, r) => x[r * classes + c]!), 0, 0, 'pick');
  const oh = E.oneHot(E.tensor(Int32Array.from(labels)), classes);
  assertShape(oh.shape, [rows, classes], 'oneHot');
  assert.is(oh.dtype, 'f32');
  assertClose(await oh.toArray(), Array.from({ length: rows * classes }, (_, i) => (labels[Math.floor(i / classes)] === i % classes ? 1 : 0)), 0, 0, 'oneHot');
  const ints = Int32Array.from({ length: rows * classes }, (_, i) => i * 1000003);
  const pi = E.pick(E.tensor(ints, [rows, classes]), E.tensor(Int32Array.from(labels)));
  assert.is(pi.dtype, 'i32');
  assertClose(await pi.toArray(), labels.map((c, r) => ints[r * classes + c]!), 0, 0, 'pick on i32');
});

test('label errors', () => {
  const x = E.zeros([4, 3]);
  assert.throws(() => E.crossEntropy(x, E.tensor([0, 1, 2, 0])), /labels must be i32 of shape \[4\], got f32\[4\]/);
  assert.throws(() => E.crossEntropy(x, E.tensor(new Int32Array(3))), /labels must be i32 of shape \[4\], got i32\[3\]/);
  assert.throws(() => E.crossEntropy(E.zeros([4]), E.tensor(new Int32Array(4))), /expects logits of shape \[rows, classes\]/);
  assert.throws(() => E.oneHot(E.tensor([1, 2]), 3), /labels must be a 1-D i32 tensor/);
});

// ---------------------------------------------------------------------------------------------
// Gradients

test('logSoftmax and softmax gradients', async () => {
  const rows = 4, cols = 5;
  const w = weightsFor(rows * cols, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(E.logSoftmax(a!), toTensor(w, [rows, cols]))),
    ([a]) => dotRef(logSoftmaxRef(a!, rows, cols), w),
    [{ data: randomArray(rows * cols, rand, -3, 3), shape: [rows, cols] }],
    { what: 'logSoftmax' },
  );
  await gradCheck(
    ([a]) => E.sum(E.mul(E.softmax(a!), toTensor(w, [rows, cols]))),
    ([a]) => dotRef(logSoftmaxRef(a!, rows, cols).map(Math.exp), w),
    [{ data: randomArray(rows * cols, rand, -3, 3), shape: [rows, cols] }],
    { what: 'softmax' },
  );
});

test('crossEntropy gradient, alone and scaled inside a larger graph', async () => {
  const rows = 7, classes = 4;
  const labels = labelsFor(rows, classes);
  const lt = () => E.tensor(Int32Array.from(labels));
  await gradCheck(
    ([a]) => E.crossEntropy(a!, lt()),
    ([a]) => crossEntropyRef(a!, labels, classes),
    [{ data: randomArray(rows * classes, rand, -3, 3), shape: [rows, classes] }],
    { what: 'crossEntropy' },
  );
  // g != 1 reaching the loss: 2.5 * CE(x * s) + sum(x), with s broadcast over rows.
  await gradCheck(
    ([a, s]) => E.add(E.mulScalar(E.crossEntropy(E.mul(a!, s!), lt()), 2.5), E.sum(a!)),
    ([a, s]) => 2.5 * crossEntropyRef(a!.map((v, i) => v * s![i % classes]!), labels, classes) + a!.reduce((p, v) => p + v, 0),
    [
      { data: randomArray(rows * classes, rand, -3, 3), shape: [rows, classes] },
      { data: randomArray(classes, rand, 0.5, 2), shape: [classes] },
    ],
    { what: 'crossEntropy in a graph' },
  );
});

test('grid-stride sizes (1, odd, beyond the policy): pick and oneHot bit-identical under every grid', async () => {
  for (const rows of gridStrideSizes()) {
    const classes = 3;
    const x = randomArray(rows * classes, rand);
    const labels = labelsFor(rows, classes);
    const [tx, tl] = [toTensor(x, [rows, classes]), E.tensor(Int32Array.from(labels))];
    assertClose(await sameUnderEveryGrid(`pick rows=${rows}`, () => E.pick(tx, tl)), labels.map((c, r) => x[r * classes + c]!), 0, 0, `pick rows=${rows}`);
    const oh = await sameUnderEveryGrid(`oneHot rows=${rows}`, () => E.oneHot(tl, classes));
    assertClose(oh, Array.from({ length: rows * classes }, (_, i) => (labels[Math.floor(i / classes)] === i % classes ? 1 : 0)), 0, 0, `oneHot rows=${rows}`);
    tx.dispose();
    tl.dispose();
  }
});

test.run();
