// Silent units: the units the alignment data cannot tell apart, matched by their weights instead
// (a step after the correlation assignment; issue 17).
//
// A unit whose activation does not vary over the alignment data (a dead ReLU, never active; or a
// constant one) correlates 0 with every unit of the other network: the correlation statistic
// C[i][j] = cov / ((sigma_i + 1e-5)(sigma_j + 1e-5)) has an all-zero row or column for it. Every
// assignment of such units is then optimal, and the paper's method (NeuronAlignment
// compute_alignment, scipy's linear_sum_assignment) pairs them however its solver breaks ties:
// aligning a network with a permuted copy of itself does not give back the copy. These units still
// have weights, and they matter downstream: a curve starts from the midpoint of A and P(B), where a
// dead unit of A averaged with an unrelated dead unit of B can come alive while the curve trains.
//
// The rule, per group of interchangeable units:
//   1. A unit of A (or of B) is silent when its std is below SILENT_STD in every layer the group is
//      solved from (a ResNet stream unit dead in one block output but active in another still has
//      a correlation signal).
//   2. The correlation assignment P (matchGroups) is computed as the paper does.
//   3. The pairs of P with a silent unit on either side, rows R = { i : i silent in A or P[i]
//      silent in B } and their columns P[R], are re-matched among themselves by weight similarity:
//      the Git Re-Basin objective sum over tensors of <W_A, pi(W_B)> restricted to those rows and
//      columns, every other pair held fixed. With the other groups' permutations fixed this is a
//      linear assignment on the group's similarity matrix S (weight-matching.ts) cut to R x P[R];
//      since the groups' terms couple (a unit's incoming weights are permuted by the previous
//      group, its outgoing ones by the next), the groups are re-matched in turn, in spec order,
//      until a sweep changes nothing (coordinate ascent, as weight matching; the objective never
//      decreases, and a change is accepted only when it raises the restricted total).
// Signalling pairs are never touched, so the correlation matching of every unit the data does see
// stays the paper's. For a network and a permuted copy of itself, S restricted to the silent units
// peaks at the true partners (Cauchy-Schwarz: <w, w'> < ||w||^2 unless w' = w), so the copy comes
// back exactly, silent units included.
import type { StateDict } from '../nn/module.js';
import type { LayerCorrelations } from './align.js';
import { solveAssignment } from './assignment.js';
import type { Permutations } from './permute.js';
import type { PermutationSpec } from './spec.js';
import { WeightSimilarity, isProgress } from './weight-matching.js';

/**
 * A unit signals when its population std on the alignment data is at least SILENT_STD = 1e-4, ten
 * times the correlation's eps (CORRELATION_EPS, statistics.ts). Why this value:
 * - a dead ReLU has std exactly 0; a constant unit (always active on a constant input, or fed only
 *   by dead units) has only float32 rounding, about 1e-6 of its value with per-batch means, so
 *   below 1e-4 for any value under ~100;
 * - below 10 eps the eps dominates the correlation: even a unit's exact copy correlates at most
 *   (sigma / (sigma + eps))^2 < (1 / 1.1)^2 = 0.83 with it, and rounding of the streamed moments is
 *   of the same order as the spread itself;
 * - units that carry signal in these networks have stds of 0.01 to 10 (a ReLU active on one image
 *   in 10,000 with value 1 has std 0.01), far above it: the rule never touches them.
 * The threshold is absolute, like the correlation's eps it sits beside.
 */
export const SILENT_STD = 1e-4;

/** How pairs with a silent unit are matched: by weight similarity (default), or as the correlation
 * solver left them (the paper's behaviour: arbitrary among the ties). */
export const DEAD_UNIT_METHODS = ['weights', 'arbitrary'] as const;
export type DeadUnitMethod = (typeof DEAD_UNIT_METHODS)[number];

/** Per group: 1 for each silent unit of A and of B (std below `threshold` in every solveFrom layer). */
export interface SilentUnits {
  a: Uint8Array;
  b: Uint8Array;
}

export function silentUnits(correlations: LayerCorrelations, threshold = SILENT_STD): Map<string, SilentUnits> {
  const out = new Map<string, SilentUnits>();
  for (const g of correlations.spec.groups) {
    const a = new Uint8Array(g.size).fill(1);
    const b = new Uint8Array(g.size).fill(1);
    for (const layer of g.solveFrom) {
      const sa = correlations.stdA.get(layer)!;
      const sb = correlations.stdB.get(layer)!;
      for (let i = 0; i < g.size; i++) {
        if (!(sa[i]! < threshold)) a[i] = 0;
        if (!(sb[i]! < threshold)) b[i] = 0;
      }
    }
    out.set(g.name, { a, b });
  }
  return out;
}

export interface SilentGroupReport {
  group: string;
  /** Silent units of A and of B in the group. */
  silentA: number;
  silentB: number;
  /** Pairs of the correlation assignment with a silent unit on either side (the rows re-matched). */
  pairs: number;
  /** Of those, the pairs whose B unit the weight similarity changed. */
  changed: number;
}

export interface SilentMatchingResult {
  /** The correlation permutations with the silent pairs re-matched (new arrays). */
  permutations: Permutations;
  groups: SilentGroupReport[];
  /** Sweeps over the groups (the last changed nothing, unless maxSweeps stopped it). */
  sweeps: number;
}

/**
 * Step 3 of the file comment: re-matches, in every group, the pairs of `perms` with a silent unit
 * by weight similarity, the other pairs held fixed. `stateA` and `stateB` are the unpermuted
 * networks' state dicts (perms maps B's units onto A's, as matchGroups returns them).
 */
export async function matchSilentUnits(
  stateA: StateDict,
  stateB: StateDict,
  spec: PermutationSpec,
  perms: Permutations,
  silent: Map<string, SilentUnits>,
  opts: { maxSweeps?: number } = {},
): Promise<SilentMatchingResult> {
  const maxSweeps = opts.maxSweeps ?? 100;
  const current: Permutations = new Map([...perms].map(([g, p]) => [g, Int32Array.from(p)]));
  // Rows R per group; their column set P[R] never changes, only which row gets which column.
  const rows = new Map<string, number[]>();
  for (const g of spec.groups) {
    const s = silent.get(g.name)!;
    const p = current.get(g.name)!;
    rows.set(g.name, Array.from({ length: g.size }, (_, i) => i).filter((i) => s.a[i] || s.b[p[i]!]));
  }
  const active = spec.groups.filter((g) => rows.get(g.name)!.length >= 2);
  let sweeps = 0;
  if (active.length > 0) {
    const similarity = new WeightSimilarity(stateA, stateB, spec);
    try {
      let changed = true;
      while (changed && sweeps < maxSweeps) {
        sweeps++;
        changed = false;
        for (const g of active) {
          const matrix = await similarity.matrix(g.name, current);
          if (!matrix) continue;
          const r = rows.get(g.name)!;
          const p = current.get(g.name)!;
          const cols = r.map((i) => p[i]!);
          const k = r.length;
          const sub = new Float64Array(k * k);
          let before = 0;
          for (let x = 0; x < k; x++) {
            for (let y = 0; y < k; y++) sub[x * k + y] = matrix[r[x]! * g.size + cols[y]!]!;
            before += sub[x * k + x]!;
          }
          const { match, total } = solveAssignment(sub, { maximize: true, rows: k, cols: k });
          if (isProgress(total, before, sub, k)) {
            for (let x = 0; x < k; x++) p[r[x]!] = cols[match[x]!]!;
            changed = true;
          }
        }
      }
    } finally {
      similarity.dispose();
    }
  }
  const groups = spec.groups.map((g) => {
    const s = silent.get(g.name)!;
    const r = rows.get(g.name)!;
    const before = perms.get(g.name)!;
    const after = current.get(g.name)!;
    const count = (u: Uint8Array) => u.reduce((n, v) => n + v, 0);
    return { group: g.name, silentA: count(s.a), silentB: count(s.b), pairs: r.length, changed: r.filter((i) => before[i] !== after[i]).length };
  });
  return { permutations: current, groups, sweeps };
}
