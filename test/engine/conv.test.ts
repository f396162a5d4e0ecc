// conv2d and its gradients against float64 references: each pass of every kernel (registers,
// subgroup, tiled, and direct where it applies) on fresh random inputs with odd sizes, strides 1 and 2, padding 0..2, kernels 1/3/5 (and
// a non-square one), batch 3, outputs poisoned with NaN first; split-K; the autograd wiring
// (including the bias gradient); finite-difference gradient checks; every kernel bitwise equal to
// the others (what makes choosing one by timing safe), and the choice by timing itself.
//
// Error bound: each output is a sum of products; float32 accumulation of K terms errs by at most
// about K * 2^-24 * sum|terms| (K <= 603 here, so < 4e-5 of sum|terms|). We allow 1e-4 of
// sum|terms| per element: a single missing, extra or misplaced term is ~1/K of it, far larger.
// Elements no term reaches (input-gradient rows a stride-2 convolution skips) must be exactly 0.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, assertSameBits, bitsOf, gradCheck, randomArray, rng, setupEngine, sizeOf, toTensor, weightsFor } from '../helpers.js';

const test = suite('conv');
const rand = rng(TEST_SEED);
test.before(setupEngine);

const TOL = 1e-4;

interface Case {
  batch: number;
  cIn: number;
  cOut: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  stride: [number, number];
  padding: [number, number];
  bias: boolean;
}

const c = (batch: number, cIn: number, cOut: number, h: number, w: number, k: number | [number, number], s: number | [number, number], p: number | [number, number], bias: boolean): Case => {
  const [kh, kw] = typeof k === 'number' ? [k, k] : k;
  const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
  return { batch, cIn, cOut, h, w, kh, kw, stride: pair(s), padding: pair(p), bias };
};

const cases: Case[] = [
  c(3, 3, 5, 7, 9, 3, 1, 1, true),
  c(3, 5, 7, 5, 5, 5, 2, 2, false),
  c(3, 7, 3, 11, 6, 1, 1, 0, true), // 1x1: a plain matmul per image
  c(3, 3, 5, 11, 6, 3, 2, 0, false), // stride 2, odd size: the last column is never read
  c(3, 5, 3, 7, 9, 1, 2, 0, true), // 1x1 stride 2 (a ResNet projection): 3/4 of dX is exactly 0
  c(3, 3, 7, 9, 7, 5, 1, 2, false),
  c(3, 5, 5, 7, 9, 3, 2, 1, true),
  c(3, 3, 5, 5, 5, 3, 1, 0, false),
  c(3, 5, 3, 9, 8, [3, 1], [2, 1], [1, 0], true), // non-square kernel, stride and padding
  c(3, 13, 67, 13, 11, 3, 1, 1, true), // several workgroups along every GEMM axis
  c(3, 5, 19, 6, 8, 3, 1, 1, true), // the direct kernel's shapes (3x3, stride 1, padding 1, W % 8 == 0)
  c(2, 3, 7, 5, 16, 3, 1, 1, false), // ... with a last workgroup only partly inside
];

const geometryOf = (k: Case) => E.conv2dGeometry([k.batch, k.cIn, k.h, k.w], [k.cOut, k.cIn, k.kh, k.kw], { stride: k.stride, padding: k.padding });

/** One pass of the case on its inputs (the tensors made here are freed by the caller's tidy). */
function runPass(pass: E.ConvPass, k: Case, inp: ReturnType<typeof inputsFor>, opts: E.ConvKernelOptions): E.Tensor {
  const x = toTensor(inp.x, inp.xShape);
  const w = toTensor(inp.w, inp.wShape);
  const dy = toTensor(inp.dy, inp.yShape);
  if (pass === 'forward') return E.conv2dForward(x, w, inp.b ? toTensor(inp.b, [k.cOut]) : null, opts);
  if (pass === 'input') return E.conv2dBackwardInput(dy, w, inp.xShape, opts);
  return E.conv2dBackwardWeight(x, dy, inp.wShape, opts);
}

const describe = (k: Case) =>
  `N${k.batch} ${k.cIn}->${k.cOut} ${k.h}x${k.w} k${k.kh}x${k.kw} s${k.stride} p${k.padding}${k.bias ? ' +bias' : ''}`;

interface Sizes {
  hOut: number;
  wOut: number;
}
const sizesOf = (k: Case): Sizes => ({
  hOut: Math.floor((k.h + 2 * k.padding[0] - k.kh) / k.stride[0]) + 1,
  wOut: Math.floor((k.w + 2 * k.padding[1] - k.kw) / k.stride[1]) + 1,
});

interface Reference {
  y: Float64Array;
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
  /** sum |terms| of each output, for the error bound. */
  yMag: Float64Array;
  dxMag: Float64Array;
  dwMag: Float64Array;
  dbMag: Float64Array;
}

/** All four results in float64 by the definition: one pass over every (output, tap) pair. */
function reference(k: Case, x: Float64Array, w: Float64Array, b: Float64Array | null, dy: Float64Array): Reference {
  const { hOut, wOut } = sizesOf(k);
  const [sh, sw] = k.stride;
  const [ph, pw] = k.padding;
  const r: Reference = {
    y: new Float64Array(k.batch * k.cOut * hOut * wOut),
    dx: new Float64Array(x.length),
    dw: new Float64Array(w.length),
    db: new Float64Array(k.cOut),
    yMag: new Float64Array(k.batch * k.cOut * hOut * wOut),
    dxMag: new Float64Array(x.length),
    dwMag: new Float64Array(w.length),
    dbMag: new Float64Array(k.cOut),
  };
  for (let n = 0; n < k.batch; n++) {
    for (let co = 0; co < k.cOut; co++) {
      for (let oy = 0; oy < hOut; oy++) {
        for (let ox = 0; ox < wOut; ox++) {
          const o = ((n * k.cOut + co) * hOut + oy) * wOut + ox;
          const g = dy[o]!;
          let acc = b ? b[co]! : 0;
          let mag = Math.abs(acc);
          r.db[co] += g;
          r.dbMag[co] += Math.abs(g);
          for (let ci = 0; ci < k.cIn; ci++) {
            for (let i = 0; i < k.kh; i++) {
              const iy = oy * sh + i - ph;
              if (iy < 0 || iy >= k.h) continue;
              for (let j = 0; j < k.kw; j++) {
                const ix = ox * sw + j - pw;
                if (ix < 0 || ix >= k.w) continue;
                const xi = ((n * k.cIn + ci) * k.h + iy) * k.w + ix;
                const wi = ((co * k.cIn + ci) * k.kh + i) * k.kw + j;
                acc += w[wi]! * x[xi]!;
                mag += Math.abs(w[wi]! * x[xi]!);
                r.dx[xi] += w[wi]! * g;
                r.dxMag[xi] += Math.abs(w[wi]! * g);
                r.dw[wi] += x[xi]! * g;
                r.dwMag[wi] += Math.abs(x[xi]! * g);
              }
            }
          }
          r.y[o] = acc;
          r.yMag[o] = mag;
        }
      }
    }
  }
  return r;
}

/** |actual - expected| <= TOL * sum|terms| per element; NaN (an unwritten, poisoned element) fails. */
function assertWithin(actual: ArrayLike<number>, expected: Float64Array, mag: Float64Array, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const err = Math.abs(a - expected[i]!);
    if (!(err <= TOL * mag[i]!)) {
      assert.unreachable(`${what}: element ${i} is ${a}, expected ${expected[i]} (sum |terms| ${mag[i]}, seed ${TEST_SEED})`);
    }
  }
}

interface Inputs {
  x: Float64Array;
  w: Float64Array;
  b: Float64Array | null;
  dy: Float64Array;
  xShape: number[];
  wShape: number[];
  yShape: number[];
}

function inputsFor(k: Case): Inputs {
  const { hOut, wOut } = sizesOf(k);
  const xShape = [k.batch, k.cIn, k.h, k.w];
  const wShape = [k.cOut, k.cIn, k.kh, k.kw];
  const yShape = [k.batch, k.cOut, hOut, wOut];
  return {
    x: randomArray(sizeOf(xShape), rand),
    w: randomArray(sizeOf(wShape), rand),
    b: k.bias ? randomArray(k.cOut, rand) : null,
    dy: randomArray(sizeOf(yShape), rand),
    xShape,
    wShape,
    yShape,
  };
}

/** The kernels this adapter runs; one it lacks must be refused in one line, never run. */
function availableKernels(): E.ConvKernel[] {
  for (const kernel of E.CONV_KERNELS.filter((k) => !E.convKernelAvailable(k))) {
    const x = E.zeros([1, 1, 3, 3]);
    const w = E.zeros([1, 1, 1, 1]);
    assert.throws(() => E.conv2dForward(x, w, null, { kernel }), /needs subgroups/, `${kernel} refused`);
    x.dispose();
    w.dispose();
  }
  return E.CONV_KERNELS.filter(E.convKernelAvailable);
}

for (const kernel of E.CONV_KERNELS) {
  test(`${kernel} kernel: forward, input gradient and weight gradient match float64`, async () => {
    if (!availableKernels().includes(kernel)) return; // refused above: the property this adapter can have
    let checked = 0;
    for (const k of cases) {
      const inp = inputsFor(k);
      const ref = reference(k, inp.x, inp.w, inp.b, inp.dy);
      const opts = { stride: k.stride, padding: k.padding, kernel };
      for (const { pass, what, want, mag } of [
        { pass: 'forward', what: 'forward', want: ref.y, mag: ref.yMag },
        { pass: 'input', what: 'input gradient', want: ref.dx, mag: ref.dxMag },
        { pass: 'weight', what: 'weight gradient', want: ref.dw, mag: ref.dwMag },
      ] as const) {
        if (!E.convKernelSupports(kernel, pass, geometryOf(k))) continue;
        const out = E.tidy(() => runPass(pass, k, inp, opts));
        if (pass === 'forward') assert.equal(out.shape, inp.yShape, `${describe(k)}: output shape`);
        assertWithin(await out.toArray(), want, mag, `${kernel} ${what} ${describe(k)}`);
        out.dispose();
        checked++;
      }
    }
    assert.ok(checked >= 4, `${kernel}: ${checked} passes checked`);
  });
}

test('weight gradient split over K gives the same sums (1 to many slices)', async () => {
  // K = 3 * 7 * 6 = 126; and K = 2 * 6 * 16 = 192 in a shape the direct kernel computes too.
  for (const k of [c(3, 5, 7, 13, 11, 3, 2, 1, false), c(2, 3, 5, 6, 16, 3, 1, 1, false)]) {
    const inp = inputsFor(k);
    const ref = reference(k, inp.x, inp.w, inp.b, inp.dy);
    for (const kernel of availableKernels().filter((kernel) => E.convKernelSupports(kernel, 'weight', geometryOf(k)))) {
      for (const splitK of [1, 2, 5, 100]) {
        const dw = E.tidy(() =>
          E.conv2dBackwardWeight(toTensor(inp.x, inp.xShape), toTensor(inp.dy, inp.yShape), inp.wShape, { stride: k.stride, padding: k.padding, kernel, splitK }),
        );
        assertWithin(await dw.toArray(), ref.dw, ref.dwMag, `${kernel} splitK ${splitK} ${describe(k)}`);
        dw.dispose();
      }
    }
  }
});

test('conv2d records dX, dW and the bias gradient for backward()', async () => {
  for (const k of [cases[0]!, cases[6]!, cases[8]!]) {
    const inp = inputsFor(k);
    const ref = reference(k, inp.x, inp.w, inp.b, inp.dy);
    const x = toTensor(inp.x, inp.xShape);
    const w = toTensor(inp.w, inp.wShape);
    const b = toTensor(inp.b!, [k.cOut]);
    for (const t of [x, w, b]) t.requiresGrad = true;
    E.tidy(() => E.backward(E.conv2d(x, w, b, { stride: k.stride, padding: k.padding }), { gradOutput: toTensor(inp.dy, inp.yShape) }));
    assertWithin(await x.grad!.toArray(), ref.dx, ref.dxMag, `x.grad ${describe(k)}`);
    assertWithin(await w.grad!.toArray(), ref.dw, ref.dwMag, `weight.grad ${describe(k)}`);
    assertWithin(await b.grad!.toArray(), ref.db, ref.dbMag, `bias.grad ${describe(k)}`);
    for (const t of [x, w, b]) {
      t.grad!.dispose();
      t.dispose();
    }
  }
});

for (const k of [c(2, 3, 4, 5, 4, 3, 1, 1, true), c(2, 2, 3, 7, 6, 3, 2, 1, true), c(1, 3, 2, 5, 5, [1, 3], [1, 2], [0, 2], true)]) {
  test(`conv2d gradient by finite differences: ${describe(k)}`, async () => {
    const inp = inputsFor(k);
    const wts = weightsFor(sizeOf(inp.yShape), rand);
    const opts = { stride: k.stride, padding: k.padding };
    await gradCheck(
      ([x, w, b]) => E.sum(E.mul(E.conv2d(x!, w!, b!, opts), toTensor(wts, inp.yShape))),
      ([x, w, b]) => reference(k, x!, w!, b!, inp.dy).y.reduce((s, v, i) => s + v * wts[i]!, 0),
      [
        { data: inp.x, shape: inp.xShape },
        { data: inp.w, shape: inp.wShape },
        { data: inp.b!, shape: [k.cOut] },
      ],
      { what: `conv2d ${describe(k)}` },
    );
  });
}

test('forward and backward free their temporaries (packed operands, split-K partial sums)', async () => {
  const k = c(3, 5, 7, 13, 11, 3, 2, 1, true);
  const inp = inputsFor(k);
  const x = toTensor(inp.x, inp.xShape);
  const w = toTensor(inp.w, inp.wShape);
  const b = toTensor(inp.b!, [k.cOut]);
  const dy = toTensor(inp.dy, inp.yShape);
  const pool = E.runtime().pool;
  const before = pool.getStats().inUse;
  // (direct, for the forward and input passes of other shapes, makes no temporaries)
  for (const kernel of availableKernels().filter((kernel) => E.convKernelSupports(kernel, 'forward', geometryOf(k)))) {
    const opts = { stride: k.stride, padding: k.padding, kernel };
    E.conv2dForward(x, w, b, opts).dispose();
    E.conv2dBackwardInput(dy, w, inp.xShape, opts).dispose();
    E.conv2dBackwardWeight(x, dy, inp.wShape, { ...opts, splitK: 3 }).dispose();
  }
  await E.runtime().stream.finish();
  assert.is(pool.getStats().inUse, before, 'bytes in use after disposing every result');
  for (const t of [x, w, b, dy]) t.dispose();
});

test('conv2d rejects mismatched shapes', () => {
  E.tidy(() => {
    const x = E.zeros([1, 3, 5, 5]);
    assert.throws(() => E.conv2d(x, E.zeros([4, 2, 3, 3])), /C_in/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 7, 7])), /larger than the padded input/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3, 3]), E.zeros([5])), /bias/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3, 3]), null, { stride: 0 }), /stride/);
  });
});


test('every kernel gives bitwise the same outputs and gradients (split-K included)', async () => {
  // The cases above, and one whose weight gradient (K = 8 * 16 * 16 = 2048) is split over K.
  const big = c(8, 6, 21, 16, 16, 3, 1, 1, true);
  const kernels = availableKernels();
  assert.ok(kernels.length >= 2, `at least two kernels to compare (have ${kernels})`);
  let compared = 0;
  for (const k of [...cases, big]) {
    const inp = inputsFor(k);
    for (const pass of ['forward', 'input', 'weight'] as const) {
      const bits: Uint32Array[] = [];
      const which = kernels.filter((kernel) => E.convKernelSupports(kernel, pass, geometryOf(k)));
      for (const kernel of which) {
        const out = E.tidy(() => runPass(pass, k, inp, { stride: k.stride, padding: k.padding, kernel }));
        bits.push(await bitsOf(out));
        out.dispose();
      }
      for (let i = 1; i < which.length; i++) {
        assertSameBits(bits[i]!, bits[0]!, `${describe(k)} ${pass}: ${which[i]} against ${which[0]}`);
        compared++;
      }
    }
  }
  assert.ok(compared >= 2 * (cases.length + 1), `${compared} comparisons`);
});

test('tuneConv times each pass of each layer shape and conv2d then runs the kernel it kept', async () => {
  const x = E.randn([2, 4, 8, 8]); // the first layer is one the direct kernel computes
  const w1 = E.randn([6, 4, 3, 3]);
  const w2 = E.randn([5, 6, 1, 1]);
  const net = () => E.conv2dForward(E.conv2dForward(x, w1, null, { padding: 1 }), w2, null, { stride: 2 });
  const shapes = E.collectConvShapes(() => E.tidy(() => void net()));
  assert.equal(shapes.map((g) => [g.batch, g.cIn, g.height, g.cOut, g.kh, g.sh, g.hOut]), [[2, 4, 8, 6, 3, 1, 8], [2, 6, 8, 5, 1, 2, 4]]);
  assert.equal(E.collectConvShapes(() => {}), [], 'nothing collected outside');

  const tuned = await E.tuneConv(shapes, { minFlops: 0 });
  assert.equal(tuned.map((t) => t.pass), ['forward', 'input', 'weight', 'forward', 'input', 'weight']);
  const kernels = availableKernels();
  for (const t of tuned) {
    assert.ok(kernels.includes(t.choice), `${t.key}: kept ${t.choice}`);
    const able = kernels.filter((k) => E.convKernelSupports(k, t.pass, t.geometry) && !(k === 'tiled' && E.runtime().info.isCPU));
    assert.equal(Object.keys(t.ms).sort(), able.sort(), `${t.key}: every kernel that computes it timed`);
    assert.ok(Object.values(t.ms).every((ms) => ms! >= t.ms[t.choice]!), `${t.key}: the fastest kept`);
    assert.is(E.convKernel(t.pass, t.geometry), t.choice, `${t.key}: conv2d uses it`);
  }
  assert.equal(await E.tuneConv(shapes, { minFlops: 0 }), tuned, 'a second call keeps the first choices');
  assert.equal(await E.tuneConv(shapes.map((g) => ({ ...g, batch: 3 }))), [], 'small shapes are not timed by default');

  E.setEnvVars({ NEURALIGN_CONV: 'registers' });
  try {
    assert.is(E.convKernel('forward', shapes[0]!), 'registers', 'NEURALIGN_CONV forces a kernel');
    E.setEnvVars({ NEURALIGN_CONV: 'winograd' });
    assert.throws(() => E.tidy(() => void net()), /NEURALIGN_CONV: unknown conv kernel 'winograd' \(one of registers, subgroup, tiled, direct\)/);
  } finally {
    E.setEnvVars({ NEURALIGN_CONV: undefined });
  }
  for (const t of [x, w1, w2]) t.dispose();
});

test.run();
