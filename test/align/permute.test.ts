// Applying permutations: new[i] = old[perm[i]] along every member axis, with offsets (a branch
// inside a concatenation) and inner blocks (flattened [C, H, W] inputs), several groups on one
// tensor, untouched tensors copied bit for bit; permutation helpers; spec validation errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  composePermutations, disposeStateDict, invertPermutation, permuteStateDict, randomPermutations, validateSpec, checkPermutation,
  type PermutationSpec,
} from '../../src/align/index.js';
import type { StateDict } from '../../src/nn/module.js';
import { TEST_SEED, assertClose, rng, setupEngine, toTensor } from '../helpers.js';

const test = suite('align permute');
test.before(setupEngine);

// w [5, 14]: rows by g1 (5 units); columns 0..5 by g2 (2 units x 3), 6..7 identity, 8..13 by g3
// (2 units x 3). b [5] by g1. v [3, 5]: columns by g1. n: an i32 scalar nobody permutes.
const spec: PermutationSpec = {
  architecture: 'toy',
  groups: [
    { name: 'g1', size: 5, members: [{ param: 'w', axis: 0 }, { param: 'b', axis: 0 }, { param: 'v', axis: 1 }], solveFrom: ['l1'] },
    { name: 'g2', size: 2, members: [{ param: 'w', axis: 1, inner: 3 }], solveFrom: ['l2'] },
    { name: 'g3', size: 2, members: [{ param: 'w', axis: 1, offset: 8, inner: 3 }], solveFrom: ['l3'] },
  ],
  layers: [
    { name: 'l1', group: 'g1', terms: [] },
    { name: 'l2', group: 'g2', terms: [] },
    { name: 'l3', group: 'g3', terms: [] },
  ],
  auxiliary: [],
};

test('new[i] = old[perm[i]] along each member axis, with offsets and inner blocks', async () => {
  const rand = rng(TEST_SEED);
  const w = Float64Array.from({ length: 5 * 14 }, () => Math.fround(rand()));
  const b = Float64Array.from({ length: 5 }, () => Math.fround(rand()));
  const v = Float64Array.from({ length: 15 }, () => Math.fround(rand()));
  const state: StateDict = new Map([
    ['w', E.keep(toTensor(w, [5, 14]))],
    ['b', E.keep(toTensor(b, [5]))],
    ['v', E.keep(toTensor(v, [3, 5]))],
    ['n', E.keep(E.tensor(new Int32Array([7]), [], 'i32'))],
  ]);
  validateSpec(spec, state);
  const perms = randomPermutations(spec, rand);
  const [p1, p2, p3] = ['g1', 'g2', 'g3'].map((g) => perms.get(g)!) as [Int32Array, Int32Array, Int32Array];
  const out = permuteStateDict(state, spec, perms);
  // Column map of w: position -> source position.
  const col = (j: number) => (j < 6 ? p2[Math.floor(j / 3)]! * 3 + (j % 3) : j < 8 ? j : 8 + p3[Math.floor((j - 8) / 3)]! * 3 + ((j - 8) % 3));
  const wRef = Array.from({ length: 70 }, (_, k) => w[p1[Math.floor(k / 14)]! * 14 + col(k % 14)]!);
  assertClose(await out.get('w')!.toArray(), wRef, 0, 0, 'w');
  assertClose(await out.get('b')!.toArray(), Array.from(p1, (s) => b[s]!), 0, 0, 'b');
  assertClose(await out.get('v')!.toArray(), Array.from({ length: 15 }, (_, k) => v[Math.floor(k / 5) * 5 + p1[k % 5]!]!), 0, 0, 'v');
  assert.equal([...(await out.get('n')!.toArray())], [7], 'untouched scalar copied');
  assert.equal([...out.keys()], [...state.keys()], 'same names, same order');
  for (const [k, t] of out) assert.ok(t !== state.get(k) && t.kept, `${k}: a new kept tensor`);
  // A missing group is the identity; applying the inverse undoes a permutation.
  const back = permuteStateDict(out, spec, new Map([...perms].map(([g, p]) => [g, invertPermutation(p)])));
  assertClose(await back.get('w')!.toArray(), w, 0, 0, 'inverse restores w');
  const partial = permuteStateDict(state, spec, new Map([['g2', p2]]));
  assertClose(await partial.get('b')!.toArray(), b, 0, 0, 'g1 absent: b unchanged');
  for (const sd of [out, back, partial, state]) disposeStateDict(sd);
});

test('permutation helpers: inverse, composition, checks', () => {
  const p = Int32Array.from([2, 0, 3, 1]);
  const inv = invertPermutation(p);
  assert.equal([...composePermutations(p, inv)], [0, 1, 2, 3], 'p then its inverse');
  // old = [a b c d]; new = old[p] = [c a d b]; newer = new[q]: compose(p, q) must index old directly.
  const q = Int32Array.from([3, 2, 1, 0]);
  const old = ['a', 'b', 'c', 'd'];
  const viaTwo = Array.from(q, (i) => Array.from(p, (j) => old[j])[i]);
  assert.equal(Array.from(composePermutations(p, q), (i) => old[i]), viaTwo, 'composition = applying p then q');
  assert.throws(() => checkPermutation([0, 0, 1], 3), /repeats/);
  assert.throws(() => checkPermutation([0, 1], 3), /length 2/);
});

test('validateSpec names overlaps, overflows and groups without a layer', () => {
  const state: StateDict = new Map([['w', E.keep(E.zeros([5, 14]))], ['b', E.keep(E.zeros([5]))], ['v', E.keep(E.zeros([3, 5]))]]);
  const edit = (f: (s: PermutationSpec) => void) => {
    const s = structuredClone(spec);
    f(s);
    return () => validateSpec(s, state);
  };
  assert.throws(edit((s) => (s.groups[2]!.members[0]!.offset = 4)), /position 4 of axis 1 of 'w' is in two groups/);
  assert.throws(edit((s) => (s.groups[2]!.members[0]!.offset = 9)), /overflows axis 1 of 'w'/);
  assert.throws(edit((s) => s.groups[0]!.members.push({ param: 'x', axis: 0 })), /missing tensor 'x'/);
  assert.throws(edit((s) => (s.groups[1]!.solveFrom = [])), /group 'g2' has no layer/);
  assert.throws(edit((s) => (s.groups[1]!.solveFrom = ['l1'])), /solves from 'l1', not one of its layers/);
  for (const t of state.values()) t.dispose();
});

test.run();
