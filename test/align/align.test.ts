// Known answer: aligning a network with a randomly permuted copy of itself returns exactly the
// inverse permutation in every group, a mean matched correlation of 1 (to 1e-4), and, when no unit
// is degenerate, B's aligned state dict equal to A's bit for bit.
//
// Degenerate units make ties: a dead ReLU has zero variance and correlation 0 with every unit (any
// assignment of dead units is optimal for the correlation; alignModels then matches them by their
// weights, which tell them apart, so they must come back exactly too: dead-units.test.ts kills
// units on purpose), a ReLU active on one or two samples can duplicate another (a tie of the data
// that the weights are not asked to break), and a unit with a tiny spread has a self-correlation
// (sigma / (sigma + 1e-5))^2 below 1 - 1e-4.
// So the weights are He-initialized with random BN vectors, and BN runs on batch statistics
// (`batchStatistics`) or on calibrated running statistics: every BN output then has about unit
// variance and half its samples positive, and all of those units must be live. Hidden linear
// layers without BN (MLP, VGG16's classifier, GoogLeNet's aux fc1) keep some sparse units; the
// checks leave out only units duplicating another one (silent units and sparse but distinct ones
// are checked), require at least half the units above LIVE_STD, and average the matched
// correlation over units of std >= CONDITIONED_STD. One run uses the default eval mode on the
// synthetic data set through a DataLoader, one the pre-activations.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { SILENT_STD, alignModels, disposeStateDict, invertPermutation, permuteStateDict, permutationSpec, randomPermutations, type AlignOptions, type AlignmentData } from '../../src/align/index.js';
import { DataLoader, syntheticDataset } from '../../src/nn/data/index.js';
import { BatchNorm } from '../../src/nn/layers/batchnorm.js';
import type { Module } from '../../src/nn/module.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';
import { ARCHITECTURES, duplicatedUnits, randomizeWeights, smallModel, type Architecture } from './models.js';

const test = suite('align known answer');
test.before(setupEngine);

/**
 * Units left out of the exact-permutation check: those correlated above DUPLICATE_CORRELATION with
 * another unit of the same network (a tie the data cannot break: duplicatedUnits). Silent units (std < SILENT_STD:
 * dead, correlation 0 with everything) are checked: alignModels matches them by their weights.
 * LIVE_STD: at least half of each group's units (all of a BN group's) have that spread.
 */
const LIVE_STD = 0.05;
/**
 * The self-correlation of a unit is (sigma / (sigma + 1e-5))^2 ~ 1 - 2e-5 / sigma: within 1e-4 of 1
 * needs sigma >= 0.2. Every BN output under batch statistics has that (post-ReLU std ~0.58 gamma,
 * gamma >= 0.5); hidden linear layers without BN (MLP, VGG16's classifier, GoogLeNet's aux fc1) have
 * sparse units below it.
 */
const CONDITIONED_STD = 0.2;

/** A, and B = A with every group randomly permuted; returns the permutations applied. */
function permutedPair(name: Architecture, seed: number, calibrate?: E.Tensor) {
  const a = smallModel(name, 21);
  randomizeWeights(a, seed);
  if (calibrate) calibrateBatchNorm(a, calibrate);
  const spec = permutationSpec(a);
  const perms = randomPermutations(spec, rng(seed + 1));
  const b = smallModel(name, 22);
  const permuted = permuteStateDict(a.stateDict(), spec, perms);
  b.loadStateDict(permuted);
  disposeStateDict(permuted);
  return { a, b, perms };
}

/**
 * Running statistics equal to the batch statistics of `x` (one training-mode forward with BN
 * momentum 1), as a trained network's are: eval-mode BN outputs then have about unit variance.
 * (momentum is readonly on BatchNorm; the test sets it on the instances for this one forward.)
 */
function calibrateBatchNorm(model: Module, x: E.Tensor): void {
  const bns = model.namedModules().flatMap(([, m]) => (m instanceof BatchNorm ? [m as { momentum: number }] : []));
  for (const bn of bns) bn.momentum = 1;
  model.train();
  E.tidy(() => E.noGrad(() => model.forward(x)));
  for (const bn of bns) bn.momentum = 0.1;
}

async function knownAnswer(name: Architecture, data: AlignmentData, opts: AlignOptions, expectedImages: number, calibrate?: E.Tensor): Promise<number> {
  const { a, b, perms } = permutedPair(name, TEST_SEED, calibrate);
  const buffersBefore = await Promise.all(b.namedBuffers().map(([, t]) => t.toArray()));
  const result = await alignModels(a, b, data, { ...opts, keepCorrelations: true });
  const what = `${name} (${opts.preActivation ? 'pre' : 'post'}-activation, seed ${TEST_SEED})`;
  assert.is(result.images, expectedImages, `${what}: images`);
  const { matrices, stdA } = result.correlations!;
  let excluded = 0;
  for (const g of result.spec.groups) {
    const inverse = invertPermutation(perms.get(g.name)!);
    const match = result.permutations.get(g.name)!;
    const unitsWhere = (ok: (std: number) => boolean) =>
      Array.from({ length: g.size }, (_, i) => i).filter((i) => g.solveFrom.every((l) => ok(stdA.get(l)![i]!)));
    // B's unit j is A's unit perm[j], so row i of C without column inverse[i] holds the
    // correlations of A's unit i with A's other units.
    const duplicated = duplicatedUnits(g, matrices, inverse);
    const distinct = (i: number) => !duplicated.has(i);
    const silent = new Set(unitsWhere((s) => s < SILENT_STD));
    const live = unitsWhere((s) => s >= LIVE_STD).filter(distinct);
    const checked = Array.from({ length: g.size }, (_, i) => i).filter((i) => silent.has(i) || distinct(i));
    excluded += g.size - checked.length;
    // A BN output normalized by batch (or calibrated running) statistics has no degenerate unit.
    if (g.members.some((m) => m.param.endsWith('running_mean'))) assert.is(live.length, g.size, `${what}: every unit of '${g.name}' live`);
    else assert.ok(live.length >= g.size / 2, `${what}: ${live.length} of ${g.size} units of '${g.name}' live`);
    assert.equal(
      checked.map((i) => match[i]),
      checked.map((i) => inverse[i]),
      `${what}: group '${g.name}' is the inverse permutation on its ${checked.length} checked units (${silent.size} silent)`,
    );
    const conditioned = unitsWhere((s) => s >= CONDITIONED_STD);
    for (const l of g.solveFrom) {
      const c = matrices.get(l)!;
      const mean = conditioned.reduce((p, i) => p + c[i * g.size + match[i]!]!, 0) / conditioned.length;
      assert.ok(Math.abs(mean - 1) <= 1e-4, `${what}: layer '${l}' matched correlation ${mean} on its ${conditioned.length} units of std >= ${CONDITIONED_STD}`);
    }
  }
  for (const l of result.layers) {
    const moved = perms.get(l.group)!.some((v, i) => v !== i);
    assert.ok(moved ? l.before < l.after : l.before === l.after, `${what}: layer '${l.layer}' before ${l.before}, after ${l.after}`);
  }
  if (excluded === 0) {
    for (const [key, t] of a.stateDict()) {
      assert.equal([...(await result.state.get(key)!.toArray())], [...(await t.toArray())], `${what}: aligned '${key}' equals A's`);
    }
  }
  // The models' modes and running statistics are as they were.
  const buffersAfter = await Promise.all(b.namedBuffers().map(([, t]) => t.toArray()));
  buffersAfter.forEach((v, i) => assert.equal([...v], [...buffersBefore[i]!], `${what}: buffers restored`));
  for (const [, m] of b.namedModules()) assert.ok(m.training, `${what}: training mode restored`);
  disposeStateDict(result.state);
  for (const m of [a, b] as Module[]) m.dispose();
  return excluded;
}

/** Random input batches [10, 3, 32, 32] (kept; disposed by the caller). */
function randomBatches(count: number): E.Tensor[] {
  return Array.from({ length: count }, () => E.keep(E.randn([10, 3, 32, 32])));
}

for (const name of ARCHITECTURES) {
  test(`${name}: aligning with a permuted copy returns the inverse permutations`, async () => {
    const batches = randomBatches(4);
    // 36 of the 40 images: the last batch is cut to 6.
    const dead = await knownAnswer(name, batches, { batchStatistics: true, samples: 36 }, 36);
    if (process.env.ALIGN_DEBUG) console.log(`${name}: ${dead} units left out`);
    for (const x of batches) x.dispose();
  });
}

test('resnet32, pre-activations (residual sums before the ReLU)', async () => {
  const batches = randomBatches(2);
  await knownAnswer('resnet32', batches, { batchStatistics: true, preActivation: true }, 20);
  for (const x of batches) x.dispose();
});

test('tinyten, eval mode (calibrated running statistics), synthetic images through a DataLoader', async () => {
  const loader = new DataLoader(syntheticDataset({ n: 21, seed: 3 }), { batchSize: 8 });
  const calibration = E.keep(E.randn([16, 3, 32, 32]));
  const dead = await knownAnswer('tinyten', loader, {}, 21, calibration);
  calibration.dispose();
  if (process.env.ALIGN_DEBUG) console.log(`tinyten eval: ${dead} units left out`);
});

test.run();
