// Evaluation along a curve (Tatro et al. 2020, section 7; NeuronAlignment eval_curve.py,
// Garipov's eval_curve.py), and along the straight line between the same endpoints with the same
// data and BN policy, so the two come out side by side.
//
// At each t the network is set to the path's point, BN statistics are re-estimated on the
// training loader (interpolate.ts, recomputeBatchNorm) or, with REPAIR, the point's channel
// statistics are renormalized to the endpoints' interpolation (repair.ts), then the test set is
// evaluated (and the training set, with train metrics). The summaries:
// - Tatro's Min and arc-length Avg of test accuracy; the arc length is the curve's length in
//   weight space sampled at the evaluated t (curve.ts, curveArcLength: for the quadratic Bezier,
//   exactly the planar arc length of section 7);
// - the endpoint value, the mean of t = 0 and t = 1;
// - Garipov's min / max / avg / int of every value;
// - every barrier `interpolate` reports (Entezari, Git Re-Basin, REPAIR midpoint), labelled.
// Garipov's train loss includes the L2 term 1/2 wd ||w(t)||^2; ||w(t)||^2 = c(t)^T G c(t) with G
// the control points' Gram matrix, so it costs nothing per point.
//
// Robust evaluation (section 4, NeuronAlignment eval_adversarial_curve.py and
// viz_adversarial_curve.py; `eval-curve --robust`): at each t BN is re-estimated on training batches
// replaced by their PGD examples against the network at t (nn/pgd.ts adversarialBatches), then the
// test set is evaluated clean and under PGD (eval mode). The summaries: the robust loss barrier
// (Entezari's form on the adversarial loss, after Zhao et al. 2020: max_t L_adv(t) - ((1 - t)
// L_adv(0) + t L_adv(1))), the line-integrated (arc-length mean) robust loss, the minimum robust
// accuracy with the clean accuracy at that t, and the maximum clean and robust accuracy.
import { evaluate, type EvalResult } from '../nn/evaluate.js';
import type { Module } from '../nn/module.js';
import { adversarialBatches, evaluateAdversarial, type InputSpace, type PgdOptions } from '../nn/pgd.js';
import { recomputeBatchNorm } from '../nn/update-bn.js';
import { arcLengthMean, barrierSummary, garipovStats, linearBarrier, minimum, type BarrierSummary, type GaripovStats, type LabelledMetric } from './barrier.js';
import type { AlignmentData } from './align.js';
import { Curve, curveArcLength, gramForm } from './curve.js';
import { evaluatePath, interpolateInto, type PathEvaluationOptions, type PathPoint } from './interpolate.js';
import { disposeStateDict } from './permute.js';
import { repairInterpolation } from './repair.js';

export interface PathOptions extends PathEvaluationOptions {
  /** wd of the L2 term added to the train loss (Garipov's "train loss"); default 5e-4. */
  weightDecay?: number;
  /**
   * REPAIR at every t instead of BN re-estimation: the endpoint networks (A and P(B), loaded) and
   * the images REPAIR measures statistics on (`bn` should then be null).
   */
  repair?: { a: Module; b: Module; data: AlignmentData };
  /** Robust evaluation (see the file comment): how the loaders normalize, the attack, its seed. */
  robust?: { space: InputSpace; recipe: Partial<PgdOptions>; seed?: number };
}

export interface EvaluatedPoint extends PathPoint {
  /** Arc-length position from t = 0 (weight space). */
  s: number;
  /** 1/2 ||w(t)||^2 over the curve's parameters. */
  halfSquaredNorm: number;
  /** With robust evaluation: PGD test loss and accuracy at t (loss and accuracy are the clean ones). */
  robust?: { loss: number; accuracy: number };
}

/** The robust summaries of a path (section 4; see the file comment). */
export interface RobustSummary {
  robustLossBarrier: LabelledMetric;
  /** Arc-length mean of the PGD test loss. */
  meanRobustLoss: LabelledMetric;
  minRobustAccuracy: LabelledMetric;
  /** Clean test accuracy at the t of the minimum robust accuracy. */
  cleanAccuracyAtMinRobust: number;
  maxCleanAccuracy: LabelledMetric;
  maxRobustAccuracy: LabelledMetric;
  endpoints: { robustLoss: [number, number]; robustAccuracy: [number, number] };
}

export function robustSummary(points: readonly EvaluatedPoint[], arcLength: ArrayLike<number>): RobustSummary {
  const t = points.map((p) => p.t);
  const adv = points.map((p) => p.robust!);
  const loss = adv.map((r) => r.loss);
  const acc = adv.map((r) => r.accuracy);
  const min = minimum(t, acc);
  const at = t.indexOf(min.t);
  const max = (values: number[]) => {
    const i = values.indexOf(Math.max(...values));
    return { value: values[i]!, t: t[i]! };
  };
  const n = points.length;
  return {
    robustLossBarrier: { ...linearBarrier(t, loss), source: 'Entezari et al. 2022 on the PGD loss (Zhao et al. 2020): max_t L_adv(t) - ((1-t) L_adv(0) + t L_adv(1))' },
    meanRobustLoss: { value: arcLengthMean(arcLength, loss), source: 'line integral of the PGD loss over arc length, over the length (Tatro et al. 2020, viz_adversarial_curve.py)' },
    minRobustAccuracy: { ...min, source: 'Tatro et al. 2020: min_t PGD accuracy' },
    cleanAccuracyAtMinRobust: points[at]!.accuracy,
    maxCleanAccuracy: { ...max(points.map((p) => p.accuracy)), source: 'max_t clean accuracy' },
    maxRobustAccuracy: { ...max(acc), source: 'max_t PGD accuracy' },
    endpoints: { robustLoss: [loss[0]!, loss[n - 1]!], robustAccuracy: [acc[0]!, acc[n - 1]!] },
  };
}

export interface PathResult {
  path: 'curve' | 'line';
  points: EvaluatedPoint[];
  /** The path's length in weight space (sampled at the evaluated t). */
  length: number;
  barriers: BarrierSummary;
  /** With robust evaluation. */
  robust?: RobustSummary;
  /** Garipov et al.'s statistics; errors are 1 - accuracy. Train entries with train metrics only. */
  garipov: { testLoss: GaripovStats; testError: GaripovStats; trainLoss?: GaripovStats; trainLossWithL2?: GaripovStats; trainError?: GaripovStats };
}

/** Summaries of evaluated points (see the file comment). */
export function summarizePath(path: 'curve' | 'line', points: EvaluatedPoint[], weightDecay: number): PathResult {
  const t = points.map((p) => p.t);
  const s = points.map((p) => p.s);
  const loss = points.map((p) => p.loss);
  const acc = points.map((p) => p.accuracy);
  const garipov: PathResult['garipov'] = { testLoss: garipovStats(s, loss), testError: garipovStats(s, acc.map((a) => 1 - a)) };
  const train = points.map((p) => p.train).filter((x): x is EvalResult => !!x);
  if (train.length === points.length) {
    garipov.trainLoss = garipovStats(s, train.map((r) => r.loss));
    garipov.trainLossWithL2 = garipovStats(s, train.map((r, i) => r.loss + weightDecay * points[i]!.halfSquaredNorm));
    garipov.trainError = garipovStats(s, train.map((r) => 1 - r.accuracy));
  }
  // A line's arc length is proportional to t: the trapezoid means over t and over s agree.
  const robust = points.every((p) => p.robust) ? { robust: robustSummary(points, path === 'line' ? t : s) } : {};
  return { path, points, length: s[s.length - 1]!, barriers: barrierSummary(t, loss, acc, path === 'line' ? t : s), ...robust, garipov };
}

async function evaluateAlong(
  path: 'curve' | 'line',
  model: Module,
  curve: Curve,
  ts: readonly number[],
  opts: PathOptions,
): Promise<PathResult> {
  const n = curve.points;
  const coefficients = (t: number) => (path === 'curve' ? curve.coefficients(t) : Array.from({ length: n }, (_, k) => (k === 0 ? 1 - t : k === n - 1 ? t : 0)));
  const set = (t: number) => (path === 'curve' ? curve.loadInto(model, t) : interpolateInto(model, curve.endpoints[0], curve.endpoints[1], t));
  const repair = opts.repair;
  const load = repair
    ? async (t: number) => disposeStateDict(await repairInterpolation(repair.a, repair.b, t, repair.data, { workspace: model, load: () => set(t) }))
    : set;
  const g = await curve.gram();
  // The line's length ||theta_B - theta_A|| = sqrt(d^T G d), d = e_{n-1} - e_0.
  const d = Array.from({ length: n }, (_, k) => (k === 0 ? -1 : k === n - 1 ? 1 : 0));
  const lineLength = Math.sqrt(Math.max(0, gramForm(g, d, d)));
  const s = path === 'curve' ? curveArcLength(curve.kind, n, g, ts) : Float64Array.from(ts, (t) => t * lineLength);
  const raw = opts.robust ? await evaluateRobustPath(model, ts, load, opts) : await evaluatePath(model, ts, load, { ...opts, bn: repair ? null : opts.bn });
  const points = raw.map((p, i) => {
    const c = coefficients(p.t);
    return { ...p, s: s[i]!, halfSquaredNorm: gramForm(g, c, c) / 2 };
  });
  return summarizePath(path, points, opts.weightDecay ?? 5e-4);
}

/**
 * evaluatePath's loop for robust evaluation: at each t, BN re-estimated on PGD examples of the
 * training batches (when the model has BN), then clean and PGD test metrics.
 */
async function evaluateRobustPath(model: Module, ts: readonly number[], load: (t: number) => void | Promise<void>, opts: PathOptions): Promise<(PathPoint & { robust: { loss: number; accuracy: number } })[]> {
  const { space, recipe, seed = 0 } = opts.robust!;
  if (opts.repair) throw new Error('robust evaluation re-estimates batch norm on PGD examples; it does not combine with REPAIR');
  const out = [];
  for (const t of ts) {
    const start = performance.now();
    await load(t);
    const bn = opts.bn ? await recomputeBatchNorm(model, adversarialBatches(model, opts.bn, space, recipe, seed), { batches: opts.bnBatches }) : { images: 0 };
    const r = await evaluateAdversarial(model, opts.test, space, recipe, { seed });
    const train = opts.train ? { train: await evaluate(model, opts.train) } : {};
    const point = { t, ...r.clean, bnImages: bn.images, ...train, robust: { loss: r.pgd.loss, accuracy: r.pgd.accuracy }, seconds: (performance.now() - start) / 1000 };
    out.push(point);
    opts.onPoint?.(point);
  }
  return out;
}

/** Evaluates `curve` at `ts` in `model` (a network of the curve's architecture, used as workspace). */
export function evaluateCurve(model: Module, curve: Curve, ts: readonly number[], opts: PathOptions): Promise<PathResult> {
  return evaluateAlong('curve', model, curve, ts, opts);
}

/** Evaluates the straight line between the curve's endpoints, (1 - t) theta_A + t theta_B, the same way. */
export function evaluateCurveLine(model: Module, curve: Curve, ts: readonly number[], opts: PathOptions): Promise<PathResult> {
  return evaluateAlong('line', model, curve, ts, opts);
}
