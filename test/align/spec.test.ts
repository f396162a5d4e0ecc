// Permutation specs: every hidden unit's axes are covered exactly once (rows of every conv and
// linear layer but the classifier, every BN vector, the input axis of every layer but the first),
// and the structure the official code prescribes: ResNet32's residual stream groups and
// projection shortcuts, GoogLeNet's branch offsets in the concatenation and the auxiliary fc1's
// 16 columns per channel, VGG16's classifier reading the last conv's channels.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { permutationSpec, type PermutationSpec } from '../../src/align/index.js';
import { GoogLeNet, ResNet32 } from '../../src/nn/models/index.js';
import type { StateDict } from '../../src/nn/module.js';
import { setupEngine } from '../helpers.js';
import { ARCHITECTURES, smallModel } from './models.js';

const test = suite('align spec');
test.before(setupEngine);

/** Tensors that are never permuted along an axis: the logits' rows, the input's channels. */
const FIXED_ROWS: Record<string, RegExp> = {
  mlp: /^layers\.4\./,
  tinyten: /^dense\./,
  resnet32: /^fc\./,
  vgg16: /^classifier\.6\./,
  googlenet: /^(fc|aux[12]\.fc2)\./,
};
const FIXED_COLS: Record<string, RegExp> = {
  mlp: /^layers\.0\.weight$/,
  tinyten: /^layers\.0\.conv\.weight$/,
  resnet32: /^layers\.0\.0\.weight$/,
  vgg16: /^layer_blocks\.0\.0\.weight$/,
  googlenet: /^conv1\.conv\.weight$/,
};

/** How many times each position of (param, axis) is permuted by some group. */
function coverage(spec: PermutationSpec, state: StateDict): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const g of spec.groups) {
    for (const m of g.members) {
      const key = `${m.param}#${m.axis}`;
      const len = state.get(m.param)!.shape[m.axis]!;
      const c = out.get(key) ?? new Uint8Array(len);
      out.set(key, c);
      for (let i = 0; i < g.size * (m.inner ?? 1); i++) c[(m.offset ?? 0) + i]!++;
    }
  }
  return out;
}

test('every architecture: each hidden axis covered exactly once; logits and inputs fixed', () => {
  for (const name of ARCHITECTURES) {
    const model = smallModel(name, 1);
    const state = model.stateDict();
    const spec = permutationSpec(model);
    const cov = coverage(spec, state);
    for (const [param, t] of state) {
      if (t.dtype !== 'f32') {
        assert.not.ok(cov.has(`${param}#0`), `${name}: ${param} (a counter) is not permuted`);
        continue;
      }
      const rows = cov.get(`${param}#0`);
      if (FIXED_ROWS[name]!.test(param)) assert.not.ok(rows, `${name}: ${param} rows fixed`);
      else assert.ok(rows?.every((c) => c === 1), `${name}: every row of ${param} permuted once`);
      if (t.rank < 2) continue;
      const cols = cov.get(`${param}#1`);
      if (FIXED_COLS[name]!.test(param)) assert.not.ok(cols, `${name}: ${param} input channels fixed`);
      else assert.ok(cols?.every((c) => c === 1), `${name}: every column of ${param} permuted once`);
    }
    // Each layer's activation belongs to a group of its size, in forward order for one pass.
    assert.ok(spec.layers.length >= spec.groups.length, `${name}: a layer per group at least`);
    model.dispose();
  }
});

const has = (spec: PermutationSpec, group: string, param: string, axis: number, offset = 0, inner = 1) =>
  spec.groups.find((g) => g.name === group)?.members.some((m) => m.param === param && m.axis === axis && (m.offset ?? 0) === offset && (m.inner ?? 1) === inner) ?? false;

test('ResNet32: one stream group per stage, the stem\'s covering stage 1; projections; inner groups', () => {
  const model = new ResNet32({ inChannels: 3, numClasses: 10, width: 1, seed: 1 });
  const spec = permutationSpec(model);
  assert.is(spec.groups.length, 18, '3 stream groups + 15 inner');
  assert.is(spec.layers.length, 31, 'stem + 15 inner + 15 block outputs');
  const groups = new Map(spec.groups.map((g) => [g.name, g]));
  assert.equal(groups.get('layers.0')!.solveFrom, ['layers.0'], 'stage 1 inherits the stem matching');
  assert.equal(groups.get('layers.2.0.downsample')!.solveFrom, [0, 1, 2, 3, 4].map((b) => `layers.2.${b}`), 'stage 2: summed block outputs');
  assert.equal(groups.get('layers.3.0.downsample')!.solveFrom, [0, 1, 2, 3, 4].map((b) => `layers.3.${b}`), 'stage 3: summed block outputs');
  assert.is(groups.get('layers.3.0.downsample')!.size, 64);
  assert.ok(has(spec, 'layers.0', 'layers.1.4.conv2.weight', 0) && has(spec, 'layers.0', 'layers.1.4.bn2.running_var', 0), 'stage 1 conv2/bn2 rows by the stem');
  assert.ok(has(spec, 'layers.0', 'layers.2.0.downsample.0.weight', 1), 'projection columns by the old stream');
  assert.ok(has(spec, 'layers.2.0.downsample', 'layers.2.0.downsample.0.weight', 0), 'projection rows by the new stream');
  assert.ok(has(spec, 'layers.0', 'layers.2.0.conv1.weight', 1), 'first conv of stage 2 reads the old stream');
  assert.ok(has(spec, 'layers.2.0.downsample', 'layers.2.3.conv2.weight', 0), 'conv2 rows by the stream');
  assert.ok(has(spec, 'layers.2.3.bn1', 'layers.2.3.conv2.weight', 1), 'conv2 columns by the inner group');
  assert.ok(has(spec, 'layers.3.0.downsample', 'fc.weight', 1), 'fc columns by the last stream');
  const blockOut = spec.layers.find((l) => l.name === 'layers.1.2')!;
  assert.equal(blockOut.terms, ['layers.1.2.bn2', 'layers.1.2:input'], 'identity shortcut: the block input');
  assert.equal(spec.layers.find((l) => l.name === 'layers.2.0')!.terms, ['layers.2.0.bn2', 'layers.2.0.downsample']);
  model.dispose();
});

test('GoogLeNet: block permutations are branch permutations at their offsets; aux fc1 16 columns per channel', () => {
  const model = new GoogLeNet({ inChannels: 3, numClasses: 10, width: 1, seed: 1 });
  const spec = permutationSpec(model);
  assert.is(spec.groups.length, 3 + 9 * 6 + 2 * 2, 'stem, six convs per block, aux conv and fc1');
  // inception3a: 64 | 128 | 32 | 32 channels; inception3b reads them at 0, 64, 192, 224.
  for (const [branch, offset] of [['branch1', 0], ['branch2.1', 64], ['branch3.1', 192], ['branch4', 224]] as const) {
    for (const entry of ['branch1', 'branch2.0', 'branch3.0', 'branch4']) {
      assert.ok(has(spec, `inception3a.${branch}`, `inception3b.${entry}.conv.weight`, 1, offset), `3a.${branch} -> 3b.${entry} at ${offset}`);
    }
  }
  assert.ok(has(spec, 'inception5b.branch4', 'fc.weight', 1, 384 + 384 + 128), 'fc reads 5b.branch4 at 896');
  assert.ok(has(spec, 'inception4a.branch3.1', 'aux1.conv.conv.weight', 1, 192 + 208), 'aux1 conv reads 4a');
  assert.ok(has(spec, 'inception4d.branch1', 'aux2.conv.conv.weight', 1, 0), 'aux2 conv reads 4d');
  assert.ok(has(spec, 'aux1.conv', 'aux1.fc1.weight', 1, 0, 16), 'aux conv channel c owns fc1 columns 16c..16c+15');
  assert.ok(has(spec, 'aux2.fc1', 'aux2.fc2.weight', 1), 'fc2 columns by fc1');
  assert.ok(has(spec, 'inception3a.branch2.0', 'inception3a.branch2.1.conv.weight', 1), 'reduce conv -> 3x3 conv');
  assert.equal(spec.auxiliary, [{ module: 'aux1', input: 'inception4a' }, { module: 'aux2', input: 'inception4d' }]);
  model.dispose();
});

test('VGG16: the classifier\'s first linear reads the last conv\'s channels (1x1 map)', () => {
  const model = smallModel('vgg16', 1);
  const spec = permutationSpec(model);
  assert.is(spec.groups.length, 15, '13 convs + 2 hidden linears');
  assert.ok(has(spec, 'layer_blocks.4.4', 'classifier.1.weight', 1));
  assert.ok(has(spec, 'layer_blocks.1.2', 'layer_blocks.2.0.weight', 1), 'across a pool');
  assert.ok(has(spec, 'classifier.4', 'classifier.6.weight', 1));
  model.dispose();
});

test.run();
