// The loss plane of a curve (Tatro et al. 2020, section 7; Garipov et al. 2018, plane.py): the
// affine plane of weight space through theta_A, theta_B (= P theta_B when B was aligned) and a
// bend theta_m, with an orthonormal basis by Gram-Schmidt over ALL curve parameter tensors at once
// (every weight and bias, BN weights and biases; not the running statistics), as one flat vector:
//   u = (theta_B - theta_A) / |theta_B - theta_A|
//   v = r / |r|,   r = (theta_m - theta_A) - <theta_m - theta_A, u> u
// A point w of weight space has plane coordinates x = <w - theta_A, u>, y = <w - theta_A, v> and
// distance |(w - theta_A) - x u - y v| from the plane. So theta_A is (0, 0), theta_B is
// (|B - A|, 0), the bend is (<m - A, u>, |r|), and the straight line is (t |B - A|, 0). A
// quadratic Bezier (1-t)^2 A + 2t(1-t) m + t^2 B is an affine combination of the three points,
// so it lies in the plane exactly (distance ~ float32 rounding); a curve with more bends need not.
//
// The grid (Garipov's --grid_points, --margin_left/right/bottom/top): G x G points spanning the
// control points' coordinates with a margin of `margin` times the span on each side. Garipov spans
// x in [-margin, 1 + margin] |B - A| and y in [-margin, 1 + margin] |r|, which is the same when the
// bend's x lies between A's and B's (the usual case). At each grid point (x, y) the network
// theta_A + x u + y v (buffers from A) gets its BN statistics re-estimated on the training loader
// (interpolate.ts, recomputeBatchNorm: section 2's update_bn), then test loss and accuracy (and
// train loss and accuracy when asked): evaluatePath does exactly this, run over the grid's indices.
//
// GPU memory: u and v are kept once (two copies of the parameters); every point's weights and
// every projection are built in a tidy scope; only scalars are read back.
import { Tensor, add, concat, keep, linearCombination, mul, mulScalar, noGrad, reshape, square, sub, sum, tidy } from '../engine/index.js';
import type { EvalResult } from '../nn/evaluate.js';
import { copyInto, type Module, type StateDict } from '../nn/module.js';
import type { Curve } from './curve.js';
import { batchNormLayers, evaluatePath, linspace, type PathEvaluationOptions } from './interpolate.js';
import { disposeStateDict } from './permute.js';

/** Coordinates of a point of weight space in the plane, and its distance from it. */
export interface PlaneCoordinates {
  x: number;
  y: number;
  distance: number;
}

/** Sum over every tensor of f(name), a scalar tensor (recorded in the caller's scope). */
function total(names: readonly string[], f: (name: string) => Tensor): Tensor {
  let acc: Tensor | null = null;
  for (const name of names) {
    const s = sum(f(name));
    acc = acc ? add(acc, s) : s;
  }
  return acc!;
}

/** Kept tensors f(name) for every name (each built in its own scope). */
function keptMap(names: readonly string[], f: (name: string) => Tensor): StateDict {
  return new Map(names.map((name) => [name, keep(tidy(() => f(name)))]));
}

/** An orthonormal basis (u, v) of the plane through theta_A, theta_B and one bend of a curve. */
export class PlaneBasis {
  /** |theta_B - theta_A|: B's x coordinate. */
  readonly xLength: number;
  /** |r|, the bend's distance from the line A-B: its y coordinate. */
  readonly yLength: number;

  private constructor(
    readonly names: readonly string[],
    /** theta_A (the curve's tensors, not owned). */
    readonly origin: StateDict,
    readonly u: StateDict,
    readonly v: StateDict,
    xLength: number,
    yLength: number,
  ) {
    this.xLength = xLength;
    this.yLength = yLength;
  }

  /**
   * Gram-Schmidt over all curve parameters of theta_A, theta_B and bend k (1 .. n-2). Three
   * scalars are read back (|B - A|^2, <m - A, u>, |r|^2). Throws when B = A or when the bend lies
   * on the line A-B (an untrained, linearly initialized curve): then there is no plane.
   */
  static async fromCurve(curve: Curve, k: number): Promise<PlaneBasis> {
    if (!(Number.isInteger(k) && k >= 1 && k <= curve.bends.length)) throw new Error(`plane: bend ${k} does not exist (the curve has ${curve.bends.length} bend(s))`);
    const names = curve.names;
    const [a, b] = curve.endpoints;
    const m = curve.bends[k - 1]!;
    return noGrad(async () => {
      const n2 = keep(tidy(() => total(names, (n) => square(sub(b.get(n)!, a.get(n)!)))));
      const dx = Math.sqrt(await n2.item());
      n2.dispose();
      if (!(dx > 0)) throw new Error('plane: theta_B equals theta_A, no direction u');
      const u = keptMap(names, (n) => mulScalar(sub(b.get(n)!, a.get(n)!), 1 / dx));
      const dot = keep(tidy(() => total(names, (n) => mul(sub(m.get(n)!, a.get(n)!), u.get(n)!))));
      const mx = await dot.item();
      dot.dispose();
      const r = keptMap(names, (n) => sub(sub(m.get(n)!, a.get(n)!), mulScalar(u.get(n)!, mx)));
      const r2 = keep(tidy(() => total(names, (n) => square(r.get(n)!))));
      const dy = Math.sqrt(await r2.item());
      r2.dispose();
      // float32 rounding of a midpoint (A + B) / 2 leaves |r| of order 1e-7 |B - A|.
      if (!(dy > 1e-5 * dx)) {
        disposeStateDict(u);
        disposeStateDict(r);
        throw new Error(`plane: bend ${k} lies on the straight line A-B (distance ${dy.toExponential(2)}, |B - A| = ${dx.toPrecision(4)}): no plane through the three points (train the curve first)`);
      }
      const v = keptMap(names, (n) => mulScalar(r.get(n)!, 1 / dy));
      disposeStateDict(r);
      return new PlaneBasis(names, a, u, v, dx, dy);
    });
  }

  /**
   * [x, y, distance^2] of `point` (a state dict over the curve's parameters) as a [3] tensor:
   * x = <w - A, u>, y = <w - A, v>, distance^2 = |(w - A) - x u - y v|^2, x and y staying on the
   * GPU (broadcast scalars) so one read gives all three.
   */
  project(point: StateDict): Tensor {
    return noGrad(() => {
      const d = (n: string) => sub(point.get(n)!, this.origin.get(n)!);
      const x = total(this.names, (n) => mul(d(n), this.u.get(n)!));
      const y = total(this.names, (n) => mul(d(n), this.v.get(n)!));
      const r2 = total(this.names, (n) => square(sub(sub(d(n), mul(this.u.get(n)!, x)), mul(this.v.get(n)!, y))));
      return concat([reshape(x, [1]), reshape(y, [1]), reshape(r2, [1])], 0);
    });
  }

  /** Coordinates of the points `make(i)` builds, i = 0 .. count-1 (each in its own scope; one read). */
  async projectAll(count: number, make: (i: number) => StateDict): Promise<PlaneCoordinates[]> {
    if (count === 0) return [];
    const kept = Array.from({ length: count }, (_, i) => keep(tidy(() => noGrad(() => this.project(make(i))))));
    const joined = keep(tidy(() => concat(kept, 0)));
    try {
      const all = await joined.toArray();
      return kept.map((_, i) => ({ x: all[3 * i]!, y: all[3 * i + 1]!, distance: Math.sqrt(Math.max(0, all[3 * i + 2]!)) }));
    } finally {
      for (const t of [...kept, joined]) t.dispose();
    }
  }

  /** theta_A + x u + y v for every curve parameter (recorded in the caller's scope). */
  pointAt(x: number, y: number): StateDict {
    return new Map(this.names.map((n) => [n, linearCombination([this.origin.get(n)!, this.u.get(n)!, this.v.get(n)!], [1, x, y])]));
  }

  /**
   * Writes the plane's point (x, y) into `model`'s parameters and `buffers` (theta_A's running
   * statistics and counters, to be re-estimated) into its other tensors.
   */
  loadInto(model: Module, x: number, y: number, buffers: StateDict): void {
    noGrad(() =>
      tidy(() => {
        const w = this.pointAt(x, y);
        for (const [name, dst] of model.stateDict()) copyInto(dst, w.get(name) ?? buffers.get(name)!);
      }),
    );
  }

  dispose(): void {
    disposeStateDict(this.u);
    disposeStateDict(this.v);
  }
}

/** The bend a plane goes through by default: the only one for n = 3, else the middle one (k = ceil((n-2)/2)). */
export function defaultPlaneBend(curve: Curve): number {
  return Math.ceil(curve.bends.length / 2);
}

/** `count` equally spaced values over [lo - margin span, hi + margin span], span = hi - lo. */
export function gridAxis(lo: number, hi: number, count: number, margin: number): number[] {
  const span = hi - lo;
  const [from, to] = [lo - margin * span, hi + margin * span];
  return linspace(count).map((s) => from + s * (to - from));
}

export interface PlaneOptions extends Omit<PathEvaluationOptions, 'onPoint'> {
  /** Grid points per axis, G (default 17; Garipov's plane.py uses 21). */
  grid?: number;
  /** Margin on each side, as a fraction of the control points' span (default 0.2, Garipov's). */
  margin?: number;
  /** Explicit grid coordinates instead of `grid` and `margin`. */
  xs?: readonly number[];
  ys?: readonly number[];
  /** The bend the plane goes through (1 .. n-2; default defaultPlaneBend). */
  bend?: number;
  /** Values of t at which the curve and the line are projected (default 65, the paper's). */
  curvePoints?: number;
  /** Also evaluate theta_A, the bend and theta_B at their own coordinates (default true). */
  controlPoints?: boolean;
  /** Called after each evaluated point, with the count done and the total. */
  onPoint?: (p: PlanePoint, done: number, total: number) => void;
}

export interface PlanePoint extends EvalResult {
  /** Grid indices (column ix along x, row iy along y); null for a control point. */
  ix: number | null;
  iy: number | null;
  /** The control point evaluated here ('A', 'bend{k}', 'B'), for control points. */
  label?: string;
  x: number;
  y: number;
  bnImages: number;
  train?: EvalResult;
  seconds: number;
}

export interface PlaneControlPoint extends PlaneCoordinates {
  label: string;
  /** Control point index k on the curve (0 = A, n-1 = B). */
  k: number;
  /** Whether the plane is defined by this point (A, the chosen bend, B). */
  spans: boolean;
  /** The network at (x, y), when control points are evaluated (for the three spanning points). */
  eval?: { loss: number; accuracy: number; train?: EvalResult };
}

export interface PlaneResult {
  curve: { kind: string; points: number };
  /** The bend the plane goes through. */
  bend: number;
  /** Set when the curve has more than one bend: what the plane then is. */
  note?: string;
  basis: { xLength: number; yLength: number; tensors: number; parameters: number; method: string };
  controlPoints: PlaneControlPoint[];
  grid: { size: [number, number]; margin: number | null; xs: number[]; ys: number[] };
  /** loss[iy][ix] at (xs[ix], ys[iy]): rows along y, columns along x (a heatmap's z). */
  loss: number[][];
  accuracy: number[][];
  trainLoss?: number[][];
  trainAccuracy?: number[][];
  /** Every evaluated point in evaluation order (grid row by row, then control points). */
  points: PlanePoint[];
  /** The curve at `t`: its plane coordinates and distance from the plane. */
  curveProjection: { t: number[]; x: number[]; y: number[]; distance: number[] };
  /** The straight line (1 - t) A + t B: (t |B - A|, 0), exactly. */
  lineProjection: { t: number[]; x: number[]; y: number[] };
  batchNorm: { present: boolean; reestimated: boolean; images: number };
  images: { test: number; train: number | null };
  /** The grid point of least test loss. */
  minimum: { ix: number; iy: number; x: number; y: number; loss: number; accuracy: number };
}

const grid2 = (values: number[], nx: number, ny: number): number[][] => Array.from({ length: ny }, (_, iy) => values.slice(iy * nx, (iy + 1) * nx));

/**
 * Evaluates `curve`'s loss plane in `model` (a network of the curve's architecture, used as
 * workspace: its tensors are overwritten). See the file comment for the math.
 */
export async function evaluatePlane(model: Module, curve: Curve, opts: PlaneOptions): Promise<PlaneResult> {
  if (curve.bends.length === 0) throw new Error('plane: the curve has no bend (a straight line spans no plane)');
  const k = opts.bend ?? defaultPlaneBend(curve);
  const basis = await PlaneBasis.fromCurve(curve, k);
  try {
    const n = curve.points;
    const labels = Array.from({ length: n }, (_, j) => (j === 0 ? 'A' : j === n - 1 ? 'B' : `bend${j}`));
    const coords = await basis.projectAll(n, (j) => new Map(curve.names.map((name) => [name, curve.controlPoints(name)[j]!])));
    const controlPoints: PlaneControlPoint[] = coords.map((c, j) => ({ label: labels[j]!, k: j, spans: j === 0 || j === k || j === n - 1, ...c }));
    const spanning = controlPoints.filter((p) => p.spans);

    const margin = opts.margin ?? 0.2;
    const G = opts.grid ?? 17;
    if (!(opts.xs && opts.ys) && !(Number.isInteger(G) && G >= 2)) throw new Error(`plane: need an integer grid >= 2, got ${G}`);
    if (!(margin >= 0)) throw new Error(`plane: margin must be >= 0, got ${margin}`);
    const along = (c: 'x' | 'y') => [Math.min(...spanning.map((p) => p[c])), Math.max(...spanning.map((p) => p[c]))] as const;
    const xs = opts.xs ? [...opts.xs] : gridAxis(...along('x'), G, margin);
    const ys = opts.ys ? [...opts.ys] : gridAxis(...along('y'), G, margin);
    const [nx, ny] = [xs.length, ys.length];

    // The points to evaluate: the grid row by row, then the three spanning control points.
    const targets: { ix: number | null; iy: number | null; label?: string; x: number; y: number }[] = [];
    for (let iy = 0; iy < ny; iy++) for (let ix = 0; ix < nx; ix++) targets.push({ ix, iy, x: xs[ix]!, y: ys[iy]! });
    if (opts.controlPoints ?? true) for (const p of spanning) targets.push({ ix: null, iy: null, label: p.label, x: p.x, y: p.y });

    const points: PlanePoint[] = [];
    const buffers = curve.endpoints[0];
    // evaluatePath over the targets' indices: load, BN re-estimation, test (and train) evaluation.
    await evaluatePath(model, targets.map((_, i) => i), (i) => basis.loadInto(model, targets[i]!.x, targets[i]!.y, buffers), {
      ...opts,
      onPoint: (p) => {
        const { t, ...result } = p;
        const point: PlanePoint = { ...targets[t]!, ...result };
        points.push(point);
        opts.onPoint?.(point, points.length, targets.length);
      },
    });
    const gridPoints = points.slice(0, nx * ny);
    for (const p of points.slice(nx * ny)) {
      const cp = controlPoints.find((c) => c.label === p.label)!;
      cp.eval = { loss: p.loss, accuracy: p.accuracy, ...(p.train ? { train: p.train } : {}) };
    }

    const ts = linspace(opts.curvePoints ?? 65);
    const onCurve = await basis.projectAll(ts.length, (i) => curve.weightsAt(ts[i]!));
    const best = gridPoints.reduce((m, p) => (p.loss < m.loss ? p : m));
    const hasBn = batchNormLayers(model).length > 0;
    const result: PlaneResult = {
      curve: { kind: curve.kind, points: n },
      bend: k,
      basis: {
        xLength: basis.xLength,
        yLength: basis.yLength,
        tensors: curve.names.length,
        parameters: curve.names.reduce((s, name) => s + curve.endpoints[0].get(name)!.size, 0),
        method: 'Gram-Schmidt of (B - A, bend - A) over all curve parameters as one vector (Garipov plane.py)',
      },
      controlPoints,
      grid: { size: [nx, ny], margin: opts.xs && opts.ys ? null : margin, xs, ys },
      loss: grid2(gridPoints.map((p) => p.loss), nx, ny),
      accuracy: grid2(gridPoints.map((p) => p.accuracy), nx, ny),
      points,
      curveProjection: { t: ts, x: onCurve.map((c) => c.x), y: onCurve.map((c) => c.y), distance: onCurve.map((c) => c.distance) },
      lineProjection: { t: ts, x: ts.map((t) => t * basis.xLength), y: ts.map(() => 0) },
      batchNorm: { present: hasBn, reestimated: hasBn && !!opts.bn, images: points[0]?.bnImages ?? 0 },
      images: { test: points[0]?.images ?? 0, train: points[0]?.train?.images ?? null },
      minimum: { ix: best.ix!, iy: best.iy!, x: best.x, y: best.y, loss: best.loss, accuracy: best.accuracy },
    };
    if (opts.train) {
      result.trainLoss = grid2(gridPoints.map((p) => p.train!.loss), nx, ny);
      result.trainAccuracy = grid2(gridPoints.map((p) => p.train!.accuracy), nx, ny);
    }
    if (curve.bends.length > 1) {
      result.note = `the curve has ${curve.bends.length} bends; the plane goes through A, bend ${k} and B, and the curve leaves it (curveProjection.distance)`;
    }
    return result;
  } finally {
    basis.dispose();
  }
}
