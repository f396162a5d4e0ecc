// Models: parameter counts equal the official code's, PyTorch state-dict names, forward shapes,
// state dict round trips and their errors, train/eval mode, and a small model overfitting a batch.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { createModel, MODEL_NAMES, TinyTen } from '../../src/nn/models/index.js';
import { SGD } from '../../src/nn/optim.js';
import { TEST_SEED, assertClose, rng, setupEngine } from '../helpers.js';

const test = suite('models');
test.before(setupEngine);

// Trainable parameters, sum(p.numel() for p in model.parameters()), of the official PyTorch
// definitions with 3 input channels and 10 classes, counted layer by layer from their sources:
//   TinyTen (NeuronAlignment models/tiny_ten.py): convs with bias 448+2320+4640+9248+9248+18496+36928+4160,
//     BN 2*(16+16+32+32+32+64+64+64), dense 64*10+10                                    = 86,778 (paper: 0.09M)
//   ResNet32 (models/resnet.py, 1x1 projection shortcuts, no conv bias)                  = 466,906 (paper: 0.47M)
//   GoogLeNet (models/inception.py, aux heads included): 9,960,638 for 10 classes;
//     10,237,388 for 100 classes                                                          (paper: 10.24M)
//   VGG16-BN (dnn-mode-connectivity models/vgg.py VGG16BN)                                = 15,253,578
//   MLP 3072-512-512-10                                                                   = 1,841,162
const EXPECTED: Record<string, number> = { tinyten: 86778, resnet32: 466906, googlenet: 9960638, vgg16: 15253578, mlp: 1841162 };

test('parameter counts at width 1 equal the official code', () => {
  for (const name of MODEL_NAMES) {
    E.tidy(() => {
      const m = createModel(name, { inChannels: 3, numClasses: 10, seed: 1 });
      assert.is(m.parameterCount(), EXPECTED[name], name);
      m.dispose();
    });
  }
  const g = createModel('googlenet', { numClasses: 100 });
  assert.is(g.parameterCount(), 10237388, 'googlenet, 100 classes');
  g.dispose();
});

test('state-dict names map one to one onto the PyTorch modules', () => {
  const t = createModel('tinyten');
  const names = [...t.stateDict().keys()];
  assert.equal(names.slice(0, 7), [
    'layers.0.conv.weight', 'layers.0.conv.bias', 'layers.0.bn.weight', 'layers.0.bn.bias',
    'layers.0.bn.running_mean', 'layers.0.bn.running_var', 'layers.0.bn.num_batches_tracked',
  ]);
  assert.equal(names.slice(-2), ['dense.weight', 'dense.bias']);
  t.dispose();
  const r = createModel('resnet32');
  const rn = new Set(r.stateDict().keys());
  for (const k of ['layers.0.0.weight', 'layers.0.1.running_var', 'layers.1.4.bn2.bias', 'layers.2.0.downsample.0.weight', 'layers.3.0.downsample.1.running_mean', 'fc.weight']) {
    assert.ok(rn.has(k), k);
  }
  assert.not.ok(rn.has('layers.1.0.downsample.0.weight'), 'stage 1 has no projection');
  r.dispose();
  const g = createModel('googlenet');
  const gn = new Set(g.stateDict().keys());
  for (const k of ['conv1.conv.weight', 'conv3.bn.running_mean', 'inception3a.branch2.1.conv.weight', 'inception5b.branch4.bn.bias', 'aux1.fc1.weight', 'aux2.conv.conv.weight', 'fc.bias']) {
    assert.ok(gn.has(k), k);
  }
  g.dispose();
  const v = createModel('vgg16');
  const vn = new Set(v.stateDict().keys());
  for (const k of ['layer_blocks.0.0.weight', 'layer_blocks.0.1.running_var', 'layer_blocks.4.5.bias', 'classifier.1.weight', 'classifier.6.bias']) assert.ok(vn.has(k), k);
  v.dispose();
});

test('forward shapes of every model on a 32x32 batch (1 and 3 channels)', async () => {
  for (const name of MODEL_NAMES) {
    for (const inChannels of [1, 3]) {
      const m = createModel(name, { inChannels, numClasses: 7, width: name === 'googlenet' || name === 'vgg16' ? 0.25 : 1 });
      m.eval();
      const out = E.tidy(() => E.noGrad(() => m.forward(E.randn([2, inChannels, 32, 32]))));
      assert.equal([...out.shape], [2, 7], `${name} ${inChannels}`);
      const v = await out.toArray();
      assert.ok(v.every(Number.isFinite), `${name}: finite logits`);
      out.dispose();
      m.dispose();
    }
  }
});

test('loadStateDict copies every tensor and names what differs', async () => {
  const a = createModel('tinyten', { seed: 3 });
  const b = createModel('tinyten', { seed: 4 });
  b.loadStateDict(a.stateDict());
  const x = E.randn([3, 3, 32, 32]);
  a.eval();
  b.eval();
  const [ya, yb] = await Promise.all(E.noGrad(() => [a.forward(x), b.forward(x)]).map((t) => t.toArray()));
  assertClose(yb, ya, 0, 0, 'same weights, same logits');
  const sd = new Map(a.stateDict());
  sd.delete('dense.bias');
  assert.throws(() => b.loadStateDict(sd), /lacks 1 tensor\(s\), first 'dense.bias'/);
  sd.set('dense.bias', a.stateDict().get('dense.bias')!);
  sd.set('extra.weight', a.stateDict().get('dense.bias')!);
  assert.throws(() => b.loadStateDict(sd), /unexpected tensor\(s\), first 'extra.weight'/);
  sd.delete('extra.weight');
  const c = createModel('tinyten', { numClasses: 5 });
  assert.throws(() => c.loadStateDict(a.stateDict()), /'dense.weight': expected f32\[5, 64\], got f32\[10, 64\]/);
  for (const m of [a, b, c]) m.dispose();
  x.dispose();
});

test('train/eval mode switches batch norm between batch and running statistics', async () => {
  const m = createModel('tinyten', { inChannels: 1, seed: 5 });
  const x = E.randn([4, 1, 32, 32], 3, 2); // far from the initial running stats (0, 1)
  const runningMean = () => m.stateDict().get('layers.0.bn.running_mean')!.toArray();
  const before = await runningMean();
  m.eval();
  const e1 = await E.noGrad(() => m.forward(x)).toArray();
  assertClose(await runningMean(), before, 0, 0, 'eval leaves running stats');
  m.train();
  const t1 = await E.noGrad(() => m.forward(x)).toArray();
  const after = await runningMean();
  assert.ok(after.some((v, i) => v !== before[i]), 'train updates running stats');
  assert.ok(t1.some((v, i) => Math.abs(v - e1[i]!) > 1e-3), 'train and eval outputs differ');
  for (const [, mod] of m.namedModules()) assert.ok(mod.training, 'train() reaches every module');
  assert.equal([...(await m.stateDict().get('layers.3.bn.num_batches_tracked')!.toArray())], [1], 'one training batch counted');
  m.eval();
  for (const [, mod] of m.namedModules()) assert.not.ok(mod.training, 'eval() reaches every module');
  m.dispose();
  x.dispose();
});

test('a small TinyTen overfits a fixed batch of 64 Fashion-MNIST-sized inputs', async () => {
  const rand = rng(TEST_SEED);
  const m = new TinyTen({ inChannels: 1, numClasses: 10, width: 0.5, seed: 7 });
  const x = E.keep(E.randn([64, 1, 32, 32]));
  const y = E.keep(E.tensor(Int32Array.from({ length: 64 }, () => Math.floor(rand() * 10)), [64], 'i32'));
  const opt = new SGD(m.parameters(), { lr: 0.05, momentum: 0.9 });
  let first = NaN;
  let last = NaN;
  for (let step = 0; step < 60; step++) {
    const loss = E.tidy(() => {
      const l = E.crossEntropy(m.forward(x), y);
      E.backward(l);
      opt.step();
      opt.zeroGrad();
      return l;
    });
    if (step === 0) first = await loss.item();
    if (step === 59) last = await loss.item();
    loss.dispose();
  }
  assert.ok(last < 0.05 * first, `loss ${first} -> ${last}: not under 5% of the start`);
  m.dispose();
  x.dispose();
  y.dispose();
});

test.run();
