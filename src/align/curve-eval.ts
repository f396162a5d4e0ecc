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
import type { EvalResult } from '../nn/evaluate.js';
import type { Module } from '../nn/module.js';
import { barrierSummary, garipovStats, type BarrierSummary, type GaripovStats } from './barrier.js';
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
}

export interface EvaluatedPoint extends PathPoint {
  /** Arc-length position from t = 0 (weight space). */
  s: number;
  /** 1/2 ||w(t)||^2 over the curve's parameters. */
  halfSquaredNorm: number;
}

export interface PathResult {
  path: 'curve' | 'line';
  points: EvaluatedPoint[];
  /** The path's length in weight space (sampled at the evaluated t). */
  length: number;
  barriers: BarrierSummary;
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
  return { path, points, length: s[s.length - 1]!, barriers: barrierSummary(t, loss, acc, path === 'line' ? t : s), garipov };
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
  const raw = await evaluatePath(model, ts, load, { ...opts, bn: repair ? null : opts.bn });
  const points = raw.map((p, i) => {
    const c = coefficients(p.t);
    return { ...p, s: s[i]!, halfSquaredNorm: gramForm(g, c, c) / 2 };
  });
  return summarizePath(path, points, opts.weightDecay ?? 5e-4);
}

/** Evaluates `curve` at `ts` in `model` (a network of the curve's architecture, used as workspace). */
export function evaluateCurve(model: Module, curve: Curve, ts: readonly number[], opts: PathOptions): Promise<PathResult> {
  return evaluateAlong('curve', model, curve, ts, opts);
}

/** Evaluates the straight line between the curve's endpoints, (1 - t) theta_A + t theta_B, the same way. */
export function evaluateCurveLine(model: Module, curve: Curve, ts: readonly number[], opts: PathOptions): Promise<PathResult> {
  return evaluateAlong('line', model, curve, ts, opts);
}
