// Evaluation along the straight line with batch-norm re-estimation:
// - recomputeBatchNorm's cumulative momentum b / (n_seen + b) leaves every BN layer's running
//   statistics equal to the b-weighted mean of its batch means and of its unbiased batch variances
//   over the pass (a float64 reference from the captured BN inputs; the last batch is smaller, so
//   an unweighted mean or PyTorch's default momentum 0.1 would fail);
// - the line reproduces its endpoints exactly: at t = 0 (t = 1) the loss and accuracy are
//   bit-identical to `evaluate` on A (B) after A's (B's) own re-estimation on the same loader, the
//   point's weights are A's (B's) bit for bit, and without re-estimation t = 0 is A as it is;
// - a network without batch norm needs no pass.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { batchNormLayers, evaluateLine, interpolateInto, linspace, recomputeBatchNorm } from '../../src/align/interpolate.js';
import { CIFAR_AUGMENT, DataLoader, subset, syntheticDataset } from '../../src/nn/data/index.js';
import { evaluate } from '../../src/nn/evaluate.js';
import { MLP, TinyTen } from '../../src/nn/models/index.js';
import type { Module } from '../../src/nn/module.js';
import { TEST_SEED, assertClose, setupEngine } from '../helpers.js';
import { randomizeWeights } from './models.js';

const test = suite('interpolate');
test.before(setupEngine);

const train = syntheticDataset({ n: 40, seed: 3, split: 'train' });
const testSet = syntheticDataset({ n: 30, seed: 3, split: 'test' });

/** TinyTen at width 0.25 (4 to 16 channels) with random weights and BN vectors. */
function tinyTen(seed: number): Module {
  const m = new TinyTen({ inChannels: 3, numClasses: 10, width: 0.25, seed });
  randomizeWeights(m, TEST_SEED + seed);
  return m.eval();
}

test('linspace: equally spaced, both ends exact', () => {
  assert.equal(linspace(5), [0, 0.25, 0.5, 0.75, 1]);
  const ts = linspace(65);
  assert.is(ts.length, 65);
  assert.is(ts[32], 0.5);
  assert.is(ts[64], 1);
  assert.throws(() => linspace(1), /integer >= 2/);
});

test('BN re-estimation = b-weighted mean of the batch means and unbiased batch variances (float64)', async () => {
  const model = tinyTen(1);
  const bns = batchNormLayers(model);
  assert.is(bns.length, 8);
  // Capture every BN input of every batch (kept copies), with the same forward hooks as activations.ts.
  const inputs = bns.map(() => [] as E.Tensor[]);
  bns.forEach((bn, l) => {
    const forward = bn.forward;
    bn.forward = (x: E.Tensor) => {
      inputs[l]!.push(E.keep(E.clone(x)));
      return forward.call(bn, x);
    };
  });
  // 19 images in batches of 7, 7, 5, shuffled and augmented.
  const loader = new DataLoader(subset(train, 0, 19), { batchSize: 7, shuffle: true, augment: CIFAR_AUGMENT, seed: 5 });
  const result = await recomputeBatchNorm(model, loader);
  for (const bn of bns) delete (bn as { forward?: unknown }).forward;
  assert.equal(result, { images: 19, batches: 3 });

  for (const [l, bn] of bns.entries()) {
    const [n0, c] = inputs[l]![0]!.shape as [number, number];
    const expectedMean = new Float64Array(c);
    const expectedVar = new Float64Array(c);
    let seen = 0;
    for (const x of inputs[l]!) {
      const [b, , h, w] = x.shape as [number, number, number, number];
      const data = await x.toArray();
      const count = b * h * w;
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let i = 0; i < b; i++) for (let p = 0; p < h * w; p++) s += data[(i * c + ch) * h * w + p]!;
        const mu = s / count;
        let ss = 0;
        for (let i = 0; i < b; i++) for (let p = 0; p < h * w; p++) ss += (data[(i * c + ch) * h * w + p]! - mu) ** 2;
        expectedMean[ch] += b * mu;
        expectedVar[ch] += (b * ss) / (count - 1);
      }
      seen += b;
      x.dispose();
    }
    assert.is(seen, 19);
    assert.is(n0, 7);
    const state = bn.stateDict();
    const what = `BN ${l} (seed ${TEST_SEED})`;
    assertClose(await state.get('running_mean')!.toArray(), expectedMean.map((v) => v / seen), 1e-4, 1e-5, `${what} running_mean`);
    assertClose(await state.get('running_var')!.toArray(), expectedVar.map((v) => v / seen), 1e-4, 1e-6, `${what} running_var`);
    assert.is(await state.get('num_batches_tracked')!.item(), 3, `${what} num_batches_tracked`);
    assert.is(bn.momentum, 0.1, 'momentum restored');
    assert.not.ok(bn.training, 'eval mode restored');
  }
  // The re-estimated network's BN outputs have batch-statistics scale: evaluation is finite.
  const r = await evaluate(model, new DataLoader(testSet, { batchSize: 16 }));
  assert.ok(Number.isFinite(r.loss), `loss ${r.loss}`);
  // --bn-batches: only the first batch.
  assert.equal(await recomputeBatchNorm(model, loader, { batches: 1 }), { images: 7, batches: 1 });
  model.dispose();
});

test('the line at t = 0 and t = 1 is A and B evaluated after their own BN re-estimation, exactly', async () => {
  const [a, b, net] = [tinyTen(1), tinyTen(2), tinyTen(3)];
  const bnLoader = new DataLoader(subset(train, 0, 24), { batchSize: 8, shuffle: true, augment: CIFAR_AUGMENT, seed: 0 });
  const testLoader = new DataLoader(testSet, { batchSize: 16 });
  const [sa, sb] = [a.stateDict(), b.stateDict()];

  // Without re-estimation the endpoint is A with its own running statistics.
  const [plain] = await evaluateLine(net, sa, sb, [0], { bn: null, test: testLoader });
  const asIs = await evaluate(a, testLoader);
  assert.equal([plain!.loss, plain!.accuracy, plain!.bnImages], [asIs.loss, asIs.accuracy, 0]);

  const points = await evaluateLine(net, sa, sb, [0, 0.5, 1], { bn: bnLoader, test: testLoader });
  assert.equal(points.map((p) => [p.t, p.images, p.bnImages]), [[0, 30, 24], [0.5, 30, 24], [1, 30, 24]]);
  // net now holds t = 1: B's parameters bit for bit.
  for (const [name, t] of net.namedParameters()) assert.equal([...(await t.toArray())], [...(await sb.get(name)!.toArray())], `t = 1: '${name}' is B's`);

  for (const [model, point, what] of [[a, points[0]!, 'A'], [b, points[2]!, 'B']] as const) {
    await recomputeBatchNorm(model, bnLoader);
    const own = await evaluate(model, testLoader);
    assert.equal([point.loss, point.accuracy], [own.loss, own.accuracy], `${what} after its own BN re-estimation`);
  }
  assert.ok(asIs.loss !== points[0]!.loss, 'the re-estimated statistics differ from the random running ones');
  assert.ok(points[1]!.loss !== points[0]!.loss && points[1]!.loss !== points[2]!.loss, 'the midpoint is another network');

  // The midpoint's parameters are the mean of the endpoints' (to f32 rounding).
  interpolateInto(net, sa, sb, 0.5);
  const [wa, wb, wm] = await Promise.all([sa, sb, net.stateDict()].map((s) => s.get('layers.3.conv.weight')!.toArray()));
  assertClose(wm!, Float64Array.from(wa!, (v, i) => (v + wb![i]!) / 2), 1e-6, 1e-7, 'midpoint weights');
  for (const m of [a, b, net]) m.dispose();
});

test('a network without batch norm needs no pass: the line starts at A as it is', async () => {
  const mlp = (seed: number) => new MLP({ inFeatures: 3 * 32 * 32, hidden: [13, 11], numClasses: 10, seed }).eval();
  const [a, b, net] = [mlp(1), mlp(2), mlp(3)];
  const testLoader = new DataLoader(testSet, { batchSize: 16 });
  const bnLoader = new DataLoader(train, { batchSize: 8 });
  assert.equal(await recomputeBatchNorm(a, bnLoader), { images: 0, batches: 0 });
  const points = await evaluateLine(net, a.stateDict(), b.stateDict(), [0, 1], { bn: bnLoader, test: testLoader });
  const [ea, eb] = [await evaluate(a, testLoader), await evaluate(b, testLoader)];
  assert.equal(points.map((p) => [p.loss, p.accuracy, p.bnImages]), [[ea.loss, ea.accuracy, 0], [eb.loss, eb.accuracy, 0]]);
  for (const m of [a, b, net]) m.dispose();
});

test.run();
