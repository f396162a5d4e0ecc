// Adam (src/nn/adam.ts) against a float64 reference of torch.optim.Adam over several steps, with
// gradients spanning orders of magnitude (the per-entry scaling is the point), odd shapes, a
// learning rate changed between steps and scaled for one (lrScale), and a parameter without a
// gradient left untouched.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { Adam } from '../../src/nn/adam.js';
import { TEST_SEED, assertClose, randomArray, rng, setupEngine, sizeOf, toTensor } from '../helpers.js';

const test = suite('adam');
const rand = rng(TEST_SEED);
test.before(setupEngine);

test('Adam matches torch.optim.Adam in float64 over 5 steps', async () => {
  const shapes = [[5, 7], [13], [2, 3, 3]];
  const values = shapes.map((s) => randomArray(sizeOf(s), rand, -1, 1));
  const params = values.map((v, i) => {
    const t = E.keep(toTensor(v, shapes[i]!));
    t.requiresGrad = true;
    return t;
  });
  const frozen = E.keep(toTensor(randomArray(4, rand), [4]));
  frozen.requiresGrad = true;
  const before = await frozen.toArray();
  const [beta1, beta2, eps] = [0.8, 0.99, 1e-6];
  const opt = new Adam([...params, frozen], { lr: 0.01, betas: [beta1, beta2], eps });
  const ref = values.map((v) => ({ p: Float64Array.from(v), m: new Float64Array(v.length), v: new Float64Array(v.length) }));
  for (let k = 1; k <= 5; k++) {
    opt.lr = 0.01 * k;
    opt.lrScale = k === 3 ? 0.25 : 1; // a per-step factor (the Sinkhorn P-step's tau / tau_start)
    const lr = opt.lr * opt.lrScale;
    params.forEach((p, i) => {
      const g = randomArray(p.size, rand, -1, 1).map((x) => x * 10 ** Math.floor(rand() * 6 - 3));
      p.grad = E.keep(toTensor(g, p.shape));
      const r = ref[i]!;
      for (let j = 0; j < g.length; j++) {
        r.m[j] = beta1 * r.m[j]! + (1 - beta1) * g[j]!;
        r.v[j] = beta2 * r.v[j]! + (1 - beta2) * g[j]! ** 2;
        r.p[j] = r.p[j]! - (lr / (1 - beta1 ** k)) * (r.m[j]! / (Math.sqrt(r.v[j]! / (1 - beta2 ** k)) + eps));
      }
    });
    opt.step();
    opt.zeroGrad();
  }
  for (const [i, p] of params.entries()) assertClose(await p.toArray(), ref[i]!.p, 1e-5, 1e-6, `parameter ${i}`);
  assert.equal(await frozen.toArray(), before, 'a parameter without a gradient does not move');
  opt.dispose();
  for (const p of [...params, frozen]) p.dispose();
});

test('Adam rejects betas outside [0, 1)', () => {
  const p = E.keep(E.zeros([2]));
  assert.throws(() => new Adam([p], { lr: 0.1, betas: [1, 0.999] }), /betas must be in \[0, 1\)/);
  p.dispose();
});

test.run();
