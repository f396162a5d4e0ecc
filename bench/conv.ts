// Convolution benchmark: forward, input gradient and weight gradient of every distinct conv layer
// of VGG16 and ResNet32 (CIFAR variants, 32x32 inputs) in GFLOP/s, at batch 128 (quick: batch 8
// and a subset of shapes). Each pass is first checked against a float64 reference on 32 sampled
// outputs (error relative to the sum of |terms|, as bench/matmul.ts), then timed to queue
// completion (`stream.finish()`), median of a few runs after one warm-up run (which also compiles
// the pipeline). FLOPs are the useful ones, 2 N C_out H_out W_out C_in kH kW per pass, the same for
// all three passes. Findings and numbers: bench/README-conv.md.
//
// No Node built-ins here: the browser's kernel lab (src/web/lab.ts) runs this suite too; the CLI
// (src/cli/bench.ts) writes the JSON.
import {
  Tensor,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dFlops,
  conv2dForward,
  conv2dGeometry,
  convKernelSupports,
  init,
  runtime,
  tensor,
  tidy,
  tuneConv,
  type Conv2dGeometry,
  type ConvPass,
  type ConvKernel,
} from '../src/engine/index.js';

export interface LayerShape {
  net: 'vgg16' | 'resnet32';
  cIn: number;
  cOut: number;
  /** Input height = width. */
  size: number;
  k: number;
  stride: number;
  padding: number;
  /** How many layers of the network have this shape. */
  count: number;
  /** In the quick subset. */
  quick?: boolean;
}

const conv3 = (net: LayerShape['net'], cIn: number, cOut: number, size: number, count: number, stride = 1, quick = false): LayerShape => ({
  net, cIn, cOut, size, k: 3, stride, padding: 1, count, quick,
});

/** Every distinct conv shape of VGG16 and ResNet32 (CIFAR, 32x32 inputs). */
export const CONV_SHAPES: LayerShape[] = [
  conv3('vgg16', 3, 64, 32, 1),
  conv3('vgg16', 64, 64, 32, 1, 1, true),
  conv3('vgg16', 64, 128, 16, 1),
  conv3('vgg16', 128, 128, 16, 1),
  conv3('vgg16', 128, 256, 8, 1),
  conv3('vgg16', 256, 256, 8, 2, 1, true),
  conv3('vgg16', 256, 512, 4, 1),
  conv3('vgg16', 512, 512, 4, 2),
  conv3('vgg16', 512, 512, 2, 3, 1, true),
  conv3('resnet32', 3, 16, 32, 1),
  conv3('resnet32', 16, 16, 32, 10, 1, true),
  conv3('resnet32', 16, 32, 32, 1, 2, true),
  { net: 'resnet32', cIn: 16, cOut: 32, size: 32, k: 1, stride: 2, padding: 0, count: 1, quick: true },
  conv3('resnet32', 32, 32, 16, 9),
  conv3('resnet32', 32, 64, 16, 1, 2),
  { net: 'resnet32', cIn: 32, cOut: 64, size: 16, k: 1, stride: 2, padding: 0, count: 1 },
  conv3('resnet32', 64, 64, 8, 9),
];

export interface ConvBenchOptions {
  quick: boolean;
  /** Which kernel(s) to time (default: the one the engine picks for this device, tuned by timing as training does). */
  kernels?: ConvKernel[];
  batch?: number;
  runs?: number;
  /** Only these layers (default: CONV_SHAPES, or its quick subset). */
  shapes?: LayerShape[];
  /** Called with each table line (default console.log). */
  log?: (line: string) => void;
  /** Called with each row as soon as it is measured (the kernel lab's table). */
  onRow?: (row: ConvRow) => void;
}

export interface PassResult {
  /** Undefined when the pass was wrong (not timed). */
  ms?: number;
  gflops?: number;
  /** Largest sampled error relative to the sum of |terms|, and the bound it was checked against. */
  maxRelError: number;
  errorBound: number;
  /** The kernel does not compute this pass of this layer (direct: 3x3 stride-1 padding-1 only). */
  notApplicable?: true;
}

export interface ConvRow {
  net: string;
  layer: string;
  count: number;
  kernel: ConvKernel | 'default';
  forward: PassResult;
  inputGrad: PassResult;
  weightGrad: PassResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median milliseconds of `runs` runs of `fn` to queue completion, after one warm-up run. */
async function time(fn: () => Tensor, runs: number): Promise<number> {
  const stream = runtime().stream;
  tidy(() => void fn()); // the pass's output is disposed with the scope
  await stream.finish();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    tidy(() => void fn());
    await stream.finish();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const layerName = (s: LayerShape) => `${s.cIn}->${s.cOut} ${s.size}x${s.size} k${s.k}${s.stride > 1 ? ` s${s.stride}` : ''}`;

/** Seeded float32 values in [-1, 1) on the CPU (for the reference) and as a tensor. */
function randomInput(shape: number[], seed: number): { t: Tensor; data: Float32Array } {
  const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
  let st = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    st = (Math.imul(st, 1664525) + 1013904223) >>> 0;
    data[i] = st / 2 ** 31 - 1;
  }
  return { t: tensor(data, shape), data };
}

interface Inputs {
  g: Conv2dGeometry;
  x: Float32Array;
  w: Float32Array;
  b: Float32Array;
  dy: Float32Array;
}

/** One sampled output of a pass in float64: its value and the sum of |terms| (the error's scale). */
type Reference = (inp: Inputs, index: number) => { value: number; scale: number };

const at = {
  x: (g: Conv2dGeometry, n: number, c: number, h: number, w: number) => ((n * g.cIn + c) * g.height + h) * g.width + w,
  w: (g: Conv2dGeometry, o: number, c: number, i: number, j: number) => ((o * g.cIn + c) * g.kh + i) * g.kw + j,
  y: (g: Conv2dGeometry, n: number, o: number, h: number, w: number) => ((n * g.cOut + o) * g.hOut + h) * g.wOut + w,
};

/** y[n, o, h, w] = b[o] + sum over c, i, j of x[n, c, h s - p + i, w s - p + j] w[o, c, i, j]. */
const forwardRef: Reference = ({ g, x, w, b }, idx) => {
  const wo = idx % g.wOut, ho = Math.floor(idx / g.wOut) % g.hOut, o = Math.floor(idx / (g.wOut * g.hOut)) % g.cOut, n = Math.floor(idx / (g.wOut * g.hOut * g.cOut));
  let value = b[o]!, scale = Math.abs(b[o]!);
  for (let c = 0; c < g.cIn; c++) for (let i = 0; i < g.kh; i++) for (let j = 0; j < g.kw; j++) {
    const h = ho * g.sh - g.ph + i, ww = wo * g.sw - g.pw + j;
    if (h < 0 || h >= g.height || ww < 0 || ww >= g.width) continue;
    const t = x[at.x(g, n, c, h, ww)]! * w[at.w(g, o, c, i, j)]!;
    value += t;
    scale += Math.abs(t);
  }
  return { value, scale };
};

/** dx[n, c, h, w] = sum over o, i, j with h = ho s - p + i (and so for w) of dy[n, o, ho, wo] w[o, c, i, j]. */
const inputGradRef: Reference = ({ g, w, dy }, idx) => {
  const ww = idx % g.width, h = Math.floor(idx / g.width) % g.height, c = Math.floor(idx / (g.width * g.height)) % g.cIn, n = Math.floor(idx / (g.width * g.height * g.cIn));
  let value = 0, scale = 0;
  for (let o = 0; o < g.cOut; o++) for (let i = 0; i < g.kh; i++) for (let j = 0; j < g.kw; j++) {
    const hs = h + g.ph - i, ws = ww + g.pw - j;
    if (hs % g.sh || ws % g.sw) continue;
    const ho = hs / g.sh, wo = ws / g.sw;
    if (ho < 0 || ho >= g.hOut || wo < 0 || wo >= g.wOut) continue;
    const t = dy[at.y(g, n, o, ho, wo)]! * w[at.w(g, o, c, i, j)]!;
    value += t;
    scale += Math.abs(t);
  }
  return { value, scale };
};

/** dw[o, c, i, j] = sum over n, ho, wo of dy[n, o, ho, wo] x[n, c, ho s - p + i, wo s - p + j]. */
const weightGradRef: Reference = ({ g, x, dy }, idx) => {
  const j = idx % g.kw, i = Math.floor(idx / g.kw) % g.kh, c = Math.floor(idx / (g.kw * g.kh)) % g.cIn, o = Math.floor(idx / (g.kw * g.kh * g.cIn));
  let value = 0, scale = 0;
  for (let n = 0; n < g.batch; n++) for (let ho = 0; ho < g.hOut; ho++) for (let wo = 0; wo < g.wOut; wo++) {
    const h = ho * g.sh - g.ph + i, ww = wo * g.sw - g.pw + j;
    if (h < 0 || h >= g.height || ww < 0 || ww >= g.width) continue;
    const t = dy[at.y(g, n, o, ho, wo)]! * x[at.x(g, n, c, h, ww)]!;
    value += t;
    scale += Math.abs(t);
  }
  return { value, scale };
};

/** Largest error of 32 sampled outputs against the float64 reference, relative to their sum of |terms|. */
function sampledError(out: ArrayLike<number>, inp: Inputs, ref: Reference): number {
  let worst = 0;
  let seed = 4321;
  for (let s = 0; s < 32; s++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const idx = seed % out.length;
    const { value, scale } = ref(inp, idx);
    const err = Math.abs(out[idx]! - value) / (scale || 1);
    worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
  }
  return worst;
}

export interface ConvBenchReport {
  suite: 'conv';
  batch: number;
  runs: number;
  device: string;
  backend: string;
  isCPU: boolean;
  rows: ConvRow[];
  /** Per network and kernel: the conv time of one training step (NaN when a pass was wrong). */
  stepMs: Record<string, number>;
}

export async function benchConv(opts: ConvBenchOptions): Promise<ConvBenchReport> {
  const rt = await init();
  const log = opts.log ?? ((line: string) => console.log(line));
  const batch = opts.batch ?? (opts.quick ? 8 : 128);
  const runs = opts.runs ?? 3;
  const shapes = opts.shapes ?? CONV_SHAPES.filter((s) => !opts.quick || s.quick);
  const kernels: (ConvKernel | undefined)[] = opts.kernels ?? [undefined];
  const rows: ConvRow[] = [];
  log(`conv2d, batch ${batch}, median of ${runs} runs, ${rt.info.description} (${rt.info.backend}); each pass checked against float64 first`);
  log('net       layer                    kernel     x  fwd GFLOP/s  dX GFLOP/s  dW GFLOP/s    fwd ms     dX ms     dW ms');
  for (const s of shapes) {
    const xShape = [batch, s.cIn, s.size, s.size];
    const wShape = [s.cOut, s.cIn, s.k, s.k];
    const conv = { stride: s.stride, padding: s.padding };
    const g = conv2dGeometry(xShape, wShape, conv);
    const flops = conv2dFlops(g);
    const x = randomInput(xShape, 1), w = randomInput(wShape, 2), b = randomInput([s.cOut], 3), dy = randomInput([batch, s.cOut, g.hOut, g.wOut], 4);
    const inputs: Inputs = { g, x: x.data, w: w.data, b: b.data, dy: dy.data };
    if (kernels.includes(undefined)) await tuneConv([g]); // the default: what training would run
    for (const kernel of kernels) {
      const o = { ...conv, kernel };
      // Checked on one run's output (which also compiles the pipeline), then timed if right.
      const result = async (pass: ConvPass, fn: () => Tensor, ref: Reference, K: number): Promise<PassResult> => {
        if (kernel && !convKernelSupports(kernel, pass, g)) return { maxRelError: 0, errorBound: 0, notApplicable: true };
        const out = fn();
        const maxRelError = sampledError(await out.toArray(), inputs, ref);
        out.dispose();
        const errorBound = Math.max(1e-6, (K + 1) * 2 ** -23);
        if (!(maxRelError <= errorBound)) return { maxRelError, errorBound };
        const ms = await time(fn, runs);
        return { ms, gflops: flops / ms / 1e6, maxRelError, errorBound };
      };
      const row: ConvRow = {
        net: s.net,
        layer: layerName(s),
        count: s.count,
        kernel: kernel ?? 'default',
        forward: await result('forward', () => conv2dForward(x.t, w.t, b.t, o), forwardRef, g.cIn * g.kh * g.kw + 1),
        inputGrad: await result('input', () => conv2dBackwardInput(dy.t, w.t, xShape, o), inputGradRef, g.cOut * g.kh * g.kw),
        weightGrad: await result('weight', () => conv2dBackwardWeight(x.t, dy.t, wShape, o), weightGradRef, g.batch * g.hOut * g.wOut),
      };
      rows.push(row);
      opts.onRow?.(row);
      const f = (p: PassResult) => (p.notApplicable ? 'n/a' : p.gflops === undefined ? 'WRONG' : p.gflops.toFixed(2)).padStart(11);
      const t = (p: PassResult) => (p.ms === undefined ? '-' : p.ms.toFixed(1)).padStart(9);
      log(
        `${row.net.padEnd(9)} ${row.layer.padEnd(24)} ${row.kernel.padEnd(9)} ${String(s.count).padStart(2)} ${f(row.forward)} ${f(row.inputGrad)} ${f(row.weightGrad)} ${t(row.forward)} ${t(row.inputGrad)} ${t(row.weightGrad)}`,
      );
      for (const [pass, p] of [['forward', row.forward], ['input gradient', row.inputGrad], ['weight gradient', row.weightGrad]] as const) {
        if (p.gflops === undefined && !p.notApplicable) log(`  WRONG: ${row.kernel} ${pass} of ${row.layer} has relative error ${p.maxRelError} > ${p.errorBound}`);
      }
    }
    for (const t of [x, w, b, dy]) t.t.dispose();
  }
  // Per network: the conv time of one training step (every layer's three passes, times its count).
  const stepMs: Record<string, number> = {};
  for (const r of rows) {
    const key = `${r.net} ${r.kernel}`;
    stepMs[key] = (stepMs[key] ?? 0) + ((r.forward.ms ?? NaN) + (r.inputGrad.ms ?? NaN) + (r.weightGrad.ms ?? NaN)) * r.count;
  }
  if (!opts.quick) for (const [k, ms] of Object.entries(stepMs)) log(`${k}: conv forward + backward of one step ${ms.toFixed(0)} ms`);
  return { suite: 'conv', batch, runs, device: rt.info.description, backend: rt.info.backend, isCPU: rt.info.isCPU, rows, stepMs };
}
