// Evaluation along a path between two networks (Tatro et al. 2020, section "Evaluation"; DMC
// eval_curve.py): at each t the network's weights are set to the path's point, its batch-norm
// statistics are re-estimated on the training data at that point, and it is evaluated on the
// test set. The straight line theta(t) = (1 - t) theta_A + t theta_B is the path here; curves
// pass their own `load`.
//
// Batch-norm statistics are re-estimated at each t (src/nn/update-bn.ts, DMC's update_bn).
import { linearCombination, noGrad, tidy } from '../engine/index.js';
import { copyInto, type Module, type StateDict } from '../nn/module.js';
import { evaluate, type BatchSource, type EvalResult } from '../nn/evaluate.js';

/** `points` equally spaced values from 0 to 1 (the paper evaluates 65). */
export function linspace(points: number): number[] {
  if (!(Number.isInteger(points) && points >= 2)) throw new Error(`linspace: need an integer >= 2 points, got ${points}`);
  return Array.from({ length: points }, (_, i) => (i === points - 1 ? 1 : i / (points - 1)));
}

/**
 * Writes (1 - t) a + t b into every f32 tensor of `model` (parameters, and the BN running
 * statistics, which recomputeBatchNorm then replaces), and a's value into every other tensor
 * (num_batches_tracked), one fused kernel per tensor (linearCombination). It is exact at both
 * ends: a zero coefficient drops its term, so t = 0 gives a and t = 1 gives b bit for bit. `a` and `b` must hold the model's names and shapes.
 */
export function interpolateInto(model: Module, a: StateDict, b: StateDict, t: number): void {
  noGrad(() => {
    for (const [name, dst] of model.stateDict()) {
      const [ta, tb] = [a.get(name), b.get(name)];
      if (!ta || !tb) throw new Error(`interpolate: the endpoints lack '${name}'`);
      for (const src of [ta, tb]) {
        if (src.dtype !== dst.dtype || src.size !== dst.size) throw new Error(`interpolate: '${name}' is ${src.dtype}[${src.shape.join(', ')}], the model's ${dst.dtype}[${dst.shape.join(', ')}]`);
      }
      tidy(() => copyInto(dst, dst.dtype === 'f32' ? linearCombination([ta, tb], [1 - t, t]) : ta));
    }
  });
}

// Batch-norm re-estimation is the nn layer's (src/nn/update-bn.ts: training uses it too, for
// `train --recompute-bn`); re-exported here, where the evaluation along a path uses it.
export { batchNormLayers, recomputeBatchNorm, resetRunningStats, type RecomputeOptions, type RecomputeResult } from '../nn/update-bn.js';
import { recomputeBatchNorm } from '../nn/update-bn.js';

export interface PathPoint extends EvalResult {
  t: number;
  /** Images the BN statistics were re-estimated on at this t (0: no BN, or no reset). */
  bnImages: number;
  /** Loss and accuracy on the training images (PathEvaluationOptions.train), when asked for. */
  train?: EvalResult;
  seconds: number;
}

export interface PathEvaluationOptions {
  /** Training batches for BN re-estimation; null evaluates with the loaded running statistics. */
  bn: BatchSource | null;
  test: BatchSource;
  /** Re-estimate BN on only the first N batches of `bn`. */
  bnBatches?: number;
  /** Also evaluate on these (training) batches at each t, after the same re-estimation. */
  train?: BatchSource;
  onPoint?: (p: PathPoint) => void;
}

/**
 * Test loss and accuracy at each t: `load(t)` sets the model's weights to the path's point, BN is
 * re-estimated (unless `bn` is null), then `evaluate`.
 */
export async function evaluatePath(model: Module, ts: readonly number[], load: (t: number) => void | Promise<void>, opts: PathEvaluationOptions): Promise<PathPoint[]> {
  const out: PathPoint[] = [];
  for (const t of ts) {
    const start = performance.now();
    await load(t);
    const bn = opts.bn ? await recomputeBatchNorm(model, opts.bn, { batches: opts.bnBatches }) : { images: 0 };
    const result = await evaluate(model, opts.test);
    const train = opts.train ? { train: await evaluate(model, opts.train) } : {};
    const point = { t, ...result, bnImages: bn.images, ...train, seconds: (performance.now() - start) / 1000 };
    out.push(point);
    opts.onPoint?.(point);
  }
  return out;
}

/** evaluatePath on the straight line (1 - t) a + t b. */
export function evaluateLine(model: Module, a: StateDict, b: StateDict, ts: readonly number[], opts: PathEvaluationOptions): Promise<PathPoint[]> {
  return evaluatePath(model, ts, (t) => interpolateInto(model, a, b, t), opts);
}
