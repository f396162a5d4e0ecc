// Mode-connecting curves (Tatro et al. 2020, section 2; Garipov et al. 2018, curves.py): a path
// w(t), t in [0, 1], through the space of a network's parameters, given by n control points
//   w(t) = sum_k c_k(t) w_k,   k = 0 .. n-1,
// with w_0 = theta_A and w_{n-1} = theta_B the fixed endpoints and w_1 .. w_{n-2} the trainable
// "bends". Two coefficient families:
//   Bezier     c_k(t) = binom(n-1, k) t^k (1-t)^(n-1-k)       (n = 3: the paper's quadratic
//              (1-t)^2 theta_A + 2t(1-t) theta_m + t^2 theta_B)
//   polychain  c_k(t) = max(0, 1 - |t (n-1) - k|)             (a broken line through the bends)
// Both sum to 1 for every t, and c(0) = e_0, c(1) = e_{n-1}, so the curve passes exactly through
// its endpoints.
//
// What is on the curve: every parameter of the model (conv and linear weights and biases, BN
// weights and biases). BN running statistics are not: they describe a network's activations and
// are re-estimated at every point (interpolate.ts, recomputeBatchNorm). The endpoints are held
// once, as kept tensors without gradient; only the bends are trainable, so backward through
// w(t) reaches them alone, each with the factor c_k(t).
import { Tensor, add, clone, keep, linearCombination, mul, noGrad, sum, square, tidy } from '../engine/index.js';
import { copyInto, type Module, type StateDict } from '../nn/module.js';

export const CURVE_KINDS = ['bezier', 'polychain'] as const;
export type CurveKind = (typeof CURVE_KINDS)[number];

function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return c;
}

/** Bernstein coefficients binom(n-1, k) t^k (1-t)^(n-1-k), k = 0 .. n-1. */
export function bezierCoefficients(t: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => binomial(n - 1, k) * t ** k * (1 - t) ** (n - 1 - k));
}

/** Hat functions max(0, 1 - |t (n-1) - k|), k = 0 .. n-1. */
export function polychainCoefficients(t: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => Math.max(0, 1 - Math.abs(t * (n - 1) - k)));
}

export function curveCoefficients(kind: CurveKind, t: number, n: number): number[] {
  if (!(Number.isInteger(n) && n >= 2)) throw new Error(`curve: need an integer >= 2 control points, got ${n}`);
  if (!(t >= 0 && t <= 1)) throw new Error(`curve: t must be in [0, 1], got ${t}`);
  return kind === 'bezier' ? bezierCoefficients(t, n) : polychainCoefficients(t, n);
}

/** The names of a model's tensors that lie on a curve: its parameters (not its buffers). */
export function curveParameterNames(model: Module): string[] {
  return model.namedParameters().map(([name]) => name);
}

/** The name of bend k's copy of parameter `name` in a curve file: `bend{k}.{name}`. */
export function bendKey(k: number, name: string): string {
  return `bend${k}.${name}`;
}

export interface CurveOptions {
  kind?: CurveKind;
  /** Control points n, endpoints included (default 3: one bend, the paper's curve). */
  points?: number;
  /**
   * Initial bends: 'linear' puts bend k on the straight line, (1 - k/(n-1)) theta_A + k/(n-1)
   * theta_B (the midpoint for n = 3; NeuronAlignment's init_linear), or one state dict per bend
   * to copy (Garipov's random initialization: freshly initialized networks).
   */
  init?: 'linear' | readonly StateDict[];
}

export class Curve {
  readonly kind: CurveKind;
  /** Control points, endpoints included. */
  readonly points: number;
  /** The parameter names on the curve, in the model's order. */
  readonly names: readonly string[];
  /** theta_A and theta_B: kept copies of every tensor of the endpoints (buffers too). */
  readonly endpoints: readonly [StateDict, StateDict];
  /** bends[k - 1] is control point k: one trainable kept tensor per curve parameter. */
  readonly bends: readonly StateDict[];

  /**
   * A curve from `a` (t = 0) to `b` (t = 1) over `model`'s parameters. The state dicts are copied
   * (the curve owns its tensors; dispose() frees them).
   */
  constructor(model: Module, a: StateDict, b: StateDict, opts: CurveOptions = {}) {
    this.kind = opts.kind ?? 'bezier';
    this.points = opts.points ?? 3;
    if (!CURVE_KINDS.includes(this.kind)) throw new Error(`curve: unknown kind '${this.kind}' (expected ${CURVE_KINDS.join(' or ')})`);
    if (!(Number.isInteger(this.points) && this.points >= 2)) throw new Error(`curve: need an integer >= 2 control points, got ${this.points}`);
    this.names = curveParameterNames(model);
    const own = model.stateDict();
    const copy = (state: StateDict, what: string): StateDict =>
      tidy(() =>
        new Map(
          [...own].map(([name, dst]) => {
            const src = state.get(name);
            if (!src) throw new Error(`curve: ${what} lacks '${name}'`);
            if (src.dtype !== dst.dtype || src.size !== dst.size) throw new Error(`curve: ${what}'s '${name}' is ${src}, the model's ${dst}`);
            return [name, keep(noGrad(() => clone(src)).reshape(dst.shape))];
          }),
        ),
      );
    this.endpoints = [copy(a, 'endpoint A'), copy(b, 'endpoint B')];
    const n1 = this.points - 1;
    const init = opts.init ?? 'linear';
    this.bends = Array.from({ length: this.points - 2 }, (_, i) => {
      const k = i + 1;
      const source = init === 'linear' ? null : init[i];
      if (source === undefined) throw new Error(`curve: no initialization for bend ${k}`);
      return noGrad(() =>
        tidy(() => {
          const bend: StateDict = new Map();
          for (const name of this.names) {
            const [ta, tb] = [this.endpoints[0].get(name)!, this.endpoints[1].get(name)!];
            let value: Tensor;
            if (source) {
              const s = source.get(name);
              if (!s || s.size !== ta.size) throw new Error(`curve: the initialization of bend ${k} lacks '${name}' or has another shape`);
              value = clone(s).reshape(ta.shape);
            } else value = linearCombination([ta, tb], [1 - k / n1, k / n1]);
            keep(value).requiresGrad = true;
            bend.set(name, value);
          }
          return bend;
        }),
      );
    });
  }

  /** The n control points' tensors of parameter `name`, w_0 .. w_{n-1}. */
  controlPoints(name: string): Tensor[] {
    return [this.endpoints[0].get(name)!, ...this.bends.map((b) => b.get(name)!), this.endpoints[1].get(name)!];
  }

  coefficients(t: number): number[] {
    return curveCoefficients(this.kind, t, this.points);
  }

  /** The trainable tensors (every bend's), for the optimizer. */
  parameters(): Tensor[] {
    return this.bends.flatMap((b) => [...b.values()]);
  }

  /**
   * w(t) for every curve parameter, one fused kernel each (linearCombination, differentiable in
   * the bends): terms with a zero coefficient are left out, so a polychain point touches only its
   * two neighbours and t = 0 or 1 returns the endpoint's values exactly (1 * x is x in float32).
   */
  weightsAt(t: number): StateDict {
    const c = this.coefficients(t);
    return new Map(this.names.map((name) => [name, linearCombination(this.controlPoints(name), c)]));
  }

  /**
   * Writes the point w(t) into `model`'s own parameters (no gradient), and endpoint A's buffers
   * into its buffers (running statistics to be re-estimated, num_batches_tracked): the model is
   * then the network at t, ready for recomputeBatchNorm and evaluate.
   */
  loadInto(model: Module, t: number): void {
    noGrad(() =>
      tidy(() => {
        const w = this.weightsAt(t);
        for (const [name, dst] of model.stateDict()) copyInto(dst, w.get(name) ?? this.endpoints[0].get(name)!);
      }),
    );
  }

  /**
   * The bends by their file names, `bend{k}.{parameter}` (k = 1 .. n-2), as a curve file stores
   * them (the curve's own tensors, not copies).
   */
  bendStateDict(): StateDict {
    const out: StateDict = new Map();
    this.bends.forEach((b, i) => {
      for (const [name, t] of b) out.set(bendKey(i + 1, name), t);
    });
    return out;
  }

  /** Copies bends in from bendStateDict()'s format; every bend tensor must be present. */
  loadBends(state: ReadonlyMap<string, Tensor>, where = 'curve'): void {
    const expected = this.bendStateDict();
    for (const key of state.keys()) if (!expected.has(key)) throw new Error(`${where}: unexpected tensor '${key}'`);
    for (const [key, dst] of expected) {
      const src = state.get(key);
      if (!src) throw new Error(`${where}: lacks '${key}'`);
      if (src.dtype !== dst.dtype || src.size !== dst.size) throw new Error(`${where}: '${key}' is ${src}, expected ${dst}`);
    }
    noGrad(() => {
      for (const [key, dst] of expected) copyInto(dst, state.get(key)!);
    });
  }

  /**
   * The Gram matrix G_jk = <w_j, w_k> of the control points over all curve parameters (float64,
   * n x n, read once). Distances and norms of every point of the curve follow from it:
   * ||w(t) - w(s)||^2 = (c(t) - c(s))^T G (c(t) - c(s)) and ||w(t)||^2 = c(t)^T G c(t).
   */
  async gram(): Promise<Float64Array> {
    const n = this.points;
    const g = new Float64Array(n * n);
    // Each pair's dot product is summed over all tensors on the GPU: one scalar per pair is read.
    const pairs: [number, number][] = [];
    for (let j = 0; j < n; j++) for (let k = j; k < n; k++) pairs.push([j, k]);
    const totals = noGrad(() =>
      pairs.map(([j, k]) =>
        keep(
          tidy(() => {
            let acc: Tensor | null = null;
            for (const name of this.names) {
              const w = this.controlPoints(name);
              const s = sum(mulPair(w[j]!, w[k]!));
              acc = acc ? add(acc, s) : s;
            }
            return acc!;
          }),
        ),
      ),
    );
    const values = await Promise.all(totals.map((t) => t.toArray()));
    totals.forEach((t) => t.dispose());
    pairs.forEach(([j, k], i) => {
      g[j * n + k] = g[k * n + j] = values[i]![0]!;
    });
    return g;
  }

  dispose(): void {
    for (const state of [...this.endpoints, ...this.bends]) for (const t of state.values()) t.dispose();
  }
}

function mulPair(a: Tensor, b: Tensor): Tensor {
  return a === b ? square(a) : mul(a, b);
}

/** c^T G d for coefficient vectors c, d and an n x n Gram matrix. */
export function gramForm(g: Float64Array, c: readonly number[], d: readonly number[]): number {
  const n = c.length;
  let s = 0;
  for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) s += c[j]! * g[j * n + k]! * d[k]!;
  return s;
}

/**
 * Arc-length positions of the curve's points at `ts` in weight space: s_0 = 0, s_i = s_{i-1} +
 * ||w(t_i) - w(t_{i-1})||, from the Gram matrix. For a quadratic Bezier the curve lies in the
 * plane through theta_A, theta_m and theta_B, so these equal the planar arc length of Tatro's
 * evaluation (section 7: theta_A at the origin, theta_B on the x-axis, Gram-Schmidt over all
 * weights) exactly; for other curves they are the weight-space polyline length at the samples.
 */
export function curveArcLength(kind: CurveKind, points: number, g: Float64Array, ts: readonly number[]): Float64Array {
  const s = new Float64Array(ts.length);
  for (let i = 1; i < ts.length; i++) {
    const [c, d] = [curveCoefficients(kind, ts[i]!, points), curveCoefficients(kind, ts[i - 1]!, points)];
    const delta = c.map((v, k) => v - d[k]!);
    s[i] = s[i - 1]! + Math.sqrt(Math.max(0, gramForm(g, delta, delta)));
  }
  return s;
}
