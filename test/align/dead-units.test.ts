// Silent units matched by their weights (src/align/dead-units.ts, issue 17). For every
// architecture, a network with units killed on purpose in every group (forceDeadUnits: incoming
// weights -|w| and bias -20, so the ReLU never fires; their weights stay distinct) and a randomly
// permuted copy of it: alignModels returns exactly the inverse permutation in every group, the
// dead units included, and the aligned state dict equals A's bit for bit (max |A - align(perm(A))|
// = 0). Live units that duplicate another on the data (duplicatedUnits in models.ts: VGG16's
// classifier, fed nearly rank-one features by a random network, has a pair now and then) are a tie
// the data cannot break: they are left out of the permutation check (at most an eighth of a group,
// never a killed unit), and the bitwise check runs when there are none. The report counts the dead units and gives the mean over signalling pairs. With
// deadUnits 'arbitrary' (the paper's behaviour) the dead units of the MLP come back in the
// solver's tie-breaking order, not the copy's. Then the helpers: the silent rule and the
// re-matching holding signalling pairs fixed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  SILENT_STD, alignModels, disposeStateDict, invertPermutation, matchSilentUnits, permuteStateDict, permutationSpec, randomPermutations, silentUnits,
  type AlignOptions, type LayerCorrelations, type PermutationSpec,
} from '../../src/align/index.js';
import type { Module } from '../../src/nn/module.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';
import { ARCHITECTURES, duplicatedUnits, forceDeadUnits, randomizeWeights, smallModel, type Architecture } from './models.js';

const test = suite('align: dead units matched by weights');
test.before(setupEngine);

/** A quarter of each group's units (at least 2 where the group has 2). */
const quarter = (size: number) => Math.max(2, Math.floor(size / 4));

async function deadPair(name: Architecture, seed: number) {
  const a = smallModel(name, 21);
  randomizeWeights(a, seed);
  const spec = permutationSpec(a);
  const killed = await forceDeadUnits(a, spec, quarter, rng(seed + 7));
  const perms = randomPermutations(spec, rng(seed + 1));
  const b = smallModel(name, 22);
  const permuted = permuteStateDict(a.stateDict(), spec, perms);
  b.loadStateDict(permuted);
  disposeStateDict(permuted);
  return { a, b, spec, perms, killed };
}

/** Random input batches [10, 3, 32, 32] drawn from TEST_SEED (kept; disposed by the caller). */
function randomBatches(count: number): E.Tensor[] {
  const generator = new E.Generator(TEST_SEED + 3);
  return Array.from({ length: count }, () => E.keep(E.randn([10, 3, 32, 32], 0, 1, { generator })));
}

/**
 * The groups whose match is not the inverse of the applied permutation, with the wrong units
 * (among those `checked` says to look at: all by default).
 */
function wrongUnits(spec: PermutationSpec, applied: Map<string, Int32Array>, got: Map<string, Int32Array>, checked = (_group: string, _unit: number) => true): string[] {
  const out: string[] = [];
  for (const g of spec.groups) {
    const inverse = invertPermutation(applied.get(g.name)!);
    const match = got.get(g.name)!;
    const wrong = [...inverse.keys()].filter((i) => checked(g.name, i) && match[i] !== inverse[i]);
    if (wrong.length) out.push(`${g.name}: units ${wrong.join(', ')}`);
  }
  return out;
}

for (const name of ARCHITECTURES) {
  test(`${name}: a permuted copy with dead units comes back exactly, dead units included`, async () => {
    const { a, b, spec, perms, killed } = await deadPair(name, TEST_SEED);
    const batches = randomBatches(3);
    const opts: AlignOptions = { batchStatistics: true, keepCorrelations: true };
    const result = await alignModels(a, b, batches, opts);
    const { stdA, stdB } = result.correlations!;
    // Every killed unit is silent in A, and its copy in B, in every layer of its group.
    for (const g of spec.groups) {
      const inverse = invertPermutation(perms.get(g.name)!);
      for (const l of g.solveFrom) {
        for (const u of killed.get(g.name)!) {
          assert.ok(stdA.get(l)![u]! < SILENT_STD, `${name} '${l}': killed unit ${u} has std ${stdA.get(l)![u]}`);
          assert.ok(stdB.get(l)![inverse[u]!]! < SILENT_STD, `${name} '${l}': B's copy of unit ${u} is silent`);
        }
      }
    }
    // Live units duplicating another (a tie of the data, see DUPLICATE_CORRELATION) are left out;
    // they are few, and never a killed unit (a silent unit correlates 0 with everything).
    const duplicated = new Map(spec.groups.map((g) => [g.name, duplicatedUnits(g, result.correlations!.matrices, invertPermutation(perms.get(g.name)!))]));
    for (const g of spec.groups) {
      const dup = duplicated.get(g.name)!;
      assert.ok(dup.size <= g.size / 8, `${name} '${g.name}': ${dup.size} of ${g.size} units duplicate another (seed ${TEST_SEED})`);
      assert.ok(killed.get(g.name)!.every((u) => !dup.has(u)), `${name} '${g.name}': a killed unit duplicates another`);
    }
    const checked = wrongUnits(spec, perms, result.permutations, (group, i) => !duplicated.get(group)!.has(i));
    assert.equal(checked, [], `${name}: every group is the inverse permutation on its distinct units (seed ${TEST_SEED})`);
    if ([...duplicated.values()].every((d) => d.size === 0)) {
      let worst = 0;
      for (const [key, t] of a.stateDict()) {
        const [x, y] = [await t.toArray(), await result.state.get(key)!.toArray()];
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
      }
      assert.is(worst, 0, `${name}: max |A - align(perm(A))| (seed ${TEST_SEED})`);
    }
    const moved = result.deadUnits.groups.reduce((n, g) => n + g.changed, 0);
    if (process.env.ALIGN_DEBUG) console.log(`${name}: ${moved} dead pairs re-matched, ${result.deadUnits.sweeps} sweeps`);
    for (const l of result.layers) {
      const g = spec.groups.find((x) => x.name === l.group)!;
      if (!g.solveFrom.includes(l.layer)) continue;
      assert.ok(l.deadA >= killed.get(l.group)!.length && l.deadB >= killed.get(l.group)!.length, `${name} '${l.layer}': dead ${l.deadA}/${l.deadB}`);
      assert.is(l.deadMatching, 'weights');
      assert.is(l.signalling, l.units - l.deadA, `${name} '${l.layer}': signalling pairs`);
      // The dead pairs count 0 in the mean over all units, not in the mean over signalling ones.
      // (NaN where every unit of the layer is dead: GoogLeNet's smallest branches.)
      if (l.signalling === 0) assert.ok(Number.isNaN(l.afterSignalling), `${name} '${l.layer}': no signalling pair`);
      else assert.ok(l.afterSignalling > l.after, `${name} '${l.layer}': ${l.afterSignalling} vs ${l.after}`);
    }
    disposeStateDict(result.state);
    for (const x of batches) x.dispose();
    for (const m of [a, b] as Module[]) m.dispose();
  });
}

test("mlp: deadUnits 'arbitrary' (the paper's) leaves dead units in the solver's order; live ones are the same", async () => {
  const { a, b, spec, perms } = await deadPair('mlp', TEST_SEED);
  const batches = randomBatches(3);
  const weights = await alignModels(a, b, batches, { batchStatistics: true });
  const arbitrary = await alignModels(a, b, batches, { batchStatistics: true, deadUnits: 'arbitrary', keepCorrelations: true });
  const wrong = wrongUnits(spec, perms, arbitrary.permutations);
  assert.ok(wrong.length > 0, `some dead unit is matched wrongly (seed ${TEST_SEED})`);
  // Units silent in A (the killed ones, and any the random weights left dead) are the only ones
  // whose match differs.
  const silent = silentUnits(arbitrary.correlations!);
  for (const g of spec.groups) {
    const [w, r] = [weights.permutations.get(g.name)!, arbitrary.permutations.get(g.name)!];
    for (let i = 0; i < g.size; i++) if (!silent.get(g.name)!.a[i]) assert.is(r[i], w[i], `${g.name}: live unit ${i} matched alike (seed ${TEST_SEED})`);
  }
  assert.ok(arbitrary.layers.every((l) => l.deadMatching === 'arbitrary'));
  assert.ok(arbitrary.deadUnits.groups.every((g) => g.changed === 0));
  for (const r of [weights, arbitrary]) disposeStateDict(r.state);
  for (const x of batches) x.dispose();
  for (const m of [a, b] as Module[]) m.dispose();
});

test('silentUnits: silent only when below the threshold in every layer of the group', () => {
  const spec: PermutationSpec = {
    architecture: 'toy',
    groups: [{ name: 'g', size: 3, members: [], solveFrom: ['l1', 'l2'] }],
    layers: [
      { name: 'l1', group: 'g', terms: [] },
      { name: 'l2', group: 'g', terms: [] },
    ],
    auxiliary: [],
  };
  const std = (...v: number[]) => Float32Array.from(v);
  const correlations: LayerCorrelations = {
    spec,
    images: 1,
    matrices: new Map(),
    stdA: new Map([['l1', std(0, 0, 1)], ['l2', std(0, 1, 0)]]),
    stdB: new Map([['l1', std(5e-5, 2e-4, 0)], ['l2', std(0, 0, 0)]]),
  };
  const s = silentUnits(correlations).get('g')!;
  assert.equal([...s.a], [1, 0, 0]);
  assert.equal([...s.b], [1, 0, 1]);
});

test('matchSilentUnits: re-pairs only the pairs with a silent unit, by weight similarity', async () => {
  // One group of 4 units, rows of W (4 x 3); B = A with rows permuted by q. Units 1 and 3 of A are
  // silent; the correlation matching got the live units right and swapped the silent ones.
  const wA = Float32Array.from([1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 1, -1]);
  const q = [2, 3, 0, 1]; // B's unit j is A's unit q^-1 ... B row i = A row q[i]
  const wB = new Float32Array(12);
  for (let i = 0; i < 4; i++) wB.set(wA.subarray(q[i]! * 3, q[i]! * 3 + 3), i * 3);
  const spec: PermutationSpec = { architecture: 'toy', groups: [{ name: 'g', size: 4, members: [{ param: 'w', axis: 0 }], solveFrom: ['l'] }], layers: [{ name: 'l', group: 'g', terms: [] }], auxiliary: [] };
  const stateA = new Map([['w', E.keep(E.tensor(wA, [4, 3]))]]);
  const stateB = new Map([['w', E.keep(E.tensor(wB, [4, 3]))]]);
  // The truth: A's unit i is B's unit q^-1[i] = [2, 3, 0, 1]; the correlation gave 1 <-> 1, 3 <-> 3 wrong.
  const correlationMatch = Int32Array.from([2, 1, 0, 3]);
  const silent = new Map([['g', { a: Uint8Array.from([0, 1, 0, 1]), b: new Uint8Array(4) }]]);
  const r = await matchSilentUnits(stateA, stateB, spec, new Map([['g', correlationMatch]]), silent);
  assert.equal([...r.permutations.get('g')!], [2, 3, 0, 1]);
  assert.equal(r.groups, [{ group: 'g', silentA: 2, silentB: 0, pairs: 2, changed: 2 }]);
  assert.equal([...correlationMatch], [2, 1, 0, 3], 'the input is not modified');
  // A live pair that is wrong stays wrong: it is the correlation's to decide.
  const wrongLive = Int32Array.from([0, 3, 2, 1]);
  const r2 = await matchSilentUnits(stateA, stateB, spec, new Map([['g', wrongLive]]), new Map([['g', { a: Uint8Array.from([0, 1, 0, 0]), b: Uint8Array.from([0, 1, 0, 0]) }]]));
  // Rows with a silent unit: 1 (silent in A) and 3 (its B unit 1 is silent in B); they hold columns 3 and 1.
  assert.equal([...r2.permutations.get('g')!], [0, 3, 2, 1]);
  for (const s of [stateA, stateB]) disposeStateDict(s);
});

test.run();
