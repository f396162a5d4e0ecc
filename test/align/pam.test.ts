// PAM's relaxed-permutation math (src/align/pam.ts) and the PAM curve network (pam-curve.ts):
// - the Birkhoff correction (20 rounds of ReLU and the affine projection, as the official code)
//   leaves every row and column sum within 1e-3 of 1, and every entry >= -1e-3: it ends on the
//   affine step, so sums are exact and a few entries stay slightly negative (about -5e-4 at worst
//   from a gradient-sized perturbation; exact non-negativity and exact sums together would take
//   more rounds); from a matrix already doubly stochastic it changes nothing;
// - the Birkhoff-von Neumann decomposition of a matrix built from known permutations and weights
//   reproduces it, every term is a permutation, and early stopping keeps the same largest terms;
// - rounding: the assignment projection of a permutation matrix is that permutation; draws pick
//   the term their cumulative probability says;
// - with P fixed to a true permutation Q, the PAM network at t computes the same logits as the
//   plain curve between A and Q(B) (bend 1/2 A + 1/2 Q(B) + phi), for MLP, TinyTen and ResNet32.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { Curve, curveParameterNames } from '../../src/align/curve.js';
import {
  birkhoffCorrection, birkhoffVonNeumann, drawTerm, largestTerms, permutationDistance, permutationMatrix, permutationTensor, projectToPermutation, proximalStep,
} from '../../src/align/pam.js';
import { applyRelaxedPermutations, pamCoefficients, pamWeightsAt } from '../../src/align/pam-curve.js';
import { checkPermutation, disposeStateDict, permuteStateDict, randomPermutations } from '../../src/align/permute.js';
import { permutationSpec } from '../../src/align/specs.js';
import { copyInto, type StateDict } from '../../src/nn/module.js';
import { TEST_SEED, assertClose, rng, setupEngine } from '../helpers.js';
import { randomizeWeights, relativeMaxDiff, smallModel, sumsAndMin } from './models.js';

const test = suite('align pam');
test.before(setupEngine);

function randomPerm(n: number, random: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** sum_k w_k Pi_k (float64, row-major). */
function mixture(perms: Int32Array[], weights: number[], n: number): Float64Array {
  const d = new Float64Array(n * n);
  perms.forEach((p, k) => p.forEach((j, i) => (d[i * n + j] += weights[k]!)));
  return d;
}

async function corrected(m: ArrayLike<number>, n: number): Promise<Float32Array> {
  const t = E.tensor(Float32Array.from(m), [n, n]);
  const out = birkhoffCorrection(t);
  const values = await out.toArray('f32');
  t.dispose();
  out.dispose();
  return values;
}

test('Birkhoff correction: sums within 1e-3 of 1, entries >= -1e-3, from random starts', async () => {
  const random = rng(TEST_SEED);
  for (const n of [5, 17, 64]) {
    // A doubly stochastic mixture plus a gradient-sized perturbation (what a P-step leaves), and
    // a positive matrix with no structure.
    const ds = mixture([randomPerm(n, random), randomPerm(n, random), randomPerm(n, random)], [0.6, 0.3, 0.1], n);
    const starts = [ds.map((v) => v + 0.02 * (random() - 0.5)), Float64Array.from({ length: n * n }, () => (2 * random()) / n)];
    for (const [s, start] of starts.entries()) {
      const { sumError, min } = sumsAndMin(await corrected(start, n), n);
      assert.ok(sumError <= 1e-3, `n ${n}, start ${s}: a row or column sum is off by ${sumError} (seed ${TEST_SEED})`);
      assert.ok(min >= -1e-3, `n ${n}, start ${s}: an entry is ${min} (seed ${TEST_SEED})`);
    }
    // Already in the polytope: a fixed point.
    assertClose(await corrected(ds, n), ds, 0, 2e-6, `n ${n}: doubly stochastic input`);
  }
});

test('proximal step: (P + (lr/nu) P_old) / (1 + lr/nu)', async () => {
  const random = rng(TEST_SEED + 1);
  const p = Float64Array.from({ length: 36 }, () => random());
  const old = Float64Array.from({ length: 36 }, () => random());
  const [tp, to] = [E.tensor(Float32Array.from(p), [6, 6]), E.tensor(Float32Array.from(old), [6, 6])];
  const out = proximalStep(tp, to, 0.05, 1000);
  const r = 0.05 / 1000;
  assertClose(await out.toArray(), p.map((v, i) => (Math.fround(v) + r * Math.fround(old[i]!)) / (1 + r)), 1e-6, 1e-7, 'prox');
  [tp, to, out].forEach((t) => t.dispose());
});

test('Birkhoff-von Neumann: the weighted terms reproduce a known mixture; every term is a permutation', () => {
  const random = rng(TEST_SEED + 2);
  for (const n of [4, 9, 24]) {
    const perms = Array.from({ length: 5 }, () => randomPerm(n, random));
    const raw = perms.map(() => 0.2 + random());
    const weights = raw.map((w) => w / raw.reduce((a, b) => a + b, 0));
    const d = mixture(perms, weights, n);
    const terms = birkhoffVonNeumann(d, n);
    assert.ok(terms.length >= 1 && terms.length <= n * n, `n ${n}: ${terms.length} terms`);
    for (const t of terms) {
      checkPermutation(t.perm, n, 'BvN term');
      assert.ok(t.coefficient > 0 && t.coefficient <= 1 + 1e-12);
    }
    const rebuilt = mixture(terms.map((t) => t.perm), terms.map((t) => t.coefficient), n);
    // Entries at or below the tolerance 5e-4 may be dropped, at most n^2 of them per row sum.
    assertClose(rebuilt, d, 0, 2e-3, `n ${n}: sum_k q_k Pi_k`);
    const total = terms.reduce((a, t) => a + t.coefficient, 0);
    assert.ok(Math.abs(total - 1) < 2e-3, `n ${n}: coefficients sum to ${total}`);
    // Stopping once the 3 largest are certain keeps the same 3 largest.
    const early = birkhoffVonNeumann(d, n, { keep: 3 });
    const top = (ts: typeof terms) => largestTerms(ts, 3).terms.map((t) => t.coefficient.toFixed(12));
    assert.equal(top(early), top(terms), `n ${n}: the 3 largest terms`);
  }
});

test('rounding: projection of a permutation matrix is it; draws follow the cumulative distribution', () => {
  const random = rng(TEST_SEED + 3);
  const q = randomPerm(13, random);
  const pi = permutationMatrix(q);
  assert.equal([...projectToPermutation(pi, 13)], [...q]);
  assert.is(permutationDistance(pi, 13), 0);
  // A slightly relaxed Q still projects to Q, and its distance is the mean of 1 - max per row.
  const relaxed = Float64Array.from(pi, (v) => 0.9 * v + 0.1 / 13);
  assert.equal([...projectToPermutation(relaxed, 13)], [...q]);
  assert.ok(Math.abs(permutationDistance(relaxed, 13) - (1 - 0.9 - 0.1 / 13)) < 1e-12);
  const { terms, cdf } = largestTerms(
    [0.1, 0.5, 0.05, 0.35].map((c, i) => ({ coefficient: c, perm: Int32Array.of(i) })),
    3,
  );
  assert.equal(terms.map((t) => t.coefficient), [0.1, 0.35, 0.5], 'the 3 largest, ascending');
  assertClose(cdf, [0.1 / 0.95, 0.45 / 0.95, 1], 1e-12);
  assert.equal([0, 0.1, 0.2, 0.47, 0.99].map((u) => drawTerm(cdf, u)), [0, 0, 1, 1, 2]);
});

for (const arch of ['mlp', 'tinyten', 'resnet32'] as const) {
  test(`${arch}: the PAM network with P a true permutation Q is the plain curve between A and Q(B)`, async () => {
    const a = smallModel(arch, 1);
    const b = smallModel(arch, 2);
    const net = smallModel(arch, 3);
    randomizeWeights(a, TEST_SEED + 10);
    randomizeWeights(b, TEST_SEED + 11);
    net.loadStateDict(a.stateDict()); // A's running statistics, used by both networks in eval mode
    net.eval();
    const spec = permutationSpec(a);
    const q = randomPermutations(spec, rng(TEST_SEED + 12));
    const qb = permuteStateDict(b.stateDict(), spec, q);
    const names = curveParameterNames(net);
    const generator = new E.Generator(TEST_SEED + 13);
    const phi: StateDict = new Map(names.map((name) => [name, E.keep(E.randn(a.stateDict().get(name)!.shape, 0, 0.05, { generator }))]));
    const curve = new Curve(net, a.stateDict(), qb);
    E.noGrad(() =>
      E.tidy(() => {
        for (const name of names) copyInto(curve.bends[0]!.get(name)!, E.add(E.linearCombination([a.stateDict().get(name)!, qb.get(name)!], [0.5, 0.5]), phi.get(name)!));
      }),
    );
    const perms = new Map([...q].map(([g, p]) => [g, permutationTensor(p)]));
    const parts = { kind: 'bezier' as const, points: 3, names, stateA: a.stateDict(), stateB: b.stateDict(), spec, phi: [phi] };
    const x = E.keep(E.randn([4, 3, 32, 32], 0, 1, { generator }));
    try {
      // P theta_B by matmuls equals the gather of permuteStateDict.
      const permuted = E.noGrad(() => E.tidy(() => [...applyRelaxedPermutations(b.stateDict(), spec, perms, names)].map(([n, t]) => [n, E.keep(E.clone(t))] as const)));
      for (const [name, t] of permuted) assertClose(await t.toArray(), await qb.get(name)!.toArray(), 0, 1e-6, `${arch} P theta_B '${name}'`);
      permuted.forEach(([, t]) => t.dispose());
      for (const t of [0, 0.3, 0.75, 1]) {
        const [pam, plain] = E.noGrad(() =>
          E.tidy(() => [net.withParameters(pamWeightsAt(parts, perms, t), () => E.keep(net.forward(x))), net.withParameters(curve.weightsAt(t), () => E.keep(net.forward(x)))]),
        );
        const d = relativeMaxDiff(await pam!.toArray(), await plain!.toArray());
        pam!.dispose();
        plain!.dispose();
        assert.ok(d <= 1e-5, `${arch} t ${t}: logits differ by ${d} relative (seed ${TEST_SEED})`);
      }
      const c = pamCoefficients('bezier', 3, 0.3);
      assert.ok(Math.abs(c.a - 0.7) < 1e-12 && Math.abs(c.b - 0.3) < 1e-12, 'Bezier: cA = 1 - t, cB = t');
    } finally {
      x.dispose();
      curve.dispose();
      disposeStateDict(qb);
      disposeStateDict(phi);
      for (const p of perms.values()) p.dispose();
      [a, b, net].forEach((m) => m.dispose());
    }
  });
}

test('P relaxed: the gradient reaches every group matrix', async () => {
  const a = smallModel('mlp', 1);
  const b = smallModel('mlp', 2);
  randomizeWeights(a, TEST_SEED + 20);
  randomizeWeights(b, TEST_SEED + 21);
  const spec = permutationSpec(a);
  const names = curveParameterNames(a);
  const perms = new Map(spec.groups.map((g) => [g.name, E.keep(E.full([g.size, g.size], 1 / g.size))] as const));
  for (const p of perms.values()) p.requiresGrad = true;
  const parts = { kind: 'bezier' as const, points: 3, names, stateA: a.stateDict(), stateB: b.stateDict(), spec, phi: null };
  const x = E.keep(E.randn([4, 3, 32, 32], 0, 1, { generator: new E.Generator(TEST_SEED) }));
  E.tidy(() => {
    const logits = a.withParameters(pamWeightsAt(parts, perms, 0.5), () => a.forward(x));
    E.backward(E.sum(E.square(logits)));
  });
  for (const [g, p] of perms) {
    assert.ok(p.grad, `group ${g} has a gradient`);
    const values = await p.grad!.toArray();
    assert.ok(values.some((v) => v !== 0) && values.every(Number.isFinite), `group ${g}: gradient is zero or not finite`);
    p.grad!.dispose();
    p.dispose();
  }
  x.dispose();
  a.dispose();
  b.dispose();
});

test.run();
