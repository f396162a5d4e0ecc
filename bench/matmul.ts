// Matmul benchmark: GFLOP/s of every kernel variant (src/engine/ops/matmul.ts) on square sizes and
// on the shapes our models produce, in the spirit of llm.c's dev/cuda kernel lab: each variant is
// checked against float64 on the same inputs and timed on the same shapes, so the table shows why
// the tuned variants are fast. Findings, commands and numbers: bench/README.md.
//
// Timing: a timed run records `runsPerRep` launches (enough for about 20 ms of work, so small shapes
// are not all submit latency) and waits for queue completion (queue.onSubmittedWorkDone, through
// stream.finish(), which does not spin a core: see CommandStream.sleepWhileWaiting); the result is the median over `reps` timed
// runs after one compiling run and `warmup` runs. FLOPs are 2 * batch * M * N * K.
//
// Check: before a variant is timed on a shape, 64 outputs of its first (compiling) run, sampled at
// random, are compared with float64 sums of the same float32 inputs; the error is
// |c - ref| / sum_k |a_mk b_kn| (as in test/engine/matmul.test.ts). A variant over the bound
// (about (K + 1) 2^-23) is reported wrong and not timed.
//
// No Node built-ins here: the browser's kernel lab (src/web/lab.ts) runs this same sweep on the
// visitor's adapter; `neuralign bench matmul` (src/cli/bench.ts) writes the report to a file.
//
// The JSON lists every shape with M, N, K, batch and transposes, so a baseline from another
// framework (PyTorch on a GPU: see bench/README.md) can time the same shapes and be set beside it.
import * as E from '../src/engine/index.js';
import { median, timeGPU } from '../src/engine/tune.js';

export interface MatmulShape {
  /** Where the shape comes from. */
  name: string;
  M: number;
  N: number;
  K: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
}

const square = (n: number): MatmulShape => ({ name: `square ${n}`, M: n, N: n, K: n });

/** Square sizes: the full run and --quick. */
export const SQUARE_SIZES = { full: [256, 512, 1024, 1536, 2048], quick: [256, 512, 1024] };

/**
 * Shapes of the paper's models (batch 128, CIFAR-10): linear layers forward and backward, and
 * 3x3 convolutions as implicit GEMMs (M = batch * H * W output pixels, N = output channels,
 * K = input channels * 9).
 */
export const MODEL_SHAPES: MatmulShape[] = [
  { name: 'linear 512->4096 forward (x Wᵀ)', M: 128, N: 4096, K: 512, transB: true },
  { name: 'linear 512->4096 weight grad (gᵀ x)', M: 4096, N: 512, K: 128, transA: true },
  { name: 'linear 512->4096 input grad (g W)', M: 128, N: 512, K: 4096 },
  { name: 'classifier 64->10 forward', M: 128, N: 10, K: 64, transB: true },
  { name: 'conv 512->512 3x3 at 2x2 (VGG)', M: 512, N: 512, K: 4608 },
  { name: 'conv 512->512 3x3 at 1x1, batch 128', M: 128, N: 512, K: 4608 },
  { name: 'conv 64->64 3x3 at 32x32, batch 4', M: 4096, N: 64, K: 576 },
  { name: 'batched 16 x (64x64x64)', M: 64, N: 64, K: 64, batch: 16 },
];

export interface MatmulBenchOptions {
  quick?: boolean;
  /** Only these square sizes, no model shapes (default: SQUARE_SIZES and MODEL_SHAPES). */
  sizes?: number[];
  /** Variants to time (default: all this adapter can run). */
  variants?: E.MatmulVariant[];
  /** Timed runs per measurement (default 3 quick, 7 full) after `warmup` runs (default 1, 2). */
  reps?: number;
  warmup?: number;
  /** Skip a variant on a shape when its estimated run time exceeds this (s): keeps naive off 2048³. */
  maxRunSeconds?: number;
  /** Wait for the queue by awaiting Dawn's promise directly (dawn.node's polling spins a core
   * meanwhile) instead of the stream's sleeping wait, the engine's default. */
  busyWait?: boolean;
  /** Called with each table line (default console.log). */
  log?: (line: string) => void;
  /** Called with each shape's results as soon as they are measured (the kernel lab's table). */
  onRow?: (row: MatmulBenchReport['rows'][number], variants: readonly E.MatmulVariant[]) => void;
  /** The square size tuneMatmul times to pick the engine's variant (default 512). */
  tuneSize?: number;
}

export interface MatmulResult {
  variant: E.MatmulVariant;
  gflops?: number;
  /** Median milliseconds of one launch. */
  ms?: number;
  runsPerRep?: number;
  /** Largest sampled error relative to sum_k |a b| (see the top comment). */
  maxRelError?: number;
  /** The bound maxRelError was checked against; over it the variant is wrong and not timed. */
  errorBound?: number;
  skipped?: string;
}

export interface MatmulBenchReport {
  suite: 'matmul';
  date: string;
  device: E.DeviceInfo;
  /** What tuneMatmul() picked on this device, and its timings (ms, 512³). */
  tuned: { choice: E.MatmulVariant; ms: Partial<Record<E.MatmulVariant, number>> };
  options: { quick: boolean; reps: number; warmup: number; wait: 'sleeping' | 'busy' };
  rows: { shape: MatmulShape; flops: number; results: MatmulResult[] }[];
  /** Room for the same shapes timed elsewhere (e.g. PyTorch on the same GPU), by shape name. */
  baseline?: Record<string, { gflops: number; source: string }>;
}

const flopsOf = (s: MatmulShape) => 2 * (s.batch ?? 1) * s.M * s.N * s.K;

/** Random float32 values in [-1, 1), also kept on the CPU for the float64 check. */
function randomTensor(shape: number[], seed: number): { t: E.Tensor; data: Float32Array } {
  const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return { t: E.tensor(data, shape), data };
}

/** Largest error of 64 sampled outputs against float64, relative to sum_k |a_mk b_kn|. */
function sampledError(s: MatmulShape, a: Float32Array, b: Float32Array, c: ArrayLike<number>): number {
  const { M, N, K } = s;
  const batch = s.batch ?? 1;
  let worst = 0;
  let seed = 12345;
  for (let t = 0; t < 64; t++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const idx = seed % (batch * M * N);
    const z = Math.floor(idx / (M * N));
    const m = Math.floor(idx / N) % M;
    const n = idx % N;
    let sum = 0;
    let abs = 0;
    for (let k = 0; k < K; k++) {
      const av = a[z * M * K + (s.transA ? k * M + m : m * K + k)]!;
      const bv = b[z * K * N + (s.transB ? n * K + k : k * N + n)]!;
      sum += av * bv;
      abs += Math.abs(av * bv);
    }
    const err = abs === 0 ? Math.abs(c[idx]! - sum) : Math.abs(c[idx]! - sum) / abs;
    worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
  }
  return worst;
}

export async function benchMatmul(opts: MatmulBenchOptions = {}): Promise<MatmulBenchReport> {
  const quick = !!opts.quick;
  const reps = opts.reps ?? (quick ? 3 : 7);
  const warmup = opts.warmup ?? (quick ? 1 : 2);
  const maxRunSeconds = opts.maxRunSeconds ?? (quick ? 0.5 : 3);
  const log = opts.log ?? ((line: string) => console.log(line));
  const rt = await E.init();
  const variants = (opts.variants ?? E.MATMUL_VARIANTS.filter(E.matmulVariantAvailable)).filter((v) => {
    if (E.matmulVariantAvailable(v)) return true;
    log(`(variant ${v} skipped: not available on this adapter)`);
    return false;
  });
  const tuned = await E.tuneMatmul(opts.tuneSize);
  const i = rt.info;
  log(`matmul on ${i.description} (${i.backend}, ${i.isCPU ? 'CPU' : 'GPU'}); auto choice: ${tuned.choice} ` +
    `(${Object.entries(tuned.ms).map(([v, ms]) => `${v} ${ms!.toFixed(1)} ms`).join(', ')} at 512³)`);
  log(`GFLOP/s, median of ${reps} timed runs after ${warmup} warm-up, ${opts.busyWait ? 'busy' : 'sleeping'} wait; * = fastest; - = skipped`);
  const shapeWidth = 50;
  log(`${'shape (M x N x K)'.padEnd(shapeWidth)}${variants.map((v) => v.padStart(10)).join('')}`);

  const shapes = opts.sizes?.length
    ? opts.sizes.map(square)
    : [...(quick ? SQUARE_SIZES.quick : SQUARE_SIZES.full).map(square), ...MODEL_SHAPES];
  const fastest = new Map<E.MatmulVariant, number>(); // best GFLOP/s so far, to predict run times
  const rows: MatmulBenchReport['rows'] = [];
  for (const s of shapes) {
    const batch = s.batch ?? 1;
    const aShape = [...(s.batch ? [batch] : []), ...(s.transA ? [s.K, s.M] : [s.M, s.K])];
    const bShape = [...(s.batch ? [batch] : []), ...(s.transB ? [s.N, s.K] : [s.K, s.N])];
    const a = randomTensor(aShape, 1);
    const b = randomTensor(bShape, 2);
    const { problem, outShape } = E.matmulProblem(a.t, b.t, { transA: s.transA, transB: s.transB });
    const flops = flopsOf(s);
    // A float32 sum of K products is off by at most about (K + 1) 2^-24 of sum |a b|; allow twice that.
    const bound = Math.max(1e-6, (s.K + 1) * 2 ** -23);
    const results: MatmulResult[] = [];
    for (const variant of variants) {
      const known = fastest.get(variant);
      if (known !== undefined && flops / (known * 1e9) > maxRunSeconds) {
        results.push({ variant, skipped: `estimated ${(flops / (known * 1e9)).toFixed(1)} s per run > ${maxRunSeconds} s` });
        continue;
      }
      const out = E.full(outShape, NaN); // poisoned: an output a kernel skips fails the check
      const launch = () => E.matmulInto(a.t, b.t, out, problem, variant);
      // The first run compiles the pipeline; its output is checked before anything is timed.
      const busyWait = !!opts.busyWait;
      const first = median(await timeGPU(launch, { warmup: 0, reps: 1, busyWait }));
      const maxRelError = sampledError(s, a.data, b.data, await out.toArray());
      if (!(maxRelError <= bound)) {
        out.dispose();
        results.push({ variant, maxRelError, errorBound: bound, skipped: `wrong: relative error ${maxRelError} > ${bound.toExponential(2)}` });
        continue;
      }
      // `warmup` more runs estimate the time of a launch, so that a timed run can hold enough
      // launches for about 20 ms.
      const warm = warmup > 0 ? median(await timeGPU(launch, { warmup: 0, reps: warmup, busyWait })) : first;
      const runsPerRep = Math.max(1, Math.min(1000, Math.round(20 / Math.max(warm, 1e-3))));
      const times = await timeGPU(() => { for (let r = 0; r < runsPerRep; r++) launch(); }, { warmup: 0, reps, busyWait });
      const ms = median(times) / runsPerRep;
      const gflops = flops / ms / 1e6;
      fastest.set(variant, Math.max(gflops, known ?? 0));
      out.dispose();
      results.push({ variant, gflops, ms, runsPerRep, maxRelError, errorBound: bound });
    }
    a.t.dispose();
    b.t.dispose();
    rows.push({ shape: s, flops, results });
    opts.onRow?.(rows[rows.length - 1]!, variants);
    const best = Math.max(...results.map((r) => r.gflops ?? 0));
    const cells = results.map((r) => (r.gflops === undefined ? '-' : `${r.gflops.toFixed(1)}${r.gflops === best ? '*' : ' '}`).padStart(10));
    const label = `${s.name}: ${batch > 1 ? `${batch} x ` : ''}${s.M}x${s.N}x${s.K}`;
    log(`${label.padEnd(shapeWidth)}${cells.join('')}`);
    const bad = results.filter((r) => r.maxRelError !== undefined && !(r.maxRelError <= bound));
    for (const r of bad) log(`  WRONG: ${r.variant} has relative error ${r.maxRelError} on ${s.name}`);
  }
  const report: MatmulBenchReport = {
    suite: 'matmul',
    date: new Date().toISOString(),
    device: rt.info,
    tuned: { choice: tuned.choice, ms: tuned.ms },
    options: { quick, reps, warmup, wait: opts.busyWait ? 'busy' : 'sleeping' },
    rows,
  };
  return report;
}
