// The relaxed permutations of PAM (Tatro et al. 2020, section 3, "proximal alternating
// minimization"; NeuronAlignment utils/utils.py project_doubly_stoch, sample_permutation, and
// utils/birkhoff.py). Each permutation group's P is relaxed to a real n x n matrix and kept near
// the Birkhoff polytope B_n = { P >= 0, P 1 = 1, 1^T P = 1 } (the doubly stochastic matrices,
// whose vertices are the permutation matrices). This file holds the matrix math:
//
// - birkhoffCorrection: the official approximate projection onto B_n, 20 rounds of
//   P <- max(P, 0), then the exact orthogonal projection onto the affine set {P 1 = 1, 1^T P = 1}:
//     P <- P - (r - 1) 1^T / n - 1 (c - 1)^T / n + (s - n) / n^2,
//   r = P 1 the row sums, c = P^T 1 the column sums, s = 1^T P 1 the total. It ends on the affine
//   step, so sums are exact and entries may be slightly negative (about -5e-4 at worst after a
//   gradient step of the size PAM takes; test/align/pam.test.ts).
// - proximalStep: the prox of (1 / 2 nu) ||P - P_old||^2 after a gradient step of size lr,
//   P <- (P + (lr / nu) P_old) / (1 + lr / nu).
// - birkhoffVonNeumann: a doubly stochastic D as a convex combination sum_k q_k Pi_k of
//   permutation matrices, greedily: the permutation of largest total inside D's support (an
//   assignment problem), q = its smallest entry, D <- D - q Pi, entries below 5e-4 set to 0.
// - rounding candidates: the assignment projection argmax_Pi <Pi, P>, the previous P, and draws
//   from the decomposition's largest terms, each drawn with probability proportional to q_k.
//
// Matrices here are row-major; a permutation `perm` is the matrix Pi[i][perm[i]] = 1, so
// (Pi W)[i] = W[perm[i]]: unit perm[i] of B becomes unit i, the convention of permute.ts.
import { Tensor, add, concat, full, keep, linearCombination, matmul, mulScalar, noGrad, relu, setPhase, sub, sum, tensor, tidy } from '../engine/index.js';
import { copyInto } from '../nn/module.js';
import { SGD, type SGDOptions } from '../nn/optim.js';
import { solveAssignment } from './assignment.js';

/** Rounds of ReLU plus affine correction after every P-step (NeuronAlignment project_doubly_stoch). */
export const BIRKHOFF_ITERATIONS = 20;

/**
 * The approximate projection of an n x n matrix onto the Birkhoff polytope (see the file
 * comment), on the GPU; returns a new tensor (no gradient).
 */
export function birkhoffCorrection(p: Tensor, iterations = BIRKHOFF_ITERATIONS): Tensor {
  const n = p.shape[0]!;
  if (p.rank !== 2 || p.shape[1] !== n) throw new Error(`birkhoffCorrection: expects a square matrix, got ${p}`);
  return noGrad(() =>
    tidy(() => {
      const ones = full([n, 1], 1);
      let x = p;
      for (let i = 0; i < iterations; i++) {
        x = relu(x);
        // The affine step subtracts (r - 1) 1^T / n + 1 (c - 1)^T / n - (s - n) / n^2 J
        //   = (r / n - k) 1^T + 1 (c / n)^T,   k = s / n^2 + 1 / n,
        // a rank-2 matrix U V with U = [r / n - k, 1] (n x 2) and V = [1^T; c^T / n] (2 x n): one
        // small matmul writes it (a broadcast subtraction over n^2 entries costs 4x more here).
        const rows = mulScalar(sum(x, 1, { keepDims: true }), 1 / n); // [n, 1]
        const cols = mulScalar(sum(x, 0, { keepDims: true }), 1 / n); // [1, n]
        const k = add(mulScalar(sum(rows), 1 / n), 1 / n); // s / n^2 + 1 / n, from the row sums
        const u = concat([sub(rows, k), ones], 1);
        const v = concat([ones.reshape([1, n]), cols], 0);
        x = linearCombination([x, matmul(u, v)], [1, -1]);
      }
      return x === p ? p.reshape(p.shape) : x;
    }),
  );
}

/**
 * The proximal step toward `anchor` after a gradient step of size lr:
 * (P + (lr / nu) anchor) / (1 + lr / nu), a new tensor.
 */
export function proximalStep(p: Tensor, anchor: Tensor, lr: number, nu: number): Tensor {
  const r = lr / nu;
  return noGrad(() => linearCombination([p, anchor], [1 / (1 + r), r / (1 + r)]));
}

/** How far a relaxed P (row-major, n x n) is from a permutation: the mean over rows of 1 - max_j P_ij. */
export function permutationDistance(p: ArrayLike<number>, n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, p[i * n + j]!);
    total += 1 - max;
  }
  return n ? total / n : 0;
}

/** The permutation matrix Pi[i][perm[i]] = 1 (row-major f32). */
export function permutationMatrix(perm: ArrayLike<number>): Float32Array {
  const n = perm.length;
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + perm[i]!] = 1;
  return m;
}

/** The permutation matrix of `perm` as a kept n x n tensor. */
export function permutationTensor(perm: ArrayLike<number>): Tensor {
  return keep(tensor(permutationMatrix(perm), [perm.length, perm.length]));
}

/** The assignment projection of a relaxed P: the permutation maximizing <Pi, P> (solveAssignment on -P). */
export function projectToPermutation(p: ArrayLike<number>, n: number): Int32Array {
  return solveAssignment(p, { maximize: true, rows: n, cols: n }).match;
}

/** One term q Pi of a Birkhoff-von Neumann decomposition. */
export interface BvnTerm {
  coefficient: number;
  perm: Int32Array;
}

export interface BvnOptions {
  /** Entries at or below it count as zero (NeuronAlignment: 5e-4, against float drift). */
  tolerance?: number;
  /**
   * Stop once the `keep` largest terms are certain: when what is left of D (its total / n, the
   * sum of every later coefficient) is no larger than the smallest of the `keep` largest found.
   * The official code decomposes D completely and keeps the 11 largest; this gives the same 11
   * without the tail. Default: decompose completely.
   */
  keep?: number;
  /** At most this many terms (default n^2, Birkhoff's bound). */
  maxTerms?: number;
}

/**
 * The greedy Birkhoff-von Neumann decomposition of a doubly stochastic n x n matrix (row-major),
 * in the order found. Entries below the tolerance (and negative ones, which the correction can
 * leave) are zero from the start. The coefficients sum to about 1 (less what the tolerance drops).
 */
export function birkhoffVonNeumann(d: ArrayLike<number>, n: number, opts: BvnOptions = {}): BvnTerm[] {
  const tolerance = opts.tolerance ?? 5e-4;
  const maxTerms = opts.maxTerms ?? n * n;
  const s = Float64Array.from({ length: n * n }, (_, i) => (d[i]! > tolerance ? d[i]! : 0));
  const terms: BvnTerm[] = [];
  const cost = new Float64Array(n * n);
  // Outside the support an entry costs more than any permutation inside it can gain.
  const forbidden = n * n + 1;
  while (terms.length < maxTerms) {
    let left = 0;
    for (let i = 0; i < s.length; i++) {
      left += s[i]!;
      cost[i] = s[i]! > 0 ? s[i]! : -forbidden;
    }
    if (left === 0) break;
    if (opts.keep && terms.length >= opts.keep) {
      const top = terms.map((t) => t.coefficient).sort((a, b) => b - a)[opts.keep - 1]!;
      if (left / n <= top) break;
    }
    const { match } = solveAssignment(cost, { maximize: true, rows: n, cols: n });
    let q = Infinity;
    for (let i = 0; i < n; i++) q = Math.min(q, s[i * n + match[i]!]!);
    if (!(q > 0)) break; // no permutation inside the support: what is left is not doubly stochastic
    terms.push({ coefficient: q, perm: match });
    for (let i = 0; i < n; i++) {
      const k = i * n + match[i]!;
      s[k] = s[k]! - q;
      if (s[k]! <= tolerance) s[k] = 0;
    }
  }
  return terms;
}

/**
 * The `count` largest terms in ascending order of coefficient, with their normalized cumulative
 * distribution (NeuronAlignment sample_permutation: argsort, the last 11, cumsum / total).
 */
export function largestTerms(terms: readonly BvnTerm[], count: number): { terms: BvnTerm[]; cdf: Float64Array } {
  const kept = [...terms].sort((a, b) => a.coefficient - b.coefficient).slice(-count);
  const cdf = new Float64Array(kept.length);
  let acc = 0;
  kept.forEach((t, i) => (cdf[i] = acc += t.coefficient));
  for (let i = 0; i < cdf.length; i++) cdf[i] = cdf[i]! / acc;
  return { terms: kept, cdf };
}

/** The term a uniform draw u in [0, 1) picks: the first whose cumulative probability is >= u. */
export function drawTerm(cdf: Float64Array, u: number): number {
  for (let i = 0; i < cdf.length; i++) if (cdf[i]! >= u) return i;
  return cdf.length - 1;
}

/**
 * SGD followed, after every step, by the proximal step toward fixed anchors and optionally a
 * projection (PAM's two phases, NeuronAlignment train_perm): each parameter p becomes
 * project((p + (lr / nu) anchor) / (1 + lr / nu)), with the step's learning rate. The P-step uses
 * plain SGD with the Birkhoff correction as the projection; the phi-step Nesterov SGD on the
 * bends with no projection (the prox of phi toward phi_old is the prox of the bend toward its
 * start, since bend - phi does not change during the phase).
 */
export class ProximalSGD extends SGD {
  constructor(
    params: readonly Tensor[],
    opts: SGDOptions,
    readonly anchors: readonly Tensor[],
    readonly nu: number,
    readonly project: ((p: Tensor) => Tensor) | null = null,
  ) {
    super(params, opts);
    if (anchors.length !== params.length) throw new Error(`ProximalSGD: ${params.length} parameters, ${anchors.length} anchors`);
    if (!(nu > 0)) throw new Error(`ProximalSGD: nu must be positive, got ${nu}`);
  }

  override step(): void {
    super.step();
    const previousPhase = setPhase('optimizer'); // the profiler's label for the proximal step too
    try {
      noGrad(() =>
        this.params.forEach((p, i) =>
          tidy(() => {
            const prox = proximalStep(p, this.anchors[i]!, this.lr, this.nu);
            copyInto(p, this.project ? this.project(prox) : prox);
          }),
        ),
      );
    } finally {
      setPhase(previousPhase);
    }
  }
}
