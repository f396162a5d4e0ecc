// Element-wise ops against float64 references (fresh random inputs, odd and broadcast shapes,
// outputs poisoned with NaN first), and their gradients by finite differences.
import { suite } from 'uvu';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertClose, gradCheck, randomArray, rng, setupEngine, sizeOf, toTensor, weightsFor } from '../helpers.js';

const test = suite('elementwise');
const rand = rng(TEST_SEED);
test.before(setupEngine);

/** Row-major broadcast reference: out[i] = f(a[ia], b[ib]). */
function broadcastRef(a: Float64Array, as: number[], b: Float64Array, bs: number[], f: (x: number, y: number) => number) {
  const rank = Math.max(as.length, bs.length);
  const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s];
  const A = pad(as), B = pad(bs);
  const out = A.map((d, i) => Math.max(d, B[i]!));
  const n = sizeOf(out);
  const res = new Float64Array(n);
  const stride = (s: number[]) => s.map((_, i) => s.slice(i + 1).reduce((p, d) => p * d, 1));
  const sa = stride(A), sb = stride(B);
  for (let i = 0; i < n; i++) {
    let rem = i, ia = 0, ib = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rem % out[d]!;
      rem = Math.floor(rem / out[d]!);
      if (A[d] !== 1) ia += idx * sa[d]!;
      if (B[d] !== 1) ib += idx * sb[d]!;
    }
    res[i] = f(a[ia]!, b[ib]!);
  }
  return { out, res };
}

const binaryCases: [string, (a: E.Tensor, b: E.Tensor) => E.Tensor, (x: number, y: number) => number][] = [
  ['add', E.add, (x, y) => x + y],
  ['sub', E.sub, (x, y) => x - y],
  ['mul', E.mul, (x, y) => x * y],
  ['div', E.div, (x, y) => x / y],
  ['maximum', E.maximum, Math.max],
  ['minimum', E.minimum, Math.min],
];

const shapePairs: [number[], number[]][] = [
  [[7, 13], [7, 13]],
  [[3, 5, 7], [7]],
  [[3, 1, 7], [1, 5, 1]],
  [[], [2, 3]],
  [[2, 1, 4, 1, 5], [3, 1, 6, 5]],
];

for (const [name, op, f] of binaryCases) {
  test(`${name} matches float64 with broadcasting`, async () => {
    for (const [as, bs] of shapePairs) {
      const a = randomArray(sizeOf(as), rand, -2, 2);
      const b = randomArray(sizeOf(bs), rand, 0.5, 2); // away from 0 for div
      const { out, res } = broadcastRef(a, as, b, bs, f);
      const t = op(toTensor(a, as), toTensor(b, bs));
      assertClose(await t.toArray(), res, 1e-6, 0, `${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
      if (t.shape.join() !== out.join()) throw new Error(`shape ${t.shape} != ${out}`);
    }
  });
}

for (const [name, op, f] of binaryCases.slice(0, 4)) {
  test(`${name} gradient (finite differences, broadcast)`, async () => {
    const as = [3, 1, 5], bs = [4, 1];
    const w = weightsFor(3 * 4 * 5, rand);
    await gradCheck(
      ([a, b]) => E.sum(E.mul(op(a!, b!), toTensor(w, [3, 4, 5]))),
      ([a, b]) => broadcastRef(a!, as, b!, bs, f).res.reduce((s, v, i) => s + v * w[i]!, 0),
      [{ data: randomArray(15, rand, -2, 2), shape: as }, { data: randomArray(4, rand, 0.5, 2), shape: bs }],
      { what: name },
    );
  });
}

test.run();
