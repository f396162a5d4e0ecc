// Weight matching (Git Re-Basin):
//  - known answer: B = A with every group randomly permuted; matching recovers exactly the inverse
//    permutation in every group of every architecture, and the permuted B equals A bit for bit;
//  - on independently initialized networks the objective sum <W_A, pi(W_B)>, recomputed here in
//    float64 from the permutations reported after each sweep, never decreases, equals the value
//    the matcher tracks, and ends above the identity's;
//  - a starting permutation is honoured, and bad inputs are refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  disposeStateDict, invertPermutation, isRunningStatistic, permutationSpec, permuteStateDict, randomPermutations, weightMatching,
  type PermutationSpec, type Permutations,
} from '../../src/align/index.js';
import type { StateDict } from '../../src/nn/module.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';
import { ARCHITECTURES, randomizeWeights, smallModel, type Architecture } from './models.js';

const test = suite('weight matching');
test.before(setupEngine);

/** sum over tensors (BN running statistics left out) of <A, pi(B)>, in float64. */
async function objective64(a: StateDict, b: StateDict, spec: PermutationSpec, perms: Permutations): Promise<number> {
  const permuted = permuteStateDict(b, spec, perms);
  let total = 0;
  for (const [name, t] of a) {
    if (t.dtype !== 'f32' || isRunningStatistic(name)) continue;
    const [x, y] = await Promise.all([t.toArray(), permuted.get(name)!.toArray()]);
    for (let i = 0; i < x.length; i++) total += x[i]! * y[i]!;
  }
  disposeStateDict(permuted);
  return total;
}

for (const name of ARCHITECTURES) {
  test(`${name}: matching a permuted copy returns the inverse permutations and A's weights`, async () => {
    const a = smallModel(name, 21);
    randomizeWeights(a, TEST_SEED);
    const spec = permutationSpec(a);
    const perms = randomPermutations(spec, rng(TEST_SEED + 1));
    const stateB = permuteStateDict(a.stateDict(), spec, perms);
    const result = await weightMatching(a.stateDict(), stateB, spec, { seed: TEST_SEED });
    const what = `${name} (seed ${TEST_SEED})`;
    assert.ok(result.converged, `${what}: converged in ${result.iterations} sweeps`);
    for (const g of spec.groups) {
      assert.equal([...result.permutations.get(g.name)!], [...invertPermutation(perms.get(g.name)!)], `${what}: group '${g.name}'`);
    }
    for (const [key, t] of a.stateDict()) {
      assert.equal([...(await result.state.get(key)!.toArray())], [...(await t.toArray())], `${what}: matched '${key}' equals A's`);
    }
    // At the answer the objective is ||A||^2 (Cauchy-Schwarz: its maximum).
    const norm2 = await objective64(a.stateDict(), a.stateDict(), spec, new Map());
    const final = result.objective.at(-1)!;
    assert.ok(Math.abs(final - norm2) <= 1e-4 * norm2, `${what}: objective ${final}, ||A||^2 ${norm2}`);
    if (process.env.ALIGN_DEBUG) console.log(`${name}: ${result.iterations} sweeps, objective ${result.objective.map((v) => v.toFixed(2)).join(' ')}`);
    for (const sd of [stateB, result.state]) disposeStateDict(sd);
    a.dispose();
  });
}

for (const name of ['mlp', 'resnet32', 'googlenet'] as Architecture[]) {
  test(`${name}: independent networks: the objective never decreases across sweeps and beats the identity`, async () => {
    const [a, b] = [21, 22].map((s) => {
      const m = smallModel(name, s);
      randomizeWeights(m, TEST_SEED + s);
      return m;
    }) as [ReturnType<typeof smallModel>, ReturnType<typeof smallModel>];
    const spec = permutationSpec(a);
    const sweeps: Permutations[] = [];
    const result = await weightMatching(a.stateDict(), b.stateDict(), spec, { seed: TEST_SEED, onSweep: (s) => sweeps.push(s.permutations) });
    const what = `${name} (seed ${TEST_SEED})`;
    assert.is(sweeps.length, result.iterations, `${what}: one report per sweep`);
    assert.is(result.objective.length, result.iterations + 1, `${what}: start + one value per sweep`);
    const recomputed = [await objective64(a.stateDict(), b.stateDict(), spec, new Map())];
    for (const p of sweeps) recomputed.push(await objective64(a.stateDict(), b.stateDict(), spec, p));
    const scale = Math.max(...recomputed.map(Math.abs));
    recomputed.forEach((v, k) => {
      assert.ok(Math.abs(v - result.objective[k]!) <= 1e-4 * scale, `${what}: sweep ${k}: tracked ${result.objective[k]}, recomputed ${v}`);
      if (k > 0) assert.ok(v >= recomputed[k - 1]! - 1e-6 * scale, `${what}: sweep ${k} lowers the objective: ${recomputed[k - 1]} -> ${v}`);
    });
    assert.ok(recomputed.at(-1)! > recomputed[0]!, `${what}: matched ${recomputed.at(-1)} vs identity ${recomputed[0]}`);
    // The returned state is B permuted by the final permutations.
    const expected = permuteStateDict(b.stateDict(), spec, result.permutations);
    for (const [key, t] of expected) assert.equal([...(await result.state.get(key)!.toArray())], [...(await t.toArray())], `${what}: state '${key}'`);
    if (process.env.ALIGN_DEBUG) console.log(`${name}: ${result.iterations} sweeps, objective ${recomputed.map((v) => v.toFixed(2)).join(' ')}`);
    for (const sd of [expected, result.state]) disposeStateDict(sd);
    a.dispose();
    b.dispose();
  });
}

/** Asserts that `fn` rejects with a message matching `pattern`. */
async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.match(String((e as Error).message), pattern);
    return;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
}

test('a starting permutation is used; the answer as start converges in one sweep', async () => {
  const a = smallModel('mlp', 21);
  randomizeWeights(a, TEST_SEED);
  const spec = permutationSpec(a);
  const perms = randomPermutations(spec, rng(TEST_SEED + 2));
  const stateB = permuteStateDict(a.stateDict(), spec, perms);
  const answer = new Map([...perms].map(([g, p]) => [g, invertPermutation(p)]));
  const result = await weightMatching(a.stateDict(), stateB, spec, { initial: answer });
  assert.is(result.iterations, 1, 'one sweep, no change');
  assert.ok(result.converged);
  for (const g of spec.groups) assert.equal([...result.permutations.get(g.name)!], [...answer.get(g.name)!], `group '${g.name}'`);
  // maxIterations bounds the sweeps.
  const capped = await weightMatching(a.stateDict(), stateB, spec, { maxIterations: 1 });
  assert.is(capped.iterations, 1);
  for (const sd of [stateB, result.state, capped.state]) disposeStateDict(sd);

  const other = smallModel('mlp', 22);
  const small = new Map(a.stateDict());
  small.delete('layers.0.bias');
  await rejects(() => weightMatching(a.stateDict(), small, spec), /differ at 'layers.0.bias'/);
  await rejects(() => weightMatching(a.stateDict(), other.stateDict(), spec, { initial: new Map([['layers.0', Int32Array.from([0, 0])]]) }), /initial permutation of 'layers.0'/);
  await rejects(() => weightMatching(a.stateDict(), other.stateDict(), spec, { maxIterations: 0 }), /maxIterations/);
  a.dispose();
  other.dispose();
});

test.run();
