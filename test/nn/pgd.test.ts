// PGD and FGSM (src/nn/pgd.ts): every iterate inside the eps-ball and [0, 1] in pixel space
// (float64 recomputation of the bounds through the loader's normalization); on a trained model
// PGD's loss >= the clean loss and >= a random perturbation's of the same size, a larger eps never
// lowers it, eps 0 is the clean loss exactly, FGSM equals PGD with one step and no random start;
// the input gradient against central differences of a float64 reference; the attack leaves the
// parameters' gradients, the BN running statistics and the model's mode as they were; adversarial
// training (Madry) raises PGD accuracy above a standard model's on a small synthetic problem.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { DataLoader, syntheticDataset, type Batch } from '../../src/nn/data/index.js';
import { Linear } from '../../src/nn/layers/linear.js';
import { MLP } from '../../src/nn/models/mlp.js';
import { createModel } from '../../src/nn/models/index.js';
import type { Module } from '../../src/nn/module.js';
import { SGD } from '../../src/nn/optim.js';
import {
  adversarialObjective, fgsm, inputGradient, inputSpace, pgd, pgdGenerator, pgdRecipe, pixelSpace, withModelFrozen, type InputSpace,
} from '../../src/nn/pgd.js';
import { trainLoop } from '../../src/nn/train.js';
import { TEST_SEED, assertClose, logSoftmaxRef, rng, setupEngine } from '../helpers.js';

const test = suite('pgd');

/** 8 x 8 one-channel synthetic images, 10 classes. */
const SHAPE = [1, 8, 8] as const;
const data = (split: 'train' | 'test', n: number, noise = 40) => syntheticDataset({ n, shape: SHAPE, seed: 3, split, noise });
const loaderOf = (split: 'train' | 'test', n: number, batchSize: number, shuffle = false) =>
  new DataLoader(data(split, n), { batchSize, size: [8, 8], shuffle, seed: 5 });
const mlp = (seed = 1) => new MLP({ inFeatures: 64, hidden: [64, 64], numClasses: 10, seed });

/** Mean cross-entropy (read back) of the model on (x, y), in its current mode, without gradient. */
async function lossOf(model: Module, x: E.Tensor, y: E.Tensor): Promise<number> {
  return E.tidy(() => E.noGrad(() => E.crossEntropy(model.forward(x), y))).item();
}

async function trainStandard(model: Module, epochs: number, loader: DataLoader, objective?: ReturnType<typeof adversarialObjective>): Promise<void> {
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  try {
    await trainLoop({ model, optimizer, schedule: () => 0.05, train: loader, epochs, readEvery: 100, objective });
  } finally {
    optimizer.dispose();
  }
}

/** Asserts every element of adv lies in the eps-ball around x and in [0, 1], in pixel space (float64). */
function assertInBall(x: ArrayLike<number>, adv: ArrayLike<number>, space: InputSpace, eps: number, hw: number, what: string): void {
  const c = space.mean.length;
  const tol = 1e-6;
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / hw) % c;
    const p = x[i]! * space.std[ch]! + space.mean[ch]!;
    const q = adv[i]! * space.std[ch]! + space.mean[ch]!;
    const lo = Math.max(0, p - eps) - tol;
    const hi = Math.min(1, p + eps) + tol;
    // The clean pixel itself is always admitted (the loader's own rounding of 0 and 255).
    if (!((q >= Math.min(lo, p) && q <= Math.max(hi, p)))) {
      assert.unreachable(`${what}: element ${i} at pixel ${q} is outside [${lo}, ${hi}] (clean ${p}, eps ${eps}; TEST_SEED=${TEST_SEED})`);
    }
  }
}

let trained: Module;
let batch: Batch;
let space: InputSpace;
test.before(async () => {
  await setupEngine();
  const train = loaderOf('train', 600, 50, true);
  trained = mlp();
  await trainStandard(trained, 4, train);
  trained.eval();
  const testLoader = loaderOf('test', 200, 200);
  batch = E.tidy(() => {
    const b = testLoader.batch(0, 0);
    return { x: E.keep(b.x), y: E.keep(b.y) };
  });
  space = inputSpace(testLoader);
});

test('every iterate stays in the eps-ball and in [0, 1] (pixel space, float64), with the data set normalization and without', async () => {
  const tinyten = createModel('tinyten', { inChannels: 3, numClasses: 10, width: 0.25, seed: 2 });
  const rgb = new DataLoader(syntheticDataset({ n: 16, seed: 4, split: 'test' }), { batchSize: 16 });
  const plain = new DataLoader(syntheticDataset({ n: 16, seed: 4, split: 'test' }), { batchSize: 16, mean: [0, 0, 0], std: [1, 1, 1] });
  try {
    tinyten.eval();
    for (const [loader, name] of [[rgb, 'normalized'], [plain, 'pixels']] as const) {
      const sp = inputSpace(loader);
      const { x, y } = loader.batch(0, 0);
      const xs = await x.toArray();
      for (const eps of [8 / 255, 0.3]) {
        for (let steps = 0; steps <= 5; steps++) {
          const adv = pgd(tinyten, x, y, sp, { eps, step: eps / 2, steps, generator: new E.Generator(11) });
          const values = await adv.toArray();
          assertInBall(xs, values, sp, eps, 32 * 32, `${name}, eps ${eps}, iterate ${steps}`);
          // The ball is used: some element moves by (nearly) the full eps after a step of eps / 2.
          if (steps >= 2) {
            const moved = Math.max(...Array.from(values, (v, i) => Math.abs(v - xs[i]!) * sp.std[Math.floor(i / 1024) % 3]!));
            assert.ok(moved > eps * 0.99, `${name}: the largest move ${moved} should reach eps ${eps}`);
          }
          adv.dispose();
        }
      }
      x.dispose();
      y.dispose();
    }
  } finally {
    tinyten.dispose();
  }
});

test('on a trained model: PGD loss >= clean, >= a random perturbation of the same size; larger eps never lower; eps 0 is clean exactly', async () => {
  const { x, y } = batch;
  const clean = await lossOf(trained, x, y);
  const eps = 8 / 255;
  const adv = pgd(trained, x, y, space, { eps, step: 2 / 255, steps: 5, generator: new E.Generator(1) });
  const attacked = await lossOf(trained, adv, y);
  adv.dispose();
  // A random corner of the ball (the strongest random perturbation of that size), clipped to [0, 1].
  const noisy = E.tidy(() =>
    E.noGrad(() => {
      const s = E.sign(E.rand(x.shape, -1, 1, { generator: new E.Generator(9) }));
      return E.clamp(E.add(x, E.mulScalar(s, eps / space.std[0]!)), (0 - space.mean[0]!) / space.std[0]!, (1 - space.mean[0]!) / space.std[0]!);
    }),
  );
  const random = await lossOf(trained, noisy, y);
  noisy.dispose();
  assert.ok(attacked > clean, `PGD loss ${attacked} should exceed the clean loss ${clean}`);
  assert.ok(attacked > random, `PGD loss ${attacked} should exceed the random perturbation's ${random}`);

  let previous = -Infinity;
  for (const e of [0, 2, 4, 8, 16, 32].map((k) => k / 255)) {
    const a = pgd(trained, x, y, space, { eps: e, step: e / 4, steps: 5, generator: new E.Generator(1) });
    const l = await lossOf(trained, a, y);
    if (e === 0) {
      assert.equal(Array.from(await a.toArray()), Array.from(await x.toArray()), 'eps 0 returns the clean batch');
      assert.is(l, clean, 'eps 0 gives the clean loss exactly');
    }
    a.dispose();
    assert.ok(l >= previous, `eps ${e * 255}/255 gives loss ${l}, below the smaller eps's ${previous}`);
    previous = l;
  }
});

test('FGSM equals PGD with one step of size eps and no random start, bit for bit', async () => {
  const { x, y } = batch;
  for (const eps of [2 / 255, 8 / 255, 0.1]) {
    const a = fgsm(trained, x, y, space, eps);
    const b = pgd(trained, x, y, space, { eps, step: eps, steps: 1, randomStart: false });
    assert.equal(Array.from(await a.toArray()), Array.from(await b.toArray()), `eps ${eps}`);
    const l = await lossOf(trained, a, y);
    assert.ok(l > (await lossOf(trained, x, y)), 'FGSM raises the loss');
    a.dispose();
    b.dispose();
  }
});

test('the input gradient equals central differences of a float64 reference (small MLP)', async () => {
  const rand = rng(TEST_SEED);
  const [B, I, H, K] = [5, 12, 7, 4];
  const model = new MLP({ inFeatures: I, hidden: [H], numClasses: K, seed: 3 });
  try {
    const xs = Float32Array.from({ length: B * I }, () => rand() * 2 - 1);
    const ys = Int32Array.from({ length: B }, () => Math.floor(rand() * K));
    const x = E.tensor(xs, [B, 1, 3, 4]);
    const y = E.tensor(ys, [B], 'i32');
    const layers = model.layers;
    const w1 = await (layers.at(0) as Linear).stateDict().get('weight')!.toArray();
    const b1 = await (layers.at(0) as Linear).stateDict().get('bias')!.toArray();
    const w2 = await (layers.at(2) as Linear).stateDict().get('weight')!.toArray();
    const b2 = await (layers.at(2) as Linear).stateDict().get('bias')!.toArray();
    const lossRef = (v: Float64Array): number => {
      const logits = new Float64Array(B * K);
      for (let n = 0; n < B; n++) {
        const h = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          let s = b1[j]!;
          for (let i = 0; i < I; i++) s += w1[j * I + i]! * v[n * I + i]!;
          h[j] = Math.max(0, s);
        }
        for (let k = 0; k < K; k++) {
          let s = b2[k]!;
          for (let j = 0; j < H; j++) s += w2[k * H + j]! * h[j]!;
          logits[n * K + k] = s;
        }
      }
      const lp = logSoftmaxRef(logits, B, K);
      let loss = 0;
      for (let n = 0; n < B; n++) loss -= lp[n * K + ys[n]!]!;
      return loss / B;
    };
    const g = withModelFrozen(model, () => inputGradient((v) => model.forward(v), x, y));
    const got = await g.toArray();
    const h = 1e-5;
    const expected = Array.from(xs, (_, i) => {
      const plus = Float64Array.from(xs);
      const minus = Float64Array.from(xs);
      plus[i]! += h;
      minus[i]! -= h;
      return (lossRef(plus) - lossRef(minus)) / (2 * h);
    });
    assertClose(got, expected, 1e-3, 1e-6, 'dCE/dx');
    for (const p of model.parameters()) assert.is(p.grad, null, 'no parameter gradient');
    for (const t of [x, y, g]) t.dispose();
  } finally {
    model.dispose();
  }
});

test('the attack leaves parameter gradients, BN running statistics and the mode unchanged (training and eval mode)', async () => {
  const model = createModel('tinyten', { inChannels: 1, numClasses: 10, width: 0.25, seed: 5 });
  const loader = new DataLoader(syntheticDataset({ n: 32, shape: [1, 28, 28], seed: 2 }), { batchSize: 32 });
  try {
    E.tidy(() => E.noGrad(() => model.forward(loader.batch(0, 0).x))); // running statistics move off their initial values
    const before = new Map(await Promise.all(model.namedBuffers().map(async ([n, t]) => [n, Array.from(await t.toArray())] as const)));
    for (const mode of [true, false]) {
      model.train(mode);
      const { x, y } = loader.batch(0, 0);
      const adv = pgd(model, x, y, inputSpace(loader), { generator: new E.Generator(3) });
      assert.is(model.training, mode, 'mode kept');
      for (const p of model.parameters()) {
        assert.is(p.grad, null, 'no parameter gradient');
        assert.ok(p.requiresGrad, 'parameters still require gradients');
      }
      for (const [n, t] of model.namedBuffers()) assert.equal(Array.from(await t.toArray()), before.get(n), `${n} unchanged (training ${mode})`);
      assert.ok(!adv.requiresGrad, 'the examples carry no graph');
      for (const t of [x, y, adv]) t.dispose();
    }
  } finally {
    model.dispose();
  }
});

test('restarts keep, per image, the start with the highest loss', async () => {
  const { x, y } = batch;
  const one = pgd(trained, x, y, space, { eps: 16 / 255, step: 4 / 255, steps: 2, generator: new E.Generator(21) });
  const three = pgd(trained, x, y, space, { eps: 16 / 255, step: 4 / 255, steps: 2, restarts: 3, generator: new E.Generator(21) });
  const per = (a: E.Tensor) => E.tidy(() => E.noGrad(() => E.neg(E.pick(E.logSoftmax(trained.forward(a)), y)))).toArray();
  const [l1, l3] = [await per(one), await per(three)];
  for (let i = 0; i < l1.length; i++) assert.ok(l3[i]! >= l1[i]!, `image ${i}: 3 restarts ${l3[i]} < the first start's ${l1[i]}`);
  one.dispose();
  three.dispose();
});

test('recipes: defaults 8/255, 2/255, 5 steps; bad values refused', () => {
  assert.equal(pgdRecipe(), { eps: 8 / 255, step: 2 / 255, steps: 5, randomStart: true, restarts: 1 });
  assert.throws(() => pgdRecipe({ eps: -1 }), /eps/);
  assert.throws(() => pgdRecipe({ steps: 1.5 }), /steps/);
  assert.throws(() => pgdRecipe({ restarts: 0 }), /restarts/);
  assert.is(pgdGenerator(1, 2, 3).seed, pgdGenerator(1, 2, 3).seed);
  assert.is.not(pgdGenerator(1, 2, 3).seed, pgdGenerator(1, 2, 4).seed);
  assert.equal(pixelSpace(2), { mean: [0, 0], std: [1, 1] });
});

test('adversarial training (PGD examples only) raises PGD accuracy above the standard model', async () => {
  const train = loaderOf('train', 600, 50, true);
  const testLoader = loaderOf('test', 200, 200);
  const attack = { eps: 48 / 255, step: 12 / 255, steps: 5 };
  const robust = mlp();
  try {
    await trainStandard(robust, 4, train, adversarialObjective(robust, inputSpace(train), attack, 7));
    const accuracy = async (model: Module, adversarial: boolean): Promise<number> => {
      model.eval();
      const { x, y } = batch;
      const input = adversarial ? pgd(model, x, y, inputSpace(testLoader), { ...attack, generator: new E.Generator(2) }) : x;
      const hits = await E.tidy(() => E.noGrad(() => E.sum(E.eq(E.argmax(model.forward(input), 1), y)))).item();
      if (input !== x) input.dispose();
      return hits / y.size;
    };
    const [stdClean, stdPgd, robClean, robPgd] = [await accuracy(trained, false), await accuracy(trained, true), await accuracy(robust, false), await accuracy(robust, true)];
    console.log(`    standard: clean ${(100 * stdClean).toFixed(1)}%, PGD ${(100 * stdPgd).toFixed(1)}%; adversarial: clean ${(100 * robClean).toFixed(1)}%, PGD ${(100 * robPgd).toFixed(1)}% (eps 48/255)`);
    assert.ok(robPgd > stdPgd + 0.1, `robust PGD accuracy ${robPgd} should exceed the standard model's ${stdPgd} by 10 points`);
  } finally {
    robust.dispose();
  }
});

test.after(() => {
  trained?.dispose();
  batch?.x.dispose();
  batch?.y.dispose();
});

test.run();
