// Log-domain Sinkhorn (src/align/sinkhorn.ts), PAM's Sinkhorn relaxation, on fresh random logits
// (new tensors start NaN-poisoned, so an unwritten output shows):
// - logSinkhorn's K rounds of row then column log-normalization of a stack [G, n, n] match a
//   float64 reference (odd sizes), and its gradient matches finite differences of it;
// - solveSinkhorn, annealed from tau = 1 to 0.01 with the potentials carried over (as the P-step
//   does), leaves every row and column sum within 1e-4 of 1 at every temperature, and at tau = 1
//   matches the float64 fixed point;
// - as tau -> 0 on logits with a unique optimal assignment, P tends to that assignment's
//   permutation matrix (computed by solveAssignment, the rounding's projection).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { solveAssignment } from '../../src/align/assignment.js';
import { logSinkhorn, solveSinkhorn } from '../../src/align/sinkhorn.js';
import { TEST_SEED, assertClose, dotRef, gradCheck, randomArray, rng, setupEngine, toTensor, weightsFor } from '../helpers.js';

const test = suite('sinkhorn');
const rand = rng(TEST_SEED);
test.before(setupEngine);

/** `rounds` rounds of row then column log-normalization of each n x n matrix of x (float64). */
function logSinkhornRef(x: ArrayLike<number>, n: number, rounds: number): Float64Array {
  const y = Float64Array.from(x);
  const normalize = (g: number, a: number, rows: boolean) => {
    const at = (b: number) => g * n * n + (rows ? a * n + b : b * n + a);
    let m = -Infinity;
    for (let b = 0; b < n; b++) m = Math.max(m, y[at(b)]!);
    let s = 0;
    for (let b = 0; b < n; b++) s += Math.exp(y[at(b)]! - m);
    const lse = m + Math.log(s);
    for (let b = 0; b < n; b++) y[at(b)] = y[at(b)]! - lse;
  };
  for (let k = 0; k < rounds; k++) {
    for (const rows of [true, false]) for (let g = 0; g < y.length / (n * n); g++) for (let a = 0; a < n; a++) normalize(g, a, rows);
  }
  return y;
}

/** max over matrices, rows and columns of |sum - 1| of exp(logP) (float64 sums). */
function sumError(logP: ArrayLike<number>, n: number): number {
  let worst = 0;
  for (let g = 0; g < logP.length / (n * n); g++) {
    for (let a = 0; a < n; a++) {
      let r = 0;
      let c = 0;
      for (let b = 0; b < n; b++) {
        r += Math.exp(logP[g * n * n + a * n + b]!);
        c += Math.exp(logP[g * n * n + b * n + a]!);
      }
      worst = Math.max(worst, Math.abs(r - 1), Math.abs(c - 1));
    }
  }
  return worst;
}

test('logSinkhorn: K rounds on a stack of matrices match float64; gradient by finite differences', async () => {
  for (const [g, n, rounds, spread] of [[3, 7, 5, 3], [1, 5, 20, 30], [2, 16, 3, 1]] as const) {
    const x = randomArray(g * n * n, rand, -spread, spread);
    const y = logSinkhorn(toTensor(x, g === 1 ? [n, n] : [g, n, n]), rounds);
    assertClose(await y.toArray(), logSinkhornRef(x, n, rounds), 1e-4, 1e-4, `[${g}, ${n}, ${n}] x ${rounds} rounds`);
    y.dispose();
  }
  const [g, n, rounds] = [2, 3, 3];
  const w = weightsFor(g * n * n, rand);
  await gradCheck(
    ([a]) => E.sum(E.mul(logSinkhorn(a!, rounds), toTensor(w, [g, n, n]))),
    ([a]) => dotRef(logSinkhornRef(a!, n, rounds), w),
    [{ data: randomArray(g * n * n, rand, -2, 2), shape: [g, n, n] }],
    { what: 'logSinkhorn' },
  );
});

test('solveSinkhorn: rows and columns sum to 1 within 1e-4 at every temperature from 1 to 0.01', async () => {
  for (const [g, n] of [[3, 5], [2, 17], [1, 64]] as const) {
    const l = randomArray(g * n * n, rand, -1, 1);
    const logits = E.keep(toTensor(l, [g, n, n]));
    let potentials: E.Tensor | null = null;
    for (const tau of [1, 0.3, 0.1, 0.03, 0.01]) {
      const s = await solveSinkhorn(logits, tau, { potentials, maxIterations: 20000 });
      const logP = await s.logP.toArray();
      const error = sumError(logP, n);
      assert.ok(error <= 1e-4, `[${g}, ${n}, ${n}] at tau ${tau}: a row or column sums to 1 +- ${error} after ${s.iterations} rounds (seed ${TEST_SEED})`);
      assert.ok(Math.abs(error - s.error) < 1e-5, `the reported error ${s.error} is the float64 one ${error}`);
      if (tau === 1) assertClose(logP, logSinkhornRef(l, n, 2000), 1e-4, 1e-4, `[${g}, ${n}, ${n}] at tau 1: the fixed point`);
      potentials?.dispose();
      potentials = s.potentials;
      s.logP.dispose();
    }
    potentials?.dispose();
    logits.dispose();
  }
});

test('solveSinkhorn: as tau -> 0 on logits with a unique optimum, P tends to the assignment\'s permutation', async () => {
  for (const n of [6, 23]) {
    // Noise in [0, 0.4) plus 1 on a hidden permutation: any other permutation loses at least 2
    // of the bonus and gains at most 0.8 of noise, so the optimum is unique with a margin.
    const hidden = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [hidden[i], hidden[j]] = [hidden[j]!, hidden[i]!];
    }
    const l = Float64Array.from({ length: n * n }, (_, k) => 0.4 * rand() + (hidden[Math.floor(k / n)] === k % n ? 1 : 0));
    const { match } = solveAssignment(l, { maximize: true, rows: n, cols: n });
    const logits = E.keep(toTensor(l, [n, n]));
    let previous = Infinity;
    let potentials: E.Tensor | null = null;
    for (const tau of [1, 0.3, 0.1, 0.03, 0.01]) {
      const s = await solveSinkhorn(logits, tau, { potentials, maxIterations: 20000 });
      const p = (await s.logP.toArray()).map(Math.exp);
      let distance = 0; // max |P - Pi| over entries
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) distance = Math.max(distance, Math.abs(p[i * n + j]! - (match[i] === j ? 1 : 0)));
      assert.ok(distance < previous, `n ${n}: max |P - Pi| ${distance} at tau ${tau} did not shrink from ${previous} (seed ${TEST_SEED})`);
      previous = distance;
      potentials?.dispose();
      potentials = s.potentials;
      s.logP.dispose();
    }
    assert.ok(previous < 1e-3, `n ${n}: at tau 0.01, max |P - Pi| is ${previous} (seed ${TEST_SEED})`);
    potentials?.dispose();
    logits.dispose();
  }
});

test('solveSinkhorn refuses a temperature <= 0; logSinkhorn a non-square matrix', async () => {
  const l = E.keep(E.zeros([3, 3]));
  let threw = false;
  await solveSinkhorn(l, 0).catch((e: Error) => (threw = /temperature must be positive/.test(e.message)));
  assert.ok(threw, 'tau 0 is refused');
  assert.throws(() => logSinkhorn(E.zeros([3, 4])), /expects square matrices/);
  l.dispose();
});

test.run();
