// Log-domain Sinkhorn normalization for PAM's Sinkhorn relaxation (`curve --pam-relax sinkhorn`;
// beyond Tatro et al. 2020, whose P-step is the projected gradient of pam.ts).
//
// For real logits L (n x n) and a temperature tau > 0, Sinkhorn(L / tau) is the doubly stochastic
//   P = diag(u) exp(L / tau) diag(v),
// the entropic optimal transport plan argmax_{P in B_n} <P, L> + tau H(P), H(P) = -sum P log P
// (Cuturi 2013; Mena et al. 2018 for learning with it). Alternating normalizations of rows and
// columns converge to it (Sinkhorn-Knopp); in the log domain, with X = log P,
//   X <- X - logsumexp_j X_ij (rows),   X <- X - logsumexp_i X_ij (columns),
// each a logSoftmax along an axis, so exp never overflows at small tau. As tau -> 0 the plan tends
// to the permutation that maximizes <P, L> where that one is unique: the assignment problem's
// solution, which the rounding's projection computes.
//
// Potentials. Every iterate is X = (L + F) / tau with F = f 1^T + 1 g^T, the dual potentials in
// the logits' units, so F = tau X - L carries a solution over to a new tau or to slightly changed
// logits (a warm start: epsilon scaling, Schmitzer 2019). The P-step (pam-sinkhorn.ts) keeps F
// between steps, detached, and differentiates only through SINKHORN_ITERATIONS normalizations
// from the warm start, so the per-step graph stays small while the iterate keeps converging
// across steps.
//
// Batching: every function takes a stack [G, n, n] of G matrices of one size (a [n, n] matrix
// is a stack of one); rows are the last axis, columns the one before, so one chain of reductions
// serves the whole stack.
import { Tensor, abs, add, exp, keep, linearCombination, logSoftmax, max, maximum, mulScalar, noGrad, sum, tidy } from '../engine/index.js';

/** Row and column normalizations per P-step forward (the differentiable part). */
export const SINKHORN_ITERATIONS = 20;

/**
 * `iterations` rounds of row then column log-normalization of x = (L + F) / tau ([G, n, n] or
 * [n, n]); returns log P. Differentiable in x (through logSoftmax's own backward).
 */
export function logSinkhorn(x: Tensor, iterations = SINKHORN_ITERATIONS): Tensor {
  if (x.rank < 2 || x.shape[x.rank - 1] !== x.shape[x.rank - 2]) throw new Error(`logSinkhorn: expects square matrices, got ${x}`);
  let y = x;
  for (let k = 0; k < iterations; k++) y = logSoftmax(logSoftmax(y, -1), -2);
  return y;
}

/**
 * How far exp(logP) is from doubly stochastic: max over matrices, rows and columns of
 * |sum - 1|, as a scalar tensor (no gradient).
 */
export function sinkhornError(logP: Tensor): Tensor {
  return noGrad(() =>
    tidy(() => {
      const p = exp(logP);
      return maximum(max(abs(add(sum(p, -1), -1))), max(abs(add(sum(p, -2), -1))));
    }),
  );
}

export interface SinkhornSolveOptions {
  /** Potentials F = tau log P - L of an earlier solution ([G, n, n]); default 0. */
  potentials?: Tensor | null;
  /** Stop when every row and column sum is within it of 1 (default 1e-4). */
  tolerance?: number;
  /** At most this many rounds (default 10000). */
  maxIterations?: number;
  /** Rounds between the checks, each one read back (default 10). */
  checkEvery?: number;
}

export interface SinkhornSolution {
  /** log P, kept (the caller disposes it). */
  logP: Tensor;
  /** F = tau log P - L, kept: the warm start for a smaller tau. */
  potentials: Tensor;
  iterations: number;
  /** max |row or column sum - 1| at the end. */
  error: number;
}

/**
 * Sinkhorn(L / tau) solved to a tolerance (no gradient): rounds from (L + F) / tau until every
 * row and column sum is within `tolerance` of 1 or `maxIterations` rounds are done.
 */
export async function solveSinkhorn(logits: Tensor, tau: number, opts: SinkhornSolveOptions = {}): Promise<SinkhornSolution> {
  if (!(tau > 0)) throw new Error(`solveSinkhorn: the temperature must be positive, got ${tau}`);
  const tolerance = opts.tolerance ?? 1e-4;
  const maxIterations = opts.maxIterations ?? 10000;
  const checkEvery = Math.max(1, opts.checkEvery ?? 10);
  let x = keep(noGrad(() => (opts.potentials ? linearCombination([logits, opts.potentials], [1 / tau, 1 / tau]) : mulScalar(logits, 1 / tau))));
  let iterations = 0;
  let error = Infinity;
  while (iterations < maxIterations) {
    const rounds = Math.min(checkEvery, maxIterations - iterations);
    const next = keep(noGrad(() => tidy(() => logSinkhorn(x, rounds))));
    x.dispose();
    x = next;
    iterations += rounds;
    const e = sinkhornError(x);
    error = (await e.toArray())[0]!;
    e.dispose();
    if (error <= tolerance) break;
  }
  const potentials = keep(noGrad(() => linearCombination([x, logits], [tau, -1])));
  return { logP: x, potentials, iterations, error };
}
