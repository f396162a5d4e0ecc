// SGD against a float64 reference of torch.optim.SGD's update over several steps (momentum,
// Nesterov, dampening, weight decay, a changing learning rate; momentum buffers start poisoned),
// gradient clearing, state round trips, and the learning-rate schedules at hand-computed epochs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { SGD, cosineSchedule, garipovSchedule, stepSchedule, tatroSchedule, type SGDOptions } from '../../src/nn/optim.js';
import { TEST_SEED, assertClose, randomArray, rng, setupEngine, sizeOf, toTensor } from '../helpers.js';
import { gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('optim');
const rand = rng(TEST_SEED);
test.before(setupEngine);

const SHAPES = [[5, 7], [13], [3, 1, 3]];

/** torch.optim.SGD.step for one parameter in float64; returns the new buffer (mutates p). */
function sgdRef(p: Float64Array, grad: ArrayLike<number>, buf: Float64Array | null, lr: number, o: Required<Omit<SGDOptions, 'lr'>>): Float64Array | null {
  const next = o.momentum !== 0 ? new Float64Array(p.length) : null;
  for (let i = 0; i < p.length; i++) {
    let g = grad[i]! + o.weightDecay * p[i]!;
    if (next) {
      next[i] = buf ? o.momentum * buf[i]! + (1 - o.dampening) * g : g;
      g = o.nesterov ? g + o.momentum * next[i]! : next[i]!;
    }
    p[i] = p[i]! - lr * g;
  }
  return next;
}

function makeParams(shapes: number[][]): { tensors: E.Tensor[]; values: Float64Array[] } {
  const values = shapes.map((s) => randomArray(sizeOf(s), rand, -1, 1));
  const tensors = values.map((v, i) => {
    const t = E.keep(toTensor(v, shapes[i]!));
    t.requiresGrad = true;
    return t;
  });
  return { tensors, values };
}

const CASES: Required<Omit<SGDOptions, 'lr'>>[] = [
  { momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: true },
  { momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false },
  { momentum: 0.5, dampening: 0.3, weightDecay: 1e-2, nesterov: false },
  { momentum: 0, dampening: 0, weightDecay: 1e-2, nesterov: false },
];

for (const o of CASES) {
  test(`five steps equal torch.optim.SGD in float64: ${JSON.stringify(o)}`, async () => {
    const { tensors, values } = makeParams(SHAPES);
    const lrs = [0.1, 0.1, 0.05, 0.2, 0.01];
    const opt = new SGD(tensors, { lr: lrs[0]!, ...o });
    let bufs: (Float64Array | null)[] = SHAPES.map(() => null);
    for (const [step, lr] of lrs.entries()) {
      opt.lr = lr;
      opt.zeroGrad();
      // The last parameter gets no gradient on odd steps: SGD must skip it (PyTorch does).
      tensors.forEach((t, i) => {
        if (i === 2 && step % 2 === 1) return;
        const g = randomArray(t.size, rand, -1, 1);
        t.grad = E.keep(toTensor(g, t.shape));
        bufs[i] = sgdRef(values[i]!, g, bufs[i]!, lr, o);
      });
      opt.step();
    }
    for (const [i, t] of tensors.entries()) {
      assertClose(await t.toArray(), values[i]!, 1e-5, 1e-6, `parameter ${i}`);
      const buf = opt.momentumBuffer(i);
      if (o.momentum === 0) assert.is(buf, null);
      else assertClose(await buf!.toArray(), bufs[i]!, 1e-5, 1e-6, `momentum buffer ${i}`);
    }
    opt.zeroGrad();
    opt.dispose();
    tensors.forEach((t) => t.dispose());
  });
}

test('zeroGrad frees and clears gradients; step uses gradients from backward()', async () => {
  const { tensors, values } = makeParams([[4, 3]]);
  const p = tensors[0]!;
  const target = randomArray(12, rand, -1, 1);
  const opt = new SGD([p], { lr: 0.25 });
  // loss = sum((p - target)^2): grad = 2 (p - target), so the step lands at p - 0.5 (p - target).
  E.tidy(() => E.backward(E.sum(E.square(E.sub(p, toTensor(target, [4, 3]))))));
  const grad = p.grad!;
  opt.step();
  assertClose(await p.toArray(), values[0]!.map((v, i) => v - 0.5 * (v - target[i]!)), 1e-6, 1e-7, 'after one step');
  opt.zeroGrad();
  assert.is(p.grad, null);
  assert.ok(grad.isDisposed, 'the old gradient was freed');
  p.dispose();
});

test('stateDict round trip: a fresh optimizer continues with the same momentum', async () => {
  const o = { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 };
  const a = makeParams(SHAPES).tensors;
  const optA = new SGD(a, o);
  const setGrads = (params: E.Tensor[], grads: Float64Array[]) => params.forEach((p, i) => (p.grad = E.keep(toTensor(grads[i]!, p.shape))));
  const newGrads = () => SHAPES.map((s) => randomArray(sizeOf(s), rand, -1, 1));
  for (let step = 0; step < 2; step++) {
    optA.zeroGrad();
    setGrads(a, newGrads());
    optA.step();
  }
  // b starts from a's current parameters and, through the state dict, a's momentum.
  const b = await Promise.all(
    a.map(async (t) => {
      const c = E.keep(toTensor(await t.toArray(), t.shape));
      c.requiresGrad = true;
      return c;
    }),
  );
  const optB = new SGD(b, o);
  const state = optA.stateDict();
  assert.equal([...state.keys()], SHAPES.map((_, i) => `state.${i}.momentum_buffer`));
  optB.loadStateDict(state);
  const g = newGrads();
  optA.zeroGrad();
  setGrads(a, g);
  setGrads(b, g);
  optA.step();
  optB.step();
  for (let i = 0; i < SHAPES.length; i++) {
    assertClose(await b[i]!.toArray(), await a[i]!.toArray(), 0, 0, `parameter ${i}`);
  }
  assert.throws(() => optB.loadStateDict(new Map([['state.9.momentum_buffer', a[0]!]])), /unexpected entry/);
  for (const opt of [optA, optB]) {
    opt.zeroGrad();
    opt.dispose();
  }
  [...a, ...b].forEach((t) => t.dispose());
});

test('invalid settings are refused as PyTorch does', () => {
  const p = E.keep(toTensor([1, 2], [2]));
  assert.throws(() => new SGD([p], { lr: -1 }), /learning rate/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov/);
  assert.throws(() => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }), /Nesterov/);
  assert.throws(() => new SGD([p, p], { lr: 0.1 }), /twice/);
  p.dispose();
});

test('schedules at hand-computed epochs', () => {
  const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
  // The paper's: 0.1 * 0.5^floor(e / 20) * 0.9996^e.
  const tatro = tatroSchedule(0.1);
  const tatroValues: [number, number][] = [
    [0, 0.1], [1, 0.09996], [19, 0.09924272980831075], [20, 0.049601516358193716],
    [39, 0.049225898860187245], [40, 0.024603104250321587], [100, 0.0030024429713039896], [249, 2.2099155009694892e-5],
  ];
  for (const [e, lr] of tatroValues) close(tatro(e), lr, `tatro epoch ${e}`);
  // Garipov's over 200 epochs: flat to epoch 100, linear to 0.01x at epoch 180, then flat.
  const garipov = garipovSchedule(0.1, 200);
  const garipovValues: [number, number][] = [[0, 0.1], [100, 0.1], [101, 0.0987625], [140, 0.0505], [179, 0.0022375], [180, 0.001], [199, 0.001]];
  for (const [e, lr] of garipovValues) close(garipov(e), lr, `garipov epoch ${e}`);
  const step = stepSchedule(0.1, 30, 0.1);
  for (const [e, lr] of [[0, 0.1], [29, 0.1], [30, 0.01], [65, 0.001]] as const) close(step(e), lr, `step epoch ${e}`);
  const cosine = cosineSchedule(0.1, 100);
  for (const [e, lr] of [[0, 0.1], [25, 0.08535533905932737], [50, 0.05], [100, 0]] as const) close(cosine(e), lr, `cosine epoch ${e}`);
  close(cosineSchedule(0.1, 100, 0.001)(50), 0.0505, 'cosine with a floor');
});

test('grid-stride sizes (1, odd, beyond the policy): the fused SGD step (plain and Nesterov) bit-identical under every grid', async () => {
  for (const n of gridStrideSizes()) {
    const p0 = randomArray(n, rand), g0 = randomArray(n, rand), g1 = randomArray(n, rand);
    for (const opts of [{ lr: 0.1, weightDecay: 0.01 }, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }] as SGDOptions[]) {
      // Two steps, so the momentum path runs with and without its first-step branch.
      const stepped = await sameUnderEveryGrid(`sgd ${JSON.stringify(opts)} n=${n}`, () => {
        const p = E.keep(toTensor(p0, [n]));
        const sgd = new SGD([p], opts);
        for (const g of [g0, g1]) {
          p.grad = E.keep(toTensor(g, [n]));
          sgd.step();
          sgd.zeroGrad();
        }
        sgd.dispose();
        return p;
      });
      const { lr, momentum = 0, weightDecay = 0, nesterov = false } = opts;
      const ref = Float64Array.from(p0, (v, i) => {
        let pv = v, buf = 0;
        [g0[i]!, g1[i]!].forEach((gv, step) => {
          let d = gv + weightDecay * pv;
          if (momentum) {
            buf = step === 0 ? d : momentum * buf + d;
            d = nesterov ? d + momentum * buf : buf;
          }
          pv -= lr * d;
        });
        return pv;
      });
      assertClose(stepped, ref, 1e-5, 1e-6, `sgd ${JSON.stringify(opts)} n=${n}`);
    }
  }
});

test.run();
