// Element-wise kernel benchmark: GB/s and M elements/s of the memory-bound kernels a training step
// runs between its GEMMs (unary, binary contiguous and broadcast, where, fill, copies, the fused
// SGD update, batch norm's per-element passes, dropout, random numbers) at a few sizes. These
// kernels do one multiply-add or less per element, so their speed is the memory (or, on a CPU
// adapter, the per-workgroup start-up cost: bench/README.md, "elementwise").
//
// Timing: a timed run records `launches` calls of the op (enough for about 30 ms of work, so small
// sizes are not all submit latency; each output is disposed at once and its buffer reused after
// the next submit) and waits for queue completion (`stream.finish()`); the figure is the median
// over `reps` timed runs after one compiling run and one warm-up run. With `groups` the same is
// done for each grid policy (setGridPolicy), the policies taking turns within each rep. Bytes are the f32 words each element reads and
// writes (a broadcast operand's few words not counted), so GB/s compares with a copy's.
import { writeFileSync } from 'node:fs';
import * as E from '../src/engine/index.js';
import { median } from '../src/engine/tune.js';
import { SGD } from '../src/nn/optim.js';

export interface ElementwiseOptions {
  quick: boolean;
  json?: string;
  reps?: number;
  /** Element counts (default 4K, 64K, 1M, 4M). */
  sizes?: number[];
  /** Case names to run (default all). */
  cases?: string[];
  /**
   * Grid policies to compare (setGridPolicy; "0:1" is one element per invocation), measured side
   * by side: each timed rep runs every policy in turn, so a change in the machine's load hits all
   * of them. Default: the adapter's policy only.
   */
  grids?: E.GridPolicy[];
}

/** Inputs made once per size, outside the timing. */
interface Inputs {
  n: number;
  a: E.Tensor;
  b: E.Tensor;
  cond: E.Tensor;
  /** [64] and [n / 64, 1] for row and column broadcasts (a viewed as [n / 64, 64]). */
  row: E.Tensor;
  col: E.Tensor;
  /** Batch-norm view of a: [N, 16, S] with S = 64 (or fewer for small n), and its running stats. */
  bnShape: number[];
  bnMean: E.Tensor;
  bnVar: E.Tensor;
  bnWeight: E.Tensor;
  bnBias: E.Tensor;
  sgd: SGD;
  sgdParam: E.Tensor;
}

interface Case {
  name: string;
  /** Which kernel file it times. */
  kernel: string;
  /** f32 words read and written per element. */
  words: number;
  /** One call; returns what it made (disposed at once), or nothing for in-place work. */
  run: (x: Inputs) => E.Tensor | void;
}

export const CASES: Case[] = [
  { name: 'relu', kernel: 'unary.wgsl', words: 2, run: (x) => E.relu(x.a) },
  { name: 'mulScalar', kernel: 'unary.wgsl', words: 2, run: (x) => E.mulScalar(x.a, 0.5) },
  { name: 'exp', kernel: 'unary.wgsl', words: 2, run: (x) => E.exp(x.a) },
  { name: 'add', kernel: 'binary.wgsl (contiguous)', words: 3, run: (x) => E.add(x.a, x.b) },
  { name: 'add-row', kernel: 'binary.wgsl (broadcast [n/64 x 64] + [64])', words: 2, run: (x) => E.add(x.a.reshape([x.n / 64, 64]), x.row) },
  { name: 'mul-col', kernel: 'binary.wgsl (broadcast [n/64 x 64] * [n/64 x 1])', words: 2, run: (x) => E.mul(x.a.reshape([x.n / 64, 64]), x.col) },
  { name: 'where', kernel: 'where.wgsl', words: 4, run: (x) => E.where(x.cond, x.a, x.b) },
  { name: 'zeros', kernel: 'fill.wgsl', words: 1, run: (x) => E.zeros([x.n]) },
  { name: 'clone', kernel: 'copy.wgsl (gather)', words: 2, run: (x) => E.clone(x.a) },
  { name: 'transpose', kernel: 'copy.wgsl (gather, [n/64 x 64] transposed)', words: 2, run: (x) => E.transpose(x.a.reshape([x.n / 64, 64])) },
  { name: 'sgd', kernel: 'sgd.wgsl (momentum, Nesterov, weight decay)', words: 5, run: (x) => x.sgd.step() },
  { name: 'dropout', kernel: 'dropout.wgsl', words: 2, run: (x) => E.dropout(x.a, 0.5) },
  { name: 'rand', kernel: 'random.wgsl', words: 1, run: (x) => E.rand([x.n]) },
  { name: 'randn', kernel: 'random.wgsl', words: 1, run: (x) => E.randn([x.n]) },
  {
    name: 'bn-eval',
    kernel: 'batchnorm.wgsl (eval: running statistics)',
    words: 2,
    run: (x) => E.batchNorm(x.a.reshape(x.bnShape), x.bnMean, x.bnVar, x.bnWeight, x.bnBias, { training: false }),
  },
  {
    name: 'bn-train',
    kernel: 'batchnorm_stats.wgsl + batchnorm.wgsl',
    words: 3,
    run: (x) => E.batchNorm(x.a.reshape(x.bnShape), null, null, x.bnWeight, x.bnBias, { training: true }),
  },
];

/** Work per timed run, ms. */
const TARGET_MS = 30;

export const ELEMENTWISE_SIZES = [4096, 65536, 1 << 20, 1 << 22];

function makeInputs(n: number): Inputs {
  const a = E.keep(E.randn([n]));
  const spatial = Math.min(64, n / 16 / 2);
  const bnShape = [n / 16 / spatial, 16, spatial];
  const sgdParam = E.keep(E.randn([n]));
  sgdParam.grad = E.keep(E.randn([n]));
  return {
    n,
    a,
    b: E.keep(E.randn([n])),
    cond: E.keep(E.tidy(() => E.gt(E.rand([n]), 0.5))),
    row: E.keep(E.randn([64])),
    col: E.keep(E.randn([n / 64, 1])),
    bnShape,
    bnMean: E.keep(E.randn([16])),
    bnVar: E.keep(E.rand([16], 0.5, 2)),
    bnWeight: E.keep(E.randn([16])),
    bnBias: E.keep(E.randn([16])),
    sgd: new SGD([sgdParam], { lr: 1e-6, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }),
    sgdParam,
  };
}

function disposeInputs(x: Inputs): void {
  for (const t of [x.a, x.b, x.cond, x.row, x.col, x.bnMean, x.bnVar, x.bnWeight, x.bnBias]) t.dispose();
  x.sgd.dispose();
  x.sgdParam.grad?.dispose();
  x.sgdParam.dispose();
}

export interface ElementwiseRow {
  case: string;
  kernel: string;
  n: number;
  /** The grid policy, "G:K" (at most G workgroups, at least K elements per invocation). */
  grid: string;
  launches: number;
  ms: number;
  gb_per_s: number;
  melem_per_s: number;
}

export async function benchElementwise(opts: ElementwiseOptions): Promise<unknown> {
  await E.init();
  const rt = E.runtime();
  const sizes = opts.sizes ?? ELEMENTWISE_SIZES;
  for (const n of sizes) {
    if (n % 2048 !== 0) throw new Error(`elementwise: sizes must be multiples of 2048 (row and batch-norm views), got ${n}`);
  }
  const cases = opts.cases ? CASES.filter((c) => opts.cases!.includes(c.name)) : CASES;
  if (opts.cases && cases.length !== opts.cases.length) throw new Error(`elementwise: unknown case in ${opts.cases.join(', ')}; cases: ${CASES.map((c) => c.name).join(', ')}`);
  const reps = opts.reps ?? (opts.quick ? 3 : 5);
  const caps: E.GridPolicy[] = opts.grids?.length ? opts.grids : [E.gridPolicy()];
  const capName = (g: E.GridPolicy) => E.gridPolicyName(g);
  console.log(`element-wise kernels on ${rt.info.description} (${rt.info.backend}); median of ${reps}; GB/s (M elements/s)`);
  console.log(`${'case'.padEnd(12)} ${'grid G:K'.padStart(12)} ${sizes.map((n) => String(n).padStart(20)).join('')}`);
  const rows: ElementwiseRow[] = [];
  try {
    for (const c of cases) {
      const cells: string[][] = caps.map(() => []);
      for (const n of sizes) {
        const x = makeInputs(n);
        const call = () => {
          const out = E.tidy(() => c.run(x));
          if (out) out.dispose();
        };
        const timed = async (launches: number): Promise<number> => {
          const t0 = performance.now();
          for (let i = 0; i < launches; i++) call();
          await rt.stream.finish();
          return performance.now() - t0;
        };
        const launches: number[] = [];
        for (const g of caps) {
          E.setGridPolicy(g);
          await timed(1); // compiles
          const once = Math.min(await timed(1), await timed(1));
          launches.push(Math.max(1, Math.min(500, Math.ceil(TARGET_MS / Math.max(once, 1e-3)))));
          await timed(launches.at(-1)!); // warm-up at the timed count
        }
        const times: number[][] = caps.map(() => []);
        for (let r = 0; r < reps; r++) {
          for (let k = 0; k < caps.length; k++) {
            E.setGridPolicy(caps[k]!);
            times[k]!.push((await timed(launches[k]!)) / launches[k]!);
          }
        }
        caps.forEach((g, k) => {
          const ms = median(times[k]!);
          const row: ElementwiseRow = {
            case: c.name, kernel: c.kernel, n, grid: E.gridPolicyName(g), launches: launches[k]!, ms,
            gb_per_s: (c.words * 4 * n) / (ms * 1e6), melem_per_s: n / (ms * 1e3),
          };
          rows.push(row);
          cells[k]!.push(`${row.gb_per_s.toFixed(2)} (${row.melem_per_s.toFixed(0)})`.padStart(20));
        });
        E.setGridPolicy(null);
        disposeInputs(x);
        rt.pool.trim();
      }
      caps.forEach((g, k) => console.log(`${(k === 0 ? c.name : '').padEnd(12)} ${capName(g).padStart(12)} ${cells[k]!.join('')}`));
    }
  } finally {
    E.setGridPolicy(null);
  }
  const report = { suite: 'elementwise', device: rt.info, quick: opts.quick, reps, sizes, default_grid: E.gridPolicyName(E.gridPolicy()), rows };
  if (opts.json) writeFileSync(opts.json, JSON.stringify(report, null, 2));
  return report;
}
