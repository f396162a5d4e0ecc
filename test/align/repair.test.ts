// REPAIR:
//  - after repair, every repaired layer's pre-activation channel means and stds, measured here in
//    float64 on the same data in the final network (so each layer after the ones before it were
//    repaired), equal the interpolation of the endpoints' (MLP at t = 0.5 and 0.3; TinyTen with
//    its corrections folded into eval-mode batch norms), while the plain interpolation misses
//    them; t = 0 gives back A; modelB comes back untouched;
//  - which layers are repairable (a ResNet's residual sums are not);
//  - on two MLPs trained on the synthetic data set and matched by weight matching, the repaired
//    midpoint's test loss is lower than the plain midpoint's.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  collectActivations, disposeStateDict, permutationSpec, repairInterpolation, repairableLayers, weightMatching, withAlignmentMode,
  type PermutationSpec,
} from '../../src/align/index.js';
import { interpolateInto } from '../../src/align/interpolate.js';
import { DataLoader, syntheticDataset } from '../../src/nn/data/index.js';
import { evaluate } from '../../src/nn/evaluate.js';
import { MLP } from '../../src/nn/models/index.js';
import type { Module } from '../../src/nn/module.js';
import { SGD } from '../../src/nn/optim.js';
import { TEST_SEED, setupEngine } from '../helpers.js';
import { randomizeWeights, relativeMaxDiff, smallModel, type Architecture } from './models.js';

const test = suite('repair');
test.before(setupEngine);

interface Stats {
  mean: number[];
  std: number[];
}

/**
 * Float64 per-channel mean and population std of each layer's pre-activation over all batches
 * (channel axis 1; every other position a sample), the model in eval mode.
 */
async function measure(model: Module, spec: PermutationSpec, layers: string[], batches: E.Tensor[]): Promise<Map<string, Stats>> {
  const values = new Map<string, { shape: number[]; data: Float32Array }[]>(layers.map((l) => [l, []]));
  const only = { ...spec, layers: spec.layers.filter((l) => layers.includes(l.name)) };
  await withAlignmentMode([model], false, async () => {
    for (const x of batches) {
      const acts = E.tidy(() => E.noGrad(() => [...collectActivations(model, only, x, { preActivation: true })].map(([name, t]) => [name, E.keep(t)] as const)));
      for (const [name, t] of acts) {
        values.get(name)!.push({ shape: [...t.shape], data: await t.toArray('f32') });
        t.dispose();
      }
    }
  });
  const out = new Map<string, Stats>();
  for (const [name, list] of values) {
    const channels = list[0]!.shape[1]!;
    const sums = new Float64Array(channels);
    const squares = new Float64Array(channels);
    let count = 0;
    for (const pass of [0, 1]) {
      for (const { shape, data } of list) {
        const inner = shape.slice(2).reduce((p, d) => p * d, 1);
        for (let k = 0; k < data.length; k++) {
          const c = Math.floor(k / inner) % channels;
          if (pass === 0) sums[c] += data[k]!;
          else squares[c] += (data[k]! - sums[c]! / count) ** 2;
        }
        if (pass === 0) count += data.length / channels;
      }
    }
    out.set(name, { mean: Array.from(sums, (s) => s / count), std: Array.from(squares, (s) => Math.sqrt(s / count)) });
  }
  return out;
}

/** The largest miss of the targets: |mean - target| / (|target| + target std), |std - target| / target std. */
function worstMiss(got: Stats, target: Stats): { mean: number; std: number } {
  let mean = 0;
  let std = 0;
  target.mean.forEach((mu, c) => {
    const sigma = target.std[c]!;
    mean = Math.max(mean, Math.abs(got.mean[c]! - mu) / (Math.abs(mu) + sigma));
    std = Math.max(std, Math.abs(got.std[c]! - sigma) / sigma);
  });
  return { mean, std };
}

/**
 * Repairs (1 - t) A + t B and checks every repaired layer of the result against the targets,
 * and that the plain interpolation misses them by more than 1%.
 */
async function checkTargets(name: Architecture, t: number, useWorkspace: boolean): Promise<void> {
  const what = `${name}, t = ${t} (seed ${TEST_SEED})`;
  const [a, b, mid] = [21, 22, 23].map((s) => {
    const m = smallModel(name, s);
    randomizeWeights(m, TEST_SEED + s);
    return m;
  }) as [Module, Module, Module];
  const spec = permutationSpec(a);
  const layers = repairableLayers(a, spec).map((l) => l.name);
  // Three batches of 9: 27 images, 25 of them used.
  const batches = [0, 1, 2].map(() => E.keep(E.randn([9, 3, 32, 32])));
  const data = batches.map((x, i) => (i < 2 ? x : E.keep(E.slice(x, [0], [7]))));
  const bBefore = await Promise.all([...b.stateDict().values()].map((x) => x.toArray()));

  const repaired = await repairInterpolation(a, b, t, batches, { samples: 25, ...(useWorkspace ? { workspace: mid } : {}) });
  const [statsA, statsB] = await Promise.all([measure(a, spec, layers, data), measure(b, spec, layers, data)]);
  interpolateInto(mid, a.stateDict(), b.stateDict(), t);
  const plain = await measure(mid, spec, layers, data);
  mid.loadStateDict(repaired);
  const after = await measure(mid, spec, layers, data);
  let plainMiss = 0;
  for (const layer of layers) {
    const [sa, sb] = [statsA.get(layer)!, statsB.get(layer)!];
    const target: Stats = { mean: sa.mean.map((m, c) => (1 - t) * m + t * sb.mean[c]!), std: sa.std.map((s, c) => (1 - t) * s + t * sb.std[c]!) };
    const miss = worstMiss(after.get(layer)!, target);
    if (process.env.ALIGN_DEBUG) console.log(`${what} ${layer}: ${JSON.stringify(miss)}`);
    assert.ok(miss.mean <= 1e-3 && miss.std <= 1e-3, `${what}: layer '${layer}' misses its targets by ${JSON.stringify(miss)}`);
    const before = worstMiss(plain.get(layer)!, target);
    plainMiss = Math.max(plainMiss, before.mean, before.std);
  }
  assert.ok(plainMiss > 0.01, `${what}: the plain interpolation already meets the targets (${plainMiss})`);
  const bAfter = await Promise.all([...b.stateDict().values()].map((x) => x.toArray()));
  bAfter.forEach((v, i) => assert.equal([...v], [...bBefore[i]!], `${what}: modelB restored`));
  disposeStateDict(repaired);

  // t = 0 is A itself: its statistics are the targets, and repair changes nothing.
  const atA = await repairInterpolation(a, b, 0, batches, { samples: 25 });
  for (const [key, x] of a.stateDict()) {
    if (x.dtype !== 'f32') continue;
    const diff = relativeMaxDiff(await atA.get(key)!.toArray(), await x.toArray());
    assert.ok(diff <= 1e-5, `${what}: t = 0 changes '${key}' by ${diff}`);
  }
  disposeStateDict(atA);
  for (const x of new Set([...batches, ...data])) x.dispose();
  for (const m of [a, b, mid]) m.dispose();
}

test('mlp: repaired channel statistics are the interpolated targets (t = 0.5, 0.3)', async () => {
  await checkTargets('mlp', 0.5, false);
  await checkTargets('mlp', 0.3, true);
});

test('tinyten: corrections folded into eval-mode batch norms meet the targets', async () => {
  await checkTargets('tinyten', 0.5, true);
});

test('repairable layers: one affine module with a bias; residual sums are left out', () => {
  const resnet = smallModel('resnet32', 1);
  const spec = permutationSpec(resnet);
  const names = repairableLayers(resnet, spec).map((l) => l.name);
  const expected = spec.layers.filter((l) => l.terms.length === 1).map((l) => l.name);
  assert.equal(names, expected);
  assert.ok(names.length < spec.layers.length && names.includes('layers.0') && names.includes('layers.1.0.bn1'));
  resnet.dispose();
  const mlp = smallModel('mlp', 1);
  assert.equal(repairableLayers(mlp).map((l) => l.name), ['layers.0', 'layers.2']);
  mlp.dispose();
});

/** An MLP trained `steps` SGD steps (momentum 0.9) on `loader`. */
function train(seed: number, loader: DataLoader, steps: number): MLP {
  const model = new MLP({ inFeatures: 3 * 32 * 32, hidden: [32, 32], numClasses: 10, seed });
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  for (let step = 0; step < steps; step++) {
    E.tidy(() => {
      const { x, y } = loader.batch(Math.floor(step / loader.length), step % loader.length);
      E.backward(E.crossEntropy(model.forward(x), y));
      E.noGrad(() => opt.step());
    });
    opt.zeroGrad();
  }
  opt.dispose();
  return model;
}

test('trained MLPs: the repaired midpoint has a lower test loss than the plain midpoint', async () => {
  // Noise 300 (of 255) makes the task hard enough that the endpoints disagree (test loss ~1.3).
  const options = { n: 320, seed: 4, noise: 300 };
  const trainSet = syntheticDataset(options);
  const seed = TEST_SEED % 1000;
  const a = train(seed, new DataLoader(trainSet, { batchSize: 32, shuffle: true, seed }), 40);
  const b = train(seed + 1, new DataLoader(trainSet, { batchSize: 32, shuffle: true, seed: seed + 1 }), 40);
  const matched = await weightMatching(a.stateDict(), b.stateDict(), permutationSpec(a), { seed });
  b.loadStateDict(matched.state);
  disposeStateDict(matched.state);
  const testLoader = new DataLoader(syntheticDataset({ ...options, split: 'test' }), { batchSize: 64 });
  const mid = new MLP({ ...a.config, seed: 0 });
  interpolateInto(mid, a.stateDict(), b.stateDict(), 0.5);
  const plain = await evaluate(mid, testLoader);
  const repaired = await repairInterpolation(a, b, 0.5, new DataLoader(trainSet, { batchSize: 64 }));
  mid.loadStateDict(repaired);
  disposeStateDict(repaired);
  const fixed = await evaluate(mid, testLoader);
  const [la, lb] = [await evaluate(a, testLoader), await evaluate(b, testLoader)];
  const report = `endpoints ${la.loss.toFixed(3)} / ${lb.loss.toFixed(3)}, plain midpoint ${plain.loss.toFixed(3)}, repaired ${fixed.loss.toFixed(3)} (seed ${seed})`;
  if (process.env.ALIGN_DEBUG) console.log(report);
  assert.ok(fixed.loss < plain.loss, report);
  for (const m of [a, b, mid]) m.dispose();
});

test.run();
