// PAM's Sinkhorn relaxation (src/align/pam-sinkhorn.ts):
// - groups of one size share one logits stack (sizes 4, 7, 4: two stacks), every group's P
//   starts as Sinkhorn(I / tau), is doubly stochastic within 1e-4 at any tau of the anneal, and
//   sharpens toward the identity as tau falls;
// - through the PAM network the loss's gradient reaches every stack's logits, finite and nonzero;
// - the temperature anneals geometrically from tau_start at the first step to tau_end at the last;
// - steps, reads, the solve and dispose() leave no GPU memory held.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { curveParameterNames } from '../../src/align/curve.js';
import { pamWeightsAt } from '../../src/align/pam-curve.js';
import { SinkhornPermutations, annealedTau } from '../../src/align/pam-sinkhorn.js';
import { permutationSpec } from '../../src/align/specs.js';
import { TEST_SEED, poolInUse, setupEngine } from '../helpers.js';
import { randomizeWeights, smallModel, sumsAndMin } from './models.js';

const test = suite('pam sinkhorn');
test.before(setupEngine);

test('groups of one size share a stack; P is doubly stochastic and sharpens toward the identity as tau falls', async () => {
  const groups = [{ name: 'a', size: 4 }, { name: 'b', size: 7 }, { name: 'c', size: 4 }];
  const r = new SinkhornPermutations(groups);
  assert.equal(r.stacks.map((s) => [s.size, s.names]), [[4, ['a', 'c']], [7, ['b']]]);
  let previous = Infinity;
  for (const tau of [1, 0.3, 0.1]) {
    const { matrices, error } = await r.read(tau);
    let diagonal = Infinity;
    for (const g of groups) {
      const p = matrices.get(g.name)!;
      const e = sumsAndMin(p, g.size).sumError;
      assert.ok(e <= 1e-4, `group ${g.name} at tau ${tau}: a sum is off by ${e}`);
      assert.ok(Math.abs(e - error) <= 1e-4, `reported error ${error}`);
      // Sinkhorn(I / tau) for n units: e^(1/tau) on the diagonal, 1 elsewhere, normalized.
      const expected = Math.exp(1 / tau) / (Math.exp(1 / tau) + g.size - 1);
      for (let i = 0; i < g.size; i++) {
        assert.ok(Math.abs(p[i * g.size + i]! - expected) < 1e-4, `group ${g.name} at tau ${tau}: P_ii ${p[i * g.size + i]} != ${expected}`);
        diagonal = Math.min(diagonal, p[i * g.size + i]!);
      }
    }
    assert.ok(1 - diagonal < previous, `the diagonal does not sharpen at tau ${tau}`);
    previous = 1 - diagonal;
  }
  r.dispose();
});

test('through the PAM network the gradient reaches every logits stack', async () => {
  const a = smallModel('mlp', 1);
  const b = smallModel('mlp', 2);
  randomizeWeights(a, TEST_SEED + 30);
  randomizeWeights(b, TEST_SEED + 31);
  const spec = permutationSpec(a);
  const r = new SinkhornPermutations(spec.groups);
  const parts = { kind: 'bezier' as const, points: 3, names: curveParameterNames(a), stateA: a.stateDict(), stateB: b.stateDict(), spec, phi: null };
  const x = E.keep(E.randn([4, 3, 32, 32], 0, 1, { generator: new E.Generator(TEST_SEED) }));
  E.tidy(() => {
    const logits = a.withParameters(pamWeightsAt(parts, r.matrices(0.5), 0.7), () => a.forward(x));
    E.backward(E.sum(E.square(logits)));
  });
  for (const [name, l] of r.named()) {
    assert.ok(l.grad, `${name} has a gradient`);
    const values = await l.grad!.toArray();
    assert.ok(values.some((v) => v !== 0) && values.every(Number.isFinite), `${name}: gradient is zero or not finite`);
  }
  r.dispose();
  x.dispose();
  a.dispose();
  b.dispose();
});

test('steps, reads, the final solve and dispose() leave no GPU memory held', async () => {
  const held = poolInUse();
  const r = new SinkhornPermutations([{ name: 'a', size: 5 }, { name: 'b', size: 9 }, { name: 'c', size: 5 }]);
  for (const tau of [0.5, 0.3, 0.2]) {
    E.tidy(() => {
      const p = r.matrices(tau);
      E.backward(E.add(E.sum(E.square(p.get('a')!)), E.sum(E.square(p.get('b')!))));
    });
  }
  await r.read(0.2);
  await r.solved(0.2);
  r.dispose();
  assert.is(poolInUse(), held, 'bytes in use after dispose()');
});

test('tau anneals geometrically from tau_start to tau_end', () => {
  const total = 37;
  const taus = Array.from({ length: total }, (_, s) => annealedTau(1, 0.01, s, total));
  assert.ok(Math.abs(taus[0]! - 1) < 1e-12 && Math.abs(taus[total - 1]! - 0.01) < 1e-12, `ends ${taus[0]}, ${taus[total - 1]}`);
  for (let s = 1; s < total; s++) assert.ok(Math.abs(taus[s]! / taus[s - 1]! - 0.01 ** (1 / (total - 1))) < 1e-12, `step ${s}: not a constant ratio`);
  assert.is(annealedTau(0.5, 0.01, 0, 1), 0.5);
});

test.run();
