// A permuted network computes the same function. For every architecture, a random permutation of
// every group of its spec, applied to a model whose BN vectors and biases are random, gives logits
// equal to the original's up to float32 rounding (max |diff| / max |logit| <= 1e-5 in eval mode,
// 3e-5 in training mode: see the tolerances):
//  - in eval mode (running statistics, which the permutation must carry along);
//  - in training mode (batch statistics) from identical starting buffers, dropout off (a dropout
//    mask is drawn per position, so it does not follow the units), where GoogLeNet's auxiliary
//    logits must agree too and the running statistics after the step must be the permuted
//    running statistics of the original.
// A control permutes one group's rows but not the next layer's columns and must change the
// logits, so the measure can see a wrong permutation.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { disposeStateDict, permuteStateDict, permutationSpec, randomPermutations, type PermutationSpec } from '../../src/align/index.js';
import { GoogLeNet } from '../../src/nn/models/index.js';
import type { Module } from '../../src/nn/module.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';
import { ARCHITECTURES, randomizeWeights, relativeMaxDiff, smallModel, trainWithoutDropout, type Architecture } from './models.js';

const test = suite('align function preservation');
test.before(setupEngine);

/**
 * max |diff| / max |logit|. Permuting channels changes the order of every conv's float32 sum
 * (relative error ~ 6e-8 sqrt(K) per layer, K = in-channels x 9), so two equivalent networks
 * differ by rounding: measured up to 1.2e-6 in eval mode and up to 9e-6 in training mode, where
 * normalizing by small batches' statistics amplifies it through VGG16's and GoogLeNet's depth
 * (batch 8, 13-22 layers). A wrong permutation differs by more than 1e-3 (the control below).
 */
const EVAL_TOLERANCE = 1e-5;
const TRAIN_TOLERANCE = 3e-5;

/** Every output of one forward: the logits, and GoogLeNet's auxiliary logits in training mode. */
async function outputs(model: Module, x: E.Tensor): Promise<Float32Array[]> {
  const outs = E.tidy(() =>
    E.noGrad(() => {
      if (model instanceof GoogLeNet) {
        const { logits, aux1, aux2 } = model.forwardWithAux(x);
        return [logits, ...(aux1 && aux2 ? [aux1, aux2] : [])];
      }
      return [model.forward(x)];
    }),
  );
  const arrays = await Promise.all(outs.map((t) => t.toArray('f32')));
  for (const t of outs) t.dispose();
  return arrays;
}

async function checkArchitecture(name: Architecture): Promise<void> {
  const rand = rng(TEST_SEED + name.length);
  const a = smallModel(name, 11);
  randomizeWeights(a, TEST_SEED);
  const spec = permutationSpec(a);
  const perms = randomPermutations(spec, rand);
  const b = smallModel(name, 12);
  const permuted = permuteStateDict(a.stateDict(), spec, perms);
  b.loadStateDict(permuted);
  disposeStateDict(permuted);
  const x = E.keep(E.randn([8, 3, 32, 32], 0, 1));

  a.eval();
  b.eval();
  const [ea] = await outputs(a, x);
  const [eb] = await outputs(b, x);
  const evalDiff = relativeMaxDiff(eb!, ea!);
  assert.ok(evalDiff <= EVAL_TOLERANCE, `${name} eval: relative difference ${evalDiff} (seed ${TEST_SEED})`);

  // Control: one group's rows permuted but not the next layer's columns.
  const broken: PermutationSpec = structuredClone(spec);
  const g = broken.groups.find((gr) => gr.members.some((m) => m.axis === 1))!;
  g.members = g.members.filter((m) => m.axis === 0);
  const wrong = permuteStateDict(a.stateDict(), broken, perms);
  const c = smallModel(name, 13);
  c.loadStateDict(wrong);
  disposeStateDict(wrong);
  c.eval();
  const [ec] = await outputs(c, x);
  if (process.env.ALIGN_DEBUG) console.log(`${name}: eval ${evalDiff}, control ${relativeMaxDiff(ec!, ea!)}`);
  assert.ok(relativeMaxDiff(ec!, ea!) > 1e-3, `${name}: a wrong permutation of '${g.name}' changes the logits`);
  c.dispose();

  trainWithoutDropout(a);
  trainWithoutDropout(b);
  const ta = await outputs(a, x);
  const tb = await outputs(b, x);
  assert.is(tb.length, name === 'googlenet' ? 3 : 1, 'auxiliary logits in training mode');
  ta.forEach((out, i) => {
    const d = relativeMaxDiff(tb[i]!, out);
    if (process.env.ALIGN_DEBUG) console.log(`${name}: train output ${i} ${d}`);
    assert.ok(d <= TRAIN_TOLERANCE, `${name} train, output ${i}: relative difference ${d} (seed ${TEST_SEED})`);
  });
  // The running statistics the step wrote are the permuted ones of the original.
  const after = permuteStateDict(a.stateDict(), spec, perms);
  for (const [key, t] of b.stateDict()) {
    if (!key.includes('running_')) continue;
    const d = relativeMaxDiff(await t.toArray(), await after.get(key)!.toArray());
    assert.ok(d <= TRAIN_TOLERANCE, `${name} train: '${key}' after the step differs by ${d}`);
  }
  disposeStateDict(after);
  a.dispose();
  b.dispose();
  x.dispose();
}

for (const name of ARCHITECTURES) {
  test(`${name}: a random permutation of every group leaves the function unchanged (eval and train)`, () => checkArchitecture(name));
}

test.run();
