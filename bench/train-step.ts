// Training-step benchmark: one full step (forward, cross-entropy, backward, fused SGD update) of
// each of the paper's models on a random batch of 32x32 images, in images per second, and the
// buffer pool's peak memory. Timed to queue completion (`stream.finish()`), median of a few steps
// after one warm-up step (which also compiles the pipelines). Batch 128 as the paper trains
// (quick: batch 16, and VGG16 and GoogLeNet at width 0.25, for CPU adapters).
//
// With `curve` (the curve-step suite) each model's step is timed beside a curve training step on
// the same batch (src/align/curve-run.ts: w(t) = sum_k c_k(t) w_k computed on the GPU, the network
// run on it, the L2 term, backward to the bend, SGD on the bend), the two alternating rep by rep
// so that a change in the machine's load hits both; the overhead is curve / endpoint - 1 (the
// curve issue's target: under 25%).
//
// With `torch` (`bench train-step --torch`) PyTorch's step on the same models, batch and reps runs
// after ours (bench/torch-train-step.ts) and one table puts the two side by side.
import { writeFileSync } from 'node:fs';
import { backward, init, keep, randn, runtime, tensor, tidy, tuneMatmul, type Tensor } from '../src/engine/index.js';
import type { Module } from '../src/nn/module.js';
import { MODEL_NAMES, createModel, type ModelName } from '../src/nn/models/index.js';
import { SGD } from '../src/nn/optim.js';
import { lossAndLogits } from '../src/nn/train.js';
import { describeTuning, tuneKernels } from '../src/nn/tune-kernels.js';
import { median } from '../src/engine/tune.js';
import { Curve } from '../src/align/curve.js';
import { curveObjective } from '../src/align/curve-run.js';
import { checkTorch, comparisonTable, joinTorch, runTorchTrainStep, type OurStep, type TorchRun } from './torch-train-step.js';

export interface TrainStepOptions {
  quick: boolean;
  json?: string;
  reps?: number;
  models?: ModelName[];
  /** Images per step (default 128; quick: 16). */
  batch?: number;
  /** Also time a curve training step (quadratic Bezier) beside each endpoint step. */
  curve?: boolean;
  /** Then PyTorch's step under this Python (checked before ours starts; bench/torch-train-step.ts). */
  torch?: string;
}

/** One model's row of the report. */
type Row = OurStep & Record<string, unknown>;

/** One model's training step on a fixed random batch, as this benchmark and `neuralign profile` run it. */
export interface TrainStep {
  model: Module;
  optimizer: SGD;
  x: Tensor;
  y: Tensor;
  /** Records one step (forward, the training loss, backward, the SGD update); reads nothing. */
  step: () => void;
  /** Frees the model, the optimizer and the batch. */
  dispose: () => void;
}

/**
 * Builds `name` (seed 1, 3x32x32 inputs, 10 classes), SGD with the paper's momentum and weight
 * decay, and a random batch of `batch` images with labels 0..9 in turn.
 */
export function trainStep(name: ModelName, batch: number, width = 1): TrainStep {
  const model = createModel(name, { inChannels: 3, numClasses: 10, width, seed: 1 });
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const x = keep(randn([batch, 3, 32, 32]));
  const y = keep(tensor(Int32Array.from({ length: batch }, (_, i) => i % 10), [batch], 'i32'));
  const step = () =>
    tidy(() => {
      const { loss } = lossAndLogits(model, x, y); // the training loss (GoogLeNet's auxiliary heads too)
      backward(loss, { free: { except: [] } }); // as train's steps do (src/nn/train.ts)
      optimizer.step();
      optimizer.zeroGrad();
    });
  const dispose = () => {
    optimizer.dispose();
    model.dispose();
    x.dispose();
    y.dispose();
  };
  return { model, optimizer, x, y, step, dispose };
}

export async function benchTrainStep(opts: TrainStepOptions): Promise<unknown> {
  if (opts.torch) checkTorch(opts.torch); // before anything is measured
  await init();
  const rt = runtime();
  const matmul = await tuneMatmul();
  const batch = opts.batch ?? (opts.quick ? 16 : 128);
  const reps = opts.reps ?? (opts.quick ? 2 : 5);
  const models = opts.models ?? MODEL_NAMES.filter((m) => m !== 'mlp');
  console.log(`training step on ${rt.info.description} (${rt.info.backend}); matmul kernel ${matmul.choice}; batch ${batch}, median of ${reps}`);
  console.log(`${'model'.padEnd(10)} ${'width'.padStart(5)} ${'params'.padStart(10)} ${'ms/step'.padStart(9)} ${'images/s'.padStart(9)} ${'peak MiB'.padStart(9)}`);
  const rows: Row[] = [];
  for (const name of models) {
    const width = opts.quick && (name === 'vgg16' || name === 'googlenet') ? 0.25 : 1;
    const { model, x, y, step, dispose } = trainStep(name, batch, width);
    const tuning = await tuneKernels(model, x.shape);
    console.log(`  ${name}: ${describeTuning(tuning)}`);
    // The curve: from this model to a second initialization, one bend at the midpoint.
    const other = opts.curve ? createModel(name, { inChannels: 3, numClasses: 10, width, seed: 2 }) : null;
    const curve = other ? new Curve(model, model.stateDict(), other.stateDict()) : null;
    const curveOptimizer = curve ? new SGD(curve.parameters(), { lr: 0.01, momentum: 0.9, nesterov: true }) : null;
    const objective = curve ? curveObjective(model, curve, 5e-4, 1) : null;
    const curveStep = (r: number) =>
      tidy(() => {
        const { loss } = objective!({ x, y }, 0, r);
        backward(loss, { free: { except: [] } });
        curveOptimizer!.step();
        curveOptimizer!.zeroGrad();
      });
    const timed = async (fn: () => void): Promise<number> => {
      const t0 = performance.now();
      fn();
      await rt.stream.finish();
      return performance.now() - t0;
    };
    step();
    if (curve) curveStep(0);
    await rt.stream.finish();
    rt.pool.resetPeak();
    const times: number[] = [];
    const curveTimes: number[] = [];
    for (let r = 0; r < reps; r++) {
      times.push(await timed(step));
      if (curve) curveTimes.push(await timed(() => curveStep(r + 1)));
    }
    const ms = median(times);
    const peak = rt.pool.getStats().peakAllocated / 2 ** 20;
    const row: Row = { model: name, width, batch, params: model.parameterCount(), ms_per_step: ms, images_per_s: (batch * 1000) / ms, peak_pool_mib: peak, conv_kernels: Object.fromEntries(tuning.convs.map((c) => [c.key, c.choice])) };
    if (curve) {
      row.curve_ms_per_step = median(curveTimes);
      row.curve_overhead = median(curveTimes) / ms - 1;
    }
    rows.push(row);
    console.log(
      `${name.padEnd(10)} ${String(width).padStart(5)} ${String(row.params).padStart(10)} ${ms.toFixed(0).padStart(9)} ${(batch * 1000 / ms).toFixed(1).padStart(9)} ${peak.toFixed(0).padStart(9)}` +
        (curve ? `  curve ${median(curveTimes).toFixed(0)} ms/step, overhead ${(100 * (row.curve_overhead as number)).toFixed(1)}%` : ''),
    );
    curveOptimizer?.dispose();
    curve?.dispose();
    other?.dispose();
    dispose();
    rt.pool.trim();
  }
  const report: Record<string, unknown> = { suite: opts.curve ? 'curve-step' : 'train-step', device: rt.info, matmul: matmul.choice, quick: opts.quick, rows };
  const write = () => opts.json && writeFileSync(opts.json, JSON.stringify(report, null, 2));
  if (opts.torch) {
    console.log(`\nPyTorch (${opts.torch}, bench/torch_baseline.py) on the same models, batch ${batch}, median of ${reps}:`);
    let run: TorchRun;
    try {
      run = await runTorchTrainStep(opts.torch, models, batch, reps);
    } catch (e) {
      report.torch = { python: opts.torch, error: (e as Error).message };
      write(); // ours is measured; keep it
      throw e;
    }
    const compared = joinTorch(rows, run.rows);
    for (const row of rows) {
      const c = compared.find((r) => r.model === row.model);
      row.torch = c?.torch ?? null;
      row.ratio = c?.ratio ?? null;
    }
    report.torch = { source: run.source, python: run.python, batch, reps };
    console.log(`\n${comparisonTable(compared, run.source).join('\n')}`);
  }
  write();
  return report;
}
