// solveAssignment (src/align/assignment.ts) against two references written plainly here: brute
// force over every assignment (all sizes up to 7, including rectangular n < m), and the O(n^3)
// Hungarian method with potentials (Kuhn-Munkres as in e-maxx: rows added one at a time, no
// initialization heuristics) on random matrices up to n = 200. Plus planted permutations, ties,
// extreme magnitudes, edge sizes, maximize/minimize consistency and input validation. CPU only.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { solveAssignment, type Assignment } from '../../src/align/assignment.js';
import { TEST_SEED, rng } from '../helpers.js';

const test = suite('assignment');
const rand = rng(TEST_SEED);
const seedNote = `(seed ${TEST_SEED})`;

type Kind = 'uniform' | 'integer' | 'negative' | 'nearTies' | 'corr';

/** An n x m row-major matrix of one kind. */
function makeMatrix(kind: Kind, n: number, m: number): Float64Array {
  const a = new Float64Array(n * m);
  for (let k = 0; k < a.length; k++) {
    switch (kind) {
      case 'uniform': a[k] = 2 * rand() - 1; break;
      case 'integer': a[k] = Math.floor(4 * rand()); break; // values 0..3: many tied optima
      case 'negative': a[k] = -1 - Math.floor(50 * rand()) - rand(); break;
      // 1 + {0..3} * 2^-40: exactly representable, and every sum and dual stays exact
      case 'nearTies': a[k] = 1 + Math.floor(4 * rand()) * 2 ** -40; break;
      case 'corr': a[k] = 0.15 * normal(); break;
    }
  }
  if (kind === 'corr') {
    const perm = randomPermutation(m);
    for (let i = 0; i < n; i++) a[i * m + perm[i]] += 0.4;
  }
  return a;
}

function normal(): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function randomPermutation(n: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Best total over every injective row -> column map (n <= m), by depth-first enumeration. */
function bruteForce(a: ArrayLike<number>, n: number, m: number, maximize: boolean): number {
  const sign = maximize ? -1 : 1;
  const used = new Uint8Array(m);
  let best = Infinity;
  const visit = (i: number, sum: number): void => {
    if (i === n) {
      best = Math.min(best, sum);
      return;
    }
    for (let j = 0; j < m; j++) {
      if (used[j]) continue;
      used[j] = 1;
      visit(i + 1, sum + sign * a[i * m + j]);
      used[j] = 0;
    }
  };
  visit(0, 0);
  return sign * best;
}

/**
 * The Hungarian method with potentials, O(n^2 m), minimizing; returns each row's column. Rows are
 * added one by one; each addition grows a tree of tight edges, raising the potentials by the
 * smallest slack until a free column is reached, then flips the alternating path (1-based
 * arrays, column 0 a sentinel holding the new row).
 */
function hungarian(a: ArrayLike<number>, n: number, m: number): Int32Array {
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const rowOf = new Int32Array(m + 1); // rowOf[j]: 1-based row matched to column j, 0 if none
  const way = new Int32Array(m + 1);
  for (let i = 1; i <= n; i++) {
    rowOf[0] = i;
    let j0 = 0;
    const minSlack = new Float64Array(m + 1).fill(Infinity);
    const used = new Uint8Array(m + 1);
    do {
      used[j0] = 1;
      const i0 = rowOf[j0];
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const slack = a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (slack < minSlack[j]) {
          minSlack[j] = slack;
          way[j] = j0;
        }
        if (minSlack[j] < delta) {
          delta = minSlack[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[rowOf[j]] += delta;
          v[j] -= delta;
        } else {
          minSlack[j] -= delta;
        }
      }
      j0 = j1;
    } while (rowOf[j0] !== 0);
    do {
      const j1 = way[j0];
      rowOf[j0] = rowOf[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const match = new Int32Array(n);
  for (let j = 1; j <= m; j++) if (rowOf[j] > 0) match[rowOf[j] - 1] = j - 1;
  return match;
}

function totalOf(a: ArrayLike<number>, m: number, match: Int32Array): number {
  let t = 0;
  for (let i = 0; i < match.length; i++) t += a[i * m + match[i]];
  return t;
}

/** match is injective into [0, m), and total is the matched sum in row order. */
function assertValid(res: Assignment, a: ArrayLike<number>, n: number, m: number, what: string): void {
  assert.is(res.match.length, n, `${what}: match length`);
  const seen = new Uint8Array(m);
  for (const j of res.match) {
    assert.ok(Number.isInteger(j) && j >= 0 && j < m, `${what}: column ${j} out of range`);
    assert.ok(!seen[j], `${what}: column ${j} used twice`);
    seen[j] = 1;
  }
  const sum = totalOf(a, m, res.match);
  assert.ok(Object.is(res.total, sum), `${what}: total ${res.total} is not the matched sum ${sum}`);
}

function assertTotal(got: number, expected: number, scale: number, what: string): void {
  const tol = 1e-12 * scale;
  assert.ok(Math.abs(got - expected) <= tol, `${what}: total ${got}, optimum ${expected} ${seedNote}`);
}

const scaleOf = (a: ArrayLike<number>, n: number) => n * Math.max(1, ...Array.from(a, Math.abs));

const KINDS: Kind[] = ['uniform', 'integer', 'negative', 'nearTies', 'corr'];

test('equals brute force on every size up to 7, square and rectangular, min and max', () => {
  for (let m = 1; m <= 7; m++) {
    for (let n = m === 7 ? 1 : m; n <= m; n++) {
      // square sizes get more trials; rectangular n < m spot-checks every shape
      const trials = n === m ? 6 : 2;
      for (const kind of KINDS) {
        for (let t = 0; t < trials; t++) {
          const a = makeMatrix(kind, n, m);
          for (const maximize of [false, true]) {
            const what = `${kind} ${n}x${m} ${maximize ? 'max' : 'min'}`;
            const res = solveAssignment(a, { rows: n, cols: m, maximize });
            assertValid(res, a, n, m, what);
            const best = bruteForce(a, n, m, maximize);
            if (kind === 'integer' || kind === 'nearTies') assert.is(res.total, best, `${what} ${seedNote}`);
            else assertTotal(res.total, best, scaleOf(a, n), what);
          }
        }
      }
    }
  }
  // every rectangular shape with m <= 7, not only n = m and m = 7
  for (let m = 2; m <= 6; m++) {
    for (let n = 1; n < m; n++) {
      const a = makeMatrix('integer', n, m);
      const res = solveAssignment(a, { rows: n, cols: m });
      assertValid(res, a, n, m, `integer ${n}x${m}`);
      assert.is(res.total, bruteForce(a, n, m, false), `integer ${n}x${m} ${seedNote}`);
    }
  }
});

test('equals the Hungarian method on random matrices up to n = 200', () => {
  const shapes: [number, number][] = [[8, 8], [13, 13], [31, 31], [64, 64], [97, 97], [200, 200], [20, 35], [57, 64], [120, 199]];
  for (const [n, m] of shapes) {
    for (const kind of KINDS) {
      if (n >= 120 && (kind === 'negative' || kind === 'uniform')) continue; // keep the file fast
      const a = makeMatrix(kind, n, m);
      for (const maximize of [false, true]) {
        const what = `${kind} ${n}x${m} ${maximize ? 'max' : 'min'}`;
        const res = solveAssignment(a, { rows: n, cols: m, maximize });
        assertValid(res, a, n, m, what);
        const ref = totalOf(a, m, hungarian(maximize ? a.map((x) => -x) : a, n, m));
        if (kind === 'integer' || kind === 'nearTies') assert.is(res.total, ref, `${what} ${seedNote}`);
        else assertTotal(res.total, ref, scaleOf(a, n), what);
      }
    }
  }
});

test('recovers a planted permutation from a noisy permuted identity', () => {
  for (const n of [5, 33, 128, 301]) {
    const perm = randomPermutation(n);
    const scores = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) scores[i * n + j] = (j === perm[i] ? 0.9 : 0) + 0.05 * normal();
    }
    const res = solveAssignment(scores, { maximize: true });
    assert.equal(Array.from(res.match), Array.from(perm), `n = ${n} ${seedNote}`);
  }
});

test('maximize C = minimize -C = minimize 1.01 - C (the official code), with the same matching', () => {
  for (const n of [1, 2, 9, 40, 77]) {
    const c = makeMatrix('corr', n, n);
    const max = solveAssignment(c, { maximize: true });
    const minNeg = solveAssignment(c.map((x) => -x));
    const official = solveAssignment(c.map((x) => 1.01 - x));
    // continuous random entries: the optimum is unique, so the matchings agree exactly
    assert.equal(Array.from(minNeg.match), Array.from(max.match), `n = ${n} -C ${seedNote}`);
    assert.equal(Array.from(official.match), Array.from(max.match), `n = ${n} 1.01 - C ${seedNote}`);
    assertTotal(-minNeg.total, max.total, n, 'max C vs min -C');
    // and maximizing never does worse than the best of many random permutations
    for (let t = 0; t < 20; t++) assert.ok(totalOf(c, n, randomPermutation(n)) <= max.total + 1e-12);
  }
});

test('ties: constant matrices, equal rows, all-equal columns', () => {
  for (const n of [1, 2, 3, 10, 64]) {
    const constant = new Float64Array(n * n).fill(3.5);
    const res = solveAssignment(constant);
    assertValid(res, constant, n, n, `constant ${n}`);
    assert.is(res.total, 3.5 * n);
    // every row the same: each permutation is optimal
    const rows = Array.from({ length: n }, () => Array.from({ length: n }, (_, j) => j % 3));
    const sameRows = solveAssignment(rows, { maximize: true });
    assert.is(sameRows.total, rows[0].reduce((s, x) => s + x, 0));
  }
  // many tied columns plus one forced choice: row 0 must take column 2 (the only 0 in its row)
  const a = [
    [1, 1, 0, 1],
    [0, 0, 1, 0],
    [0, 0, 1, 0],
    [0, 0, 1, 0],
  ];
  const res = solveAssignment(a);
  assert.is(res.total, 0);
  assert.is(res.match[0], 2);
});

test('negative, -0, huge, tiny and large-offset entries', () => {
  // negative-only
  const neg = makeMatrix('negative', 6, 6);
  assert.is(solveAssignment(neg).total, bruteForce(neg, 6, 6, false));
  assert.is(solveAssignment(neg, { maximize: true }).total, bruteForce(neg, 6, 6, true));
  // -0 and 0
  const zeros = new Float64Array([0, -0, -0, 0, -0, 0, 0, 0, -0]);
  const z = solveAssignment(zeros, { maximize: true });
  assertValid(z, zeros, 3, 3, '-0');
  assert.is(z.total, 0);
  for (const maximize of [false, true]) {
    // magnitudes near the float64 limit: sums of two would overflow without the solver's scaling
    const huge = makeMatrix('uniform', 6, 6).map((x) => x * 1.5e308);
    const h = solveAssignment(huge, { maximize });
    assertValid(h, huge, 6, 6, 'huge');
    const hs = huge.map((x) => x / 2 ** 1000); // exact
    assertTotal(totalOf(hs, 6, h.match), bruteForce(hs, 6, 6, maximize), 6 * 2 ** 24, `huge ${maximize}`);
    // subnormal multiples of 2^-1070: exact, and tiny enough that unscaled differences underflow
    const tiny = makeMatrix('integer', 7, 7).map((x) => x * 2 ** -1070);
    assert.is(solveAssignment(tiny, { maximize }).total, bruteForce(tiny, 7, 7, maximize), `tiny ${maximize}`);
    // 1e15 + small integers: exact sums, but a quarter of the float64 mantissa is the offset
    const offset = makeMatrix('integer', 7, 7).map((x) => 1e15 + x);
    assert.is(solveAssignment(offset, { maximize }).total, bruteForce(offset, 7, 7, maximize), `offset ${maximize}`);
    // mixed scales: 1e300 and 1e-300 entries; only the large ones matter
    const mixed = makeMatrix('uniform', 5, 5).map((x, k) => (k % 2 ? x * 1e300 : x * 1e-300));
    const mx = solveAssignment(mixed, { maximize });
    assertValid(mx, mixed, 5, 5, 'mixed');
    assert.ok(Math.abs(mx.total - bruteForce(mixed, 5, 5, maximize)) <= 1e-12 * 5e300, `mixed ${maximize} ${seedNote}`);
  }
});

test('n = 0 and n = 1, and every input form gives the same answer', () => {
  for (const empty of [[], new Float64Array(0), new Float32Array(0)]) {
    const r = solveAssignment(empty);
    assert.is(r.match.length, 0);
    assert.is(r.total, 0);
  }
  assert.is(solveAssignment(new Float64Array(0), { rows: 0, cols: 4 }).match.length, 0);
  assert.equal(Array.from(solveAssignment([[-7.5]]).match), [0]);
  assert.is(solveAssignment([[-7.5]], { maximize: true }).total, -7.5);
  const one = solveAssignment([[4, 2, 9]], { maximize: true });
  assert.equal([one.match[0], one.total], [2, 9]);
  assert.equal([solveAssignment([[4, 2, 9]]).match[0], solveAssignment([4, 2, 9], { rows: 1, cols: 3 }).total], [1, 2]);

  const n = 23;
  const a = makeMatrix('corr', n, n).map(Math.fround);
  const nested = Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n)));
  const expected = Array.from(solveAssignment(a, { maximize: true }).match);
  const forms: [string, Parameters<typeof solveAssignment>[0]][] = [
    ['Float32Array', Float32Array.from(a)],
    ['number[]', Array.from(a)],
    ['number[][]', nested],
    ['Float64Array[]', nested.map((r) => Float64Array.from(r))],
  ];
  for (const [name, input] of forms) assert.equal(Array.from(solveAssignment(input, { maximize: true }).match), expected, name);
});

test('invalid input throws a clear error', () => {
  assert.throws(() => solveAssignment([1, 2, NaN, 4]), /entry \[1\]\[0\] is NaN/);
  assert.throws(() => solveAssignment([[1, 2], [3, Infinity]]), /entry \[1\]\[1\] is Infinity; entries must be finite/);
  assert.throws(() => solveAssignment(new Float32Array([1, -Infinity, 3, 4])), /must be finite/);
  assert.throws(() => solveAssignment(new Float64Array(6)), /length 6 is not square/);
  assert.throws(() => solveAssignment(new Float64Array(6), { rows: 2, cols: 4 }), /length 6 cannot be 2 x 4/);
  assert.throws(() => solveAssignment(new Float64Array(6), { rows: 4 }), /cannot be 4 x \?/);
  assert.throws(() => solveAssignment(new Float64Array(6), { rows: 3, cols: 2 }), /3 x 2, more rows than columns/);
  assert.throws(() => solveAssignment([[1, 2], [3]]), /row 1 has length 1, row 0 has 2/);
  assert.throws(() => solveAssignment([[1, 2], [3, 4]], { rows: 3 }), /options give 3 x 2, but the rows are 2 x 2/);
  assert.throws(() => solveAssignment([[1, 2], null] as unknown as number[][]), /row 1 has length undefined/);
  assert.throws(() => solveAssignment([1, '2', 3, 4] as unknown as number[]), /entry \[0\]\[1\] is 2 \(string\), not a number/);
});

test.run();
