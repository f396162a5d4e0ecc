// Pooling against float64 references (outputs poisoned first): max and average pooling over
// kernels 2 and 3, strides 1 and 2, padding 0 and 1, ceil mode and non-square windows; PyTorch's
// tie rule for max pooling; global average pooling; finite-difference gradients of all three.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertClose, gradCheck, randomArray, rng, setupEngine, sizeOf, toTensor, weightsFor } from '../helpers.js';
import { gradientOf, gridStrideSizes, sameUnderEveryGrid } from '../helpers.js';

const test = suite('pool');
const rand = rng(TEST_SEED);
test.before(setupEngine);

type Pair = [number, number];
interface Config {
  k: Pair;
  s: Pair;
  p: Pair;
  ceilMode?: boolean;
}

function outLen(len: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = (ceil ? Math.ceil((len + 2 * p - k) / s) : Math.floor((len + 2 * p - k) / s)) + 1;
  if (ceil && (out - 1) * s >= len + p) out--;
  return out;
}

/**
 * Max or average pooling of x [N, C, H, W] in float64, window by window as PyTorch defines it:
 * max over real positions (padding is -inf), first maximum wins; average = sum of real positions /
 * (window clipped to the padded input, or real positions only).
 */
function poolRef(x: ArrayLike<number>, shape: number[], cfg: Config, mode: 'max' | 'avg', countIncludePad = true) {
  const [n, c, h, w] = shape as [number, number, number, number];
  const oh = outLen(h, cfg.k[0], cfg.s[0], cfg.p[0], !!cfg.ceilMode);
  const ow = outLen(w, cfg.k[1], cfg.s[1], cfg.p[1], !!cfg.ceilMode);
  const y = new Float64Array(n * c * oh * ow);
  /** avg: sum of |terms| / divisor, the scale of float32's rounding error in each average. */
  const mag = new Float64Array(y.length);
  const argmax = new Int32Array(y.length); // flat index into x
  for (let plane = 0; plane < n * c; plane++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const y0 = oy * cfg.s[0] - cfg.p[0];
        const x0 = ox * cfg.s[1] - cfg.p[1];
        let best = -Infinity;
        let arg = -1;
        let sum = 0;
        let sumAbs = 0;
        let real = 0;
        for (let yy = y0; yy < y0 + cfg.k[0]; yy++) {
          for (let xx = x0; xx < x0 + cfg.k[1]; xx++) {
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            const at = (plane * h + yy) * w + xx;
            const v = x[at]!;
            if (arg < 0 || v > best) [best, arg] = [v, at];
            sum += v;
            sumAbs += Math.abs(v);
            real++;
          }
        }
        const clipped = (Math.min(y0 + cfg.k[0], h + cfg.p[0]) - y0) * (Math.min(x0 + cfg.k[1], w + cfg.p[1]) - x0);
        const o = (plane * oh + oy) * ow + ox;
        y[o] = mode === 'max' ? best : sum / (countIncludePad ? clipped : real);
        mag[o] = sumAbs / (countIncludePad ? clipped : real);
        argmax[o] = arg;
      }
    }
  }
  return { y, mag, argmax, outShape: [n, c, oh, ow] };
}

const sq = (v: number): Pair => [v, v];
const CONFIGS: Config[] = [];
for (const k of [2, 3]) for (const s of [1, 2]) for (const p of [0, 1]) CONFIGS.push({ k: sq(k), s: sq(s), p: sq(p) });
CONFIGS.push({ k: [2, 3], s: [1, 2], p: [1, 0] }, { k: sq(3), s: sq(2), p: sq(1), ceilMode: true }, { k: sq(2), s: sq(2), p: sq(0), ceilMode: true });
const SHAPE = [3, 5, 7, 9];
const label = (cfg: Config) => `k${cfg.k} s${cfg.s} p${cfg.p}${cfg.ceilMode ? ' ceil' : ''}`;
const opts = (cfg: Config) => ({ stride: cfg.s, padding: cfg.p, ceilMode: cfg.ceilMode });

function assertShapeIs(t: E.Tensor, shape: number[], what: string): void {
  assert.equal([...t.shape], shape, `${what}: shape [${t.shape}], expected [${shape}]`);
}

test('maxPool2d matches float64 (kernels 2 and 3, strides 1 and 2, padding 0 and 1, ceil mode)', async () => {
  for (const cfg of CONFIGS) {
    const x = randomArray(sizeOf(SHAPE), rand, -3, 3);
    const ref = poolRef(x, SHAPE, cfg, 'max');
    const y = E.maxPool2d(toTensor(x, SHAPE), cfg.k, opts(cfg));
    assertShapeIs(y, ref.outShape, label(cfg));
    assertClose(await y.toArray(), ref.y, 0, 0, `maxPool2d ${label(cfg)}`);
  }
});

test('avgPool2d matches float64, padding counted or not', async () => {
  for (const cfg of CONFIGS) {
    for (const countIncludePad of [true, false]) {
      const x = randomArray(sizeOf(SHAPE), rand, -3, 3);
      const ref = poolRef(x, SHAPE, cfg, 'avg', countIncludePad);
      const y = E.avgPool2d(toTensor(x, SHAPE), cfg.k, { ...opts(cfg), countIncludePad });
      assertShapeIs(y, ref.outShape, label(cfg));
      // float32 sums of up to 9 terms err by at most ~8 * 2^-24 of the sum of their magnitudes: an
      // average that nearly cancels is off by more than 1e-6 of itself (seed 2043396718: 1.1e-5).
      // A missing or extra term is ~1/9 of that scale, far above this bound.
      assertClose(await y.toArray(), ref.y, 1e-6, Float64Array.from(ref.mag, (m) => 1e-6 * m + 1e-7), `avgPool2d ${label(cfg)} countIncludePad ${countIncludePad}`);
    }
  }
});

test('the stride defaults to the kernel size; bad geometry is refused', () => {
  const x = toTensor(randomArray(sizeOf(SHAPE), rand), SHAPE);
  assertShapeIs(E.maxPool2d(x, 2), [3, 5, 3, 4], 'default stride');
  assert.throws(() => E.maxPool2d(x, 2, { padding: 2 }), /at most half/);
  assert.throws(() => E.avgPool2d(x, 10), /smaller than the kernel/);
});

test('max pooling ties: the first maximum takes the gradient, as in PyTorch', async () => {
  // Values from {0, 1, 2} make most windows hold several maxima.
  for (const cfg of [CONFIGS[2]!, CONFIGS[7]!]) {
    const x = Float64Array.from({ length: sizeOf(SHAPE) }, () => Math.floor(rand() * 3));
    const ref = poolRef(x, SHAPE, cfg, 'max');
    const w = weightsFor(ref.y.length, rand);
    const expected = new Float64Array(x.length);
    ref.argmax.forEach((at, o) => (expected[at] += w[o]!));
    const xt = toTensor(x, SHAPE);
    xt.requiresGrad = true;
    E.backward(E.sum(E.mul(E.maxPool2d(xt, cfg.k, opts(cfg)), toTensor(w, ref.outShape))));
    assertClose(await xt.grad!.toArray(), expected, 1e-6, 1e-6, `tie gradient ${label(cfg)}`);
    xt.grad!.dispose();
  }
});

for (const cfg of [1, 4, 7, 8, 9, 10].map((i) => CONFIGS[i]!)) {
  test(`maxPool2d gradient ${label(cfg)} (finite differences)`, async () => {
    const out = poolRef(new Float64Array(sizeOf(SHAPE)), SHAPE, cfg, 'max').outShape;
    const w = weightsFor(sizeOf(out), rand);
    await gradCheck(
      ([x]) => E.sum(E.mul(E.maxPool2d(x!, cfg.k, opts(cfg)), toTensor(w, out))),
      ([x]) => poolRef(x!, SHAPE, cfg, 'max').y.reduce((s, v, i) => s + v * w[i]!, 0),
      [{ data: randomArray(sizeOf(SHAPE), rand, -3, 3), shape: SHAPE }],
      { what: `maxPool2d ${label(cfg)}` },
    );
  });
}

for (const [cfg, countIncludePad] of [[CONFIGS[3]!, true], [CONFIGS[5]!, false], [CONFIGS[8]!, true], [CONFIGS[9]!, true], [CONFIGS[9]!, false], [CONFIGS[10]!, true]] as const) {
  test(`avgPool2d gradient ${label(cfg)} countIncludePad ${countIncludePad} (finite differences)`, async () => {
    const out = poolRef(new Float64Array(sizeOf(SHAPE)), SHAPE, cfg, 'avg').outShape;
    const w = weightsFor(sizeOf(out), rand);
    await gradCheck(
      ([x]) => E.sum(E.mul(E.avgPool2d(x!, cfg.k, { ...opts(cfg), countIncludePad }), toTensor(w, out))),
      ([x]) => poolRef(x!, SHAPE, cfg, 'avg', countIncludePad).y.reduce((s, v, i) => s + v * w[i]!, 0),
      [{ data: randomArray(sizeOf(SHAPE), rand, -3, 3), shape: SHAPE }],
      { what: `avgPool2d ${label(cfg)}` },
    );
  });
}

function globalAvgRef(x: ArrayLike<number>, shape: number[]): Float64Array {
  const [n, c, h, w] = shape as [number, number, number, number];
  const out = new Float64Array(n * c);
  for (let i = 0; i < x.length; i++) out[Math.floor(i / (h * w))] += x[i]! / (h * w);
  return out;
}

test('globalAvgPool2d matches float64 and its gradient finite differences', async () => {
  for (const shape of [SHAPE, [2, 3, 17, 23]]) {
    const x = randomArray(sizeOf(shape), rand, -3, 3);
    const y = E.globalAvgPool2d(toTensor(x, shape));
    assertShapeIs(y, shape.slice(0, 2), 'globalAvgPool2d');
    assertClose(await y.toArray(), globalAvgRef(x, shape), 1e-5, 1e-6, `globalAvgPool2d ${shape}`);
  }
  const w = weightsFor(15, rand);
  await gradCheck(
    ([x]) => E.sum(E.mul(E.globalAvgPool2d(x!), toTensor(w, [3, 5]))),
    ([x]) => globalAvgRef(x!, SHAPE).reduce((s, v, i) => s + v * w[i]!, 0),
    [{ data: randomArray(sizeOf(SHAPE), rand, -3, 3), shape: SHAPE }],
    { what: 'globalAvgPool2d' },
  );
});

test('grid-stride sizes (1, odd, beyond the policy): max and average pooling forward and backward, bit-identical under every grid', async () => {
  const cfg: Config = { k: sq(2), s: sq(2), p: sq(1) };
  for (const n of gridStrideSizes()) {
    const shape = [1, n, 2, 3]; // outputs [1, n, 2, 2]
    const xv = randomArray(sizeOf(shape), rand);
    const x = toTensor(xv, shape);
    for (const mode of ['max', 'avg'] as const) {
      const pool = (t: E.Tensor) => (mode === 'max' ? E.maxPool2d(t, cfg.k, opts(cfg)) : E.avgPool2d(t, cfg.k, opts(cfg)));
      const ref = poolRef(xv, shape, cfg, mode);
      assertClose(await sameUnderEveryGrid(`${mode} n=${n}`, () => pool(x)), ref.y, 1e-6, 0, `${mode} pool n=${n}`);
      const wv = randomArray(ref.y.length, rand);
      const w = toTensor(wv, ref.outShape);
      const g = await sameUnderEveryGrid(`${mode} backward n=${n}`, () => gradientOf(x, w, pool));
      const gRef = new Float64Array(xv.length);
      const [oh, ow] = [ref.outShape[2]!, ref.outShape[3]!];
      for (let o = 0; o < ref.y.length; o++) {
        if (mode === 'max') gRef[ref.argmax[o]!] += wv[o]!;
        else {
          // avg: every real position of the window gets w / 4 (padding counted: the window is 2 x 2).
          const plane = Math.floor(o / (oh * ow)), oy = Math.floor(o / ow) % oh, ox = o % ow;
          for (let yy = 2 * oy - 1; yy < 2 * oy + 1; yy++) for (let xx = 2 * ox - 1; xx < 2 * ox + 1; xx++) {
            if (yy >= 0 && yy < 2 && xx >= 0 && xx < 3) gRef[(plane * 2 + yy) * 3 + xx] += wv[o]! / 4;
          }
        }
      }
      assertClose(g, gRef, 1e-6, 1e-7, `${mode} pool backward n=${n}`);
      w.dispose();
    }
    x.dispose();
  }
});

test.run();
