// `neuralign demo`: what `npm start` shows until the reproduction exists. It checks the engine end
// to end on this machine: the device, a matmul against a float64 CPU reference, and a small MLP
// trained by the engine's autodiff on a synthetic two-spirals problem (loss must fall); then, where
// Fashion-MNIST is installed, the paper's core effect on two MLPs (demo-align.ts).
import {
  Tensor, add, backward, crossEntropy, init, keep, manualSeed, matmul, mulScalar,
  noGrad, randn, relu, runtime, sub, tensor, tidy, tuneMatmul,
} from '../engine/index.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { correctCount } from '../nn/evaluate.js';
import { defineCommand } from './command.js';
import { alignDemo, fashionMnistAvailable } from './demo-align.js';

const spec = {
  steps: { type: 'number', help: 'training steps of the MLP', default: 300 },
  seed: { type: 'number', help: 'random seed', default: 1 },
  'no-align': { type: 'boolean', help: 'skip the alignment stage on Fashion-MNIST' },
  epochs: { type: 'number', help: 'alignment stage: epochs of each MLP endpoint', default: 1 },
  points: { type: 'number', help: 'alignment stage: values of t on each straight line', default: 11 },
  out: { type: 'string', help: 'alignment stage: folder for the endpoint checkpoints (reused when present)', default: 'runs/demo' },
} satisfies FlagSpec;

/** Two interleaved spirals, `n` points per class, as in many autodiff tutorials. */
function spirals(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  let s = seed >>> 0 || 1;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const x = new Float32Array(4 * n);
  const y = new Int32Array(2 * n);
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < n; i++) {
      const r = (i / n) * 1.0 + 0.05;
      const theta = (i / n) * 3 * Math.PI + c * Math.PI + (rand() - 0.5) * 0.3;
      const k = c * n + i;
      x[2 * k] = r * Math.cos(theta);
      x[2 * k + 1] = r * Math.sin(theta);
      y[k] = c;
    }
  }
  return { x, y };
}

async function checkMatmul(): Promise<number> {
  const [M, K, N] = [257, 129, 67];
  const a = randn([M, K]);
  const b = randn([K, N]);
  const c = matmul(a, b);
  const [av, bv, cv] = await Promise.all([a.toArray(), b.toArray(), c.toArray()]);
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let ref = 0;
      let scale = 0;
      for (let k = 0; k < K; k++) {
        ref += av[i * K + k]! * bv[k * N + j]!;
        scale += Math.abs(av[i * K + k]! * bv[k * N + j]!);
      }
      worst = Math.max(worst, Math.abs(cv[i * N + j]! - ref) / scale);
    }
  }
  for (const t of [a, b, c]) t.dispose();
  return worst;
}

async function run(flags: Flags<typeof spec>): Promise<number> {
  positiveInteger(flags.steps, 'steps');
  positiveInteger(flags.epochs, 'epochs');
  if (!(Number.isInteger(flags.points) && flags.points >= 2)) throw new UsageError(`--points needs an integer >= 2, got ${flags.points}`);
  const started = performance.now();
  await init();
  const rt = runtime();
  console.log(`device: ${rt.info.description} via ${rt.info.backend} (${rt.info.featureLevel})`);
  const tuned = await tuneMatmul();
  console.log(`matmul kernel chosen by timing: ${tuned.choice}`);
  manualSeed(flags.seed);

  const err = await checkMatmul();
  console.log(`matmul 257x129x67 vs float64 reference: max error ${err.toExponential(2)} (relative to sum |a_ik b_kj|) ${err < 1e-5 ? 'ok' : 'FAILED'}`);
  if (!(err < 1e-5)) return 1;

  // A 2-64-64-2 MLP with ReLU, full-batch SGD on 400 points.
  const data = spirals(200, flags.seed);
  const x = keep(tensor(data.x, [400, 2]));
  const y = keep(tensor(data.y, [400], 'i32'));
  const widths = [2, 64, 64, 2];
  let params: Tensor[] = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    const w = keep(randn([widths[l]!, widths[l + 1]!], 0, Math.sqrt(2 / widths[l]!)));
    const b = keep(randn([widths[l + 1]!], 0, 0));
    params.push(w, b);
  }
  for (const p of params) p.requiresGrad = true;
  const forward = () => {
    let h = x;
    for (let l = 0; l < params.length; l += 2) {
      h = add(matmul(h, params[l]!), params[l + 1]!);
      if (l + 2 < params.length) h = relu(h);
    }
    return h;
  };
  const lr = 0.5;
  let first = NaN;
  let last = NaN;
  for (let step = 0; step < flags.steps; step++) {
    const loss = tidy(() => {
      const l = crossEntropy(forward(), y);
      backward(l);
      // SGD: p <- p - lr * grad (new tensors; the old ones are freed)
      params = noGrad(() =>
        params.map((p) => {
          const next = keep(sub(p, mulScalar(p.grad!, lr)));
          next.requiresGrad = true;
          p.grad!.dispose();
          p.dispose();
          return next;
        }),
      );
      return l;
    });
    if (step === 0 || step === flags.steps - 1 || (step + 1) % 100 === 0) {
      const v = await loss.item();
      if (step === 0) first = v;
      last = v;
      if (!Number.isFinite(v)) throw new Error(`loss became ${v} at step ${step}`);
      console.log(`mlp step ${String(step + 1).padStart(4)}  loss ${v.toFixed(4)}`);
    }
    loss.dispose();
  }
  const accuracy = (await tidy(() => noGrad(() => correctCount(forward(), y))).item()) / y.size;
  const stats = rt.pool.getStats();
  console.log(`mlp accuracy on the spirals: ${(accuracy * 100).toFixed(1)}%, loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  console.log(`pool: peak ${(stats.peakAllocated / 1024).toFixed(0)} KiB allocated, ${stats.creations} buffers created; ${rt.stream.dispatchCount} dispatches in ${rt.stream.submitCount} submits`);
  if (!(last < first * 0.5)) {
    console.error(`demo: the MLP's loss went from ${first.toFixed(4)} to ${last.toFixed(4)} in ${flags.steps} steps, not below half: the engine does not train as it should`);
    return 1;
  }
  let status = 0;
  if (flags['no-align']) console.log('alignment stage skipped (--no-align)');
  else if (!fashionMnistAvailable()) console.log(`alignment stage skipped: Fashion-MNIST not found (Debian: apt-get install dataset-fashion-mnist)`);
  else status = await alignDemo({ out: flags.out, epochs: flags.epochs, points: flags.points });
  console.log(`demo finished in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return status;
}

export const demo = defineCommand({
  usage: 'neuralign demo [--steps N] [--seed S] [--no-align] [--epochs N] [--points N] [--out DIR]',
  description: 'Checks the engine end to end (device, matmul against float64, MLP training by autodiff), then aligns two Fashion-MNIST MLPs and compares the straight lines A-B and A-P(B).',
  spec,
  // The demo starts the device itself, to print it before the matmul timing and to count that
  // time in its total.
  device: false,
  run,
});
