// Barrier metrics of a path between two networks, as pure functions of the values sampled along
// it (loss or accuracy at increasing positions t). The literature measures "how bad is the middle"
// in incompatible ways: against the mean of the endpoint values or against the straight line
// between them, at the worst point or only at the midpoint, on loss or on accuracy, on train or
// test data, over 11, 25, 61 or 65 positions, with or without batch-norm statistics reset at each
// point. Two numbers are comparable only when all of these agree (Entezari et al.'s own code, for
// one, reports the midpoint accuracy drop rather than the paper's sup over the line), so each is
// computed exactly as its source defines it and labelled with that source:
//
//   Entezari et al. 2022     max_t [L(t) - ((1-t) L(0) + t L(1))]   rise above the endpoints' line
//   Git Re-Basin (2023)      max_t L(t) - (L(0) + L(1)) / 2           worst point over endpoint mean
//   REPAIR (2023)            (acc(0) + acc(1)) / 2 - acc(1/2)          midpoint drop (and its loss twin)
//   Tatro et al. 2020        min_t acc(t), and the arc-length mean of acc along the path
//
// Positions need not be uniform; the endpoints are the first and last samples.

function check(t: ArrayLike<number>, values: ArrayLike<number>): number {
  const n = t.length;
  if (n < 2) throw new Error(`barrier: a path needs at least 2 points, got ${n}`);
  if (values.length !== n) throw new Error(`barrier: ${values.length} values for ${n} positions`);
  for (let i = 1; i < n; i++) {
    if (!(t[i]! > t[i - 1]!)) throw new Error(`barrier: positions must increase, got ${t[i - 1]} then ${t[i]} at index ${i}`);
  }
  return n;
}

/** The largest value of f(t_i) - g(t_i) and where it occurs. */
function maxExcess(t: ArrayLike<number>, values: ArrayLike<number>, baseline: (ti: number) => number): { value: number; t: number } {
  let best = { value: -Infinity, t: NaN };
  for (let i = 0; i < t.length; i++) {
    const excess = values[i]! - baseline(t[i]!);
    if (excess > best.value) best = { value: excess, t: t[i]! };
  }
  return best;
}

/**
 * Entezari et al. 2022 (also Theus et al. 2025): max over t of L(t) - ((1-u) L(0) + u L(1)),
 * u = (t - t_0) / (t_n - t_0), the rise of the loss above the straight line between the endpoint
 * losses. 0 at the endpoints, so never negative.
 */
export function linearBarrier(t: ArrayLike<number>, loss: ArrayLike<number>): { value: number; t: number } {
  const n = check(t, loss);
  const [t0, t1, l0, l1] = [t[0]!, t[n - 1]!, loss[0]!, loss[n - 1]!];
  return maxExcess(t, loss, (ti) => {
    const u = (ti - t0) / (t1 - t0);
    return (1 - u) * l0 + u * l1;
  });
}

/**
 * Git Re-Basin (Ainsworth et al. 2023, after Frankle et al. 2020): max over t of L(t) minus the
 * plain mean of the endpoint losses. The maximum includes the endpoints, so the barrier is at
 * least |L(0) - L(1)| / 2.
 */
export function meanBarrier(t: ArrayLike<number>, loss: ArrayLike<number>): { value: number; t: number } {
  const n = check(t, loss);
  const mean = (loss[0]! + loss[n - 1]!) / 2;
  return maxExcess(t, loss, () => mean);
}

/** The value at position `at`, linearly interpolated between the neighbouring samples. */
export function valueAt(t: ArrayLike<number>, values: ArrayLike<number>, at: number): number {
  const n = check(t, values);
  if (!(at >= t[0]! && at <= t[n - 1]!)) throw new Error(`barrier: position ${at} is outside [${t[0]}, ${t[n - 1]}]`);
  let i = 0;
  while (i < n - 2 && t[i + 1]! < at) i++;
  if (t[i]! === at) return values[i]!;
  if (t[i + 1]! === at) return values[i + 1]!;
  const u = (at - t[i]!) / (t[i + 1]! - t[i]!);
  return (1 - u) * values[i]! + u * values[i + 1]!;
}

/** Position halfway between the endpoints (0.5 on [0, 1]). */
function midpoint(t: ArrayLike<number>): number {
  return (t[0]! + t[t.length - 1]!) / 2;
}

/**
 * REPAIR (Jordan et al. 2023): mean endpoint accuracy minus the accuracy at the midpoint
 * (interpolated between neighbours when the midpoint is not a sample). Positive = a drop.
 */
export function midpointAccuracyDrop(t: ArrayLike<number>, accuracy: ArrayLike<number>): number {
  const n = check(t, accuracy);
  return (accuracy[0]! + accuracy[n - 1]!) / 2 - valueAt(t, accuracy, midpoint(t));
}

/** REPAIR's loss barrier: the loss at the midpoint minus the mean endpoint loss. */
export function midpointLossBarrier(t: ArrayLike<number>, loss: ArrayLike<number>): number {
  const n = check(t, loss);
  return valueAt(t, loss, midpoint(t)) - (loss[0]! + loss[n - 1]!) / 2;
}

/** The smallest value and its position (Tatro et al.: the minimum test accuracy on the curve). */
export function minimum(t: ArrayLike<number>, values: ArrayLike<number>): { value: number; t: number } {
  check(t, values);
  let best = { value: Infinity, t: NaN };
  for (let i = 0; i < t.length; i++) if (values[i]! < best.value) best = { value: values[i]!, t: t[i]! };
  return best;
}

/**
 * Tatro et al. 2020 (and Garipov et al. 2018): the mean of a value along a path with respect to
 * arc length, (1 / S) * integral of f ds, by the trapezoid rule over the samples' arc-length
 * positions s (increasing; s[last] - s[0] = S). On a straight line the arc length is proportional
 * to t, so s = t gives the trapezoid mean over t.
 */
export function arcLengthMean(s: ArrayLike<number>, values: ArrayLike<number>): number {
  const n = check(s, values);
  let integral = 0;
  for (let i = 1; i < n; i++) integral += ((values[i - 1]! + values[i]!) / 2) * (s[i]! - s[i - 1]!);
  return integral / (s[n - 1]! - s[0]!);
}

/**
 * Arc-length positions of points of a path given by their coordinates (e.g. the planar curve of
 * Tatro's evaluation: theta_1 at the origin, P theta_2 on the x-axis): s_0 = 0, s_i = s_{i-1} +
 * |p_i - p_{i-1}| (polyline length, exact in the limit of dense samples).
 */
export function arcLengthPositions(points: readonly ArrayLike<number>[]): Float64Array {
  const s = new Float64Array(points.length);
  for (let i = 1; i < points.length; i++) {
    const [p, q] = [points[i - 1]!, points[i]!];
    if (p.length !== q.length) throw new Error(`barrier: point ${i} has ${q.length} coordinates, point ${i - 1} has ${p.length}`);
    let d2 = 0;
    for (let k = 0; k < p.length; k++) d2 += (q[k]! - p[k]!) ** 2;
    s[i] = s[i - 1]! + Math.sqrt(d2);
  }
  return s;
}

export interface LabelledMetric {
  value: number;
  /** Where on the path the extreme is, for max/min metrics. */
  t?: number;
  /** Who defines it and how. */
  source: string;
}

export interface BarrierSummary {
  endpoints: { loss: [number, number]; accuracy: [number, number]; meanLoss: number; meanAccuracy: number };
  lossBarrierLinear: LabelledMetric;
  lossBarrierMean: LabelledMetric;
  midpointLossBarrier: LabelledMetric;
  midpointAccuracyDrop: LabelledMetric;
  minAccuracy: LabelledMetric;
  meanAccuracy: LabelledMetric;
  meanLoss: LabelledMetric;
}

/**
 * Every metric above for one path. `arcLength` gives the samples' arc-length positions for the
 * means (default: t itself, right for a straight line).
 */
export function barrierSummary(t: ArrayLike<number>, loss: ArrayLike<number>, accuracy: ArrayLike<number>, arcLength: ArrayLike<number> = t): BarrierSummary {
  const n = check(t, loss);
  check(t, accuracy);
  const ends = <T>(v: ArrayLike<T>): [T, T] => [v[0]!, v[n - 1]!];
  const meanKind = arcLength === t ? 'trapezoid rule over t (arc length is uniform in t on a straight line)' : 'trapezoid rule over arc length';
  return {
    endpoints: { loss: ends(loss), accuracy: ends(accuracy), meanLoss: (loss[0]! + loss[n - 1]!) / 2, meanAccuracy: (accuracy[0]! + accuracy[n - 1]!) / 2 },
    lossBarrierLinear: { ...linearBarrier(t, loss), source: 'Entezari et al. 2022: max_t L(t) - ((1-t) L(0) + t L(1))' },
    lossBarrierMean: { ...meanBarrier(t, loss), source: 'Git Re-Basin (Ainsworth et al. 2023): max_t L(t) - (L(0) + L(1)) / 2' },
    midpointLossBarrier: { value: midpointLossBarrier(t, loss), t: midpoint(t), source: 'REPAIR (Jordan et al. 2023): L(1/2) - (L(0) + L(1)) / 2' },
    midpointAccuracyDrop: { value: midpointAccuracyDrop(t, accuracy), t: midpoint(t), source: 'REPAIR (Jordan et al. 2023): (acc(0) + acc(1)) / 2 - acc(1/2)' },
    minAccuracy: { ...minimum(t, accuracy), source: 'Tatro et al. 2020: min_t acc(t)' },
    meanAccuracy: { value: arcLengthMean(arcLength, accuracy), source: `Tatro et al. 2020: arc-length mean of acc(t), ${meanKind}` },
    meanLoss: { value: arcLengthMean(arcLength, loss), source: `Garipov et al. 2018: arc-length mean of L(t), ${meanKind}` },
  };
}

/** Garipov et al. 2018's summary of a value along a path (DMC eval_curve.py `stats`). */
export interface GaripovStats {
  min: number;
  max: number;
  /** Plain mean over the samples. */
  avg: number;
  /** Arc-length mean: trapezoid rule over the samples' arc-length positions, over the length. */
  int: number;
}

export function garipovStats(arcLength: ArrayLike<number>, values: ArrayLike<number>): GaripovStats {
  const n = check(arcLength, values);
  const v = Array.from(values);
  return { min: Math.min(...v), max: Math.max(...v), avg: v.reduce((a, b) => a + b, 0) / n, int: arcLengthMean(arcLength, values) };
}
