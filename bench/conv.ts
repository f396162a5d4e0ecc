// Convolution benchmark: forward, input gradient and weight gradient of every distinct conv layer
// of VGG16 and ResNet32 (CIFAR variants, 32x32 inputs) in GFLOP/s, at batch 128 (quick: batch 8
// and a subset of shapes). Each pass is timed to queue completion (`stream.finish()`), median of
// a few runs after one warm-up run (which also compiles the pipeline). FLOPs are the useful ones,
// 2 N C_out H_out W_out C_in kH kW per pass, the same for all three passes.
// Findings and numbers: bench/README-conv.md.
import { writeFileSync } from 'node:fs';
import {
  Tensor,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dFlops,
  conv2dForward,
  conv2dGeometry,
  init,
  randn,
  runtime,
  tidy,
  type ConvKernel,
} from '../src/engine/index.js';

interface LayerShape {
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
  /** Writes the results here as JSON. */
  json?: string;
  /** Which kernel(s) to time (default: the one the engine picks for this device). */
  kernels?: ConvKernel[];
  batch?: number;
  runs?: number;
}

interface PassResult {
  ms: number;
  gflops: number;
}

interface Row {
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
async function time(fn: () => void, runs: number): Promise<number> {
  const stream = runtime().stream;
  tidy(fn);
  await stream.finish();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    tidy(fn);
    await stream.finish();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const layerName = (s: LayerShape) => `${s.cIn}->${s.cOut} ${s.size}x${s.size} k${s.k}${s.stride > 1 ? ` s${s.stride}` : ''}`;

export async function benchConv(opts: ConvBenchOptions): Promise<unknown> {
  const rt = await init();
  const batch = opts.batch ?? (opts.quick ? 8 : 128);
  const runs = opts.runs ?? 3;
  const shapes = CONV_SHAPES.filter((s) => !opts.quick || s.quick);
  const kernels: (ConvKernel | undefined)[] = opts.kernels ?? [undefined];
  const rows: Row[] = [];
  console.log(`conv2d, batch ${batch}, median of ${runs} runs, ${rt.info.description} (${rt.info.backend})`);
  console.log('net       layer                    kernel     x  fwd GFLOP/s  dX GFLOP/s  dW GFLOP/s    fwd ms     dX ms     dW ms');
  for (const s of shapes) {
    const xShape = [batch, s.cIn, s.size, s.size];
    const wShape = [s.cOut, s.cIn, s.k, s.k];
    const conv = { stride: s.stride, padding: s.padding };
    const g = conv2dGeometry(xShape, wShape, conv);
    const flops = conv2dFlops(g);
    const [x, w, b, dy] = [randn(xShape), randn(wShape), randn([s.cOut]), randn([batch, s.cOut, g.hOut, g.wOut])] as Tensor[];
    for (const kernel of kernels) {
      const o = { ...conv, kernel };
      const result = async (fn: () => void): Promise<PassResult> => {
        const ms = await time(fn, runs);
        return { ms, gflops: flops / ms / 1e6 };
      };
      const row: Row = {
        net: s.net,
        layer: layerName(s),
        count: s.count,
        kernel: kernel ?? 'default',
        forward: await result(() => conv2dForward(x!, w!, b!, o)),
        inputGrad: await result(() => conv2dBackwardInput(dy!, w!, xShape, o)),
        weightGrad: await result(() => conv2dBackwardWeight(x!, dy!, wShape, o)),
      };
      rows.push(row);
      const f = (p: PassResult) => p.gflops.toFixed(2).padStart(11);
      const t = (p: PassResult) => p.ms.toFixed(1).padStart(9);
      console.log(
        `${row.net.padEnd(9)} ${row.layer.padEnd(24)} ${row.kernel.padEnd(9)} ${String(s.count).padStart(2)} ${f(row.forward)} ${f(row.inputGrad)} ${f(row.weightGrad)} ${t(row.forward)} ${t(row.inputGrad)} ${t(row.weightGrad)}`,
      );
    }
    for (const t of [x, w, b, dy]) t!.dispose();
  }
  // Per network: the conv time of one training step (every layer's three passes, times its count).
  const stepMs: Record<string, number> = {};
  for (const r of rows) {
    const key = `${r.net} ${r.kernel}`;
    stepMs[key] = (stepMs[key] ?? 0) + (r.forward.ms + r.inputGrad.ms + r.weightGrad.ms) * r.count;
  }
  if (!opts.quick) for (const [k, ms] of Object.entries(stepMs)) console.log(`${k}: conv forward + backward of one step ${ms.toFixed(0)} ms`);
  const result = { suite: 'conv', batch, runs, device: rt.info.description, backend: rt.info.backend, isCPU: rt.info.isCPU, rows, stepMs };
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2));
  return result;
}
