// Weight matching (Ainsworth et al. 2023, "Git Re-Basin", section 3.2; samuela/git-re-basin
// weight_matching.py): the permutations of network B's hidden units that maximize the inner
// product of the two weight vectors, sum over tensors of <W_A, pi(W_B)>, with no data.
//
// The problem is a sum of bilinear terms in pairs of permutations (one per tensor axis), NP-hard
// jointly, so it is solved by coordinate ascent: with every other group's permutation fixed, the
// objective is linear in one group's permutation P, and maximizing it is a linear assignment
// problem on the group's similarity matrix
//   S[i][j] = sum over members m of <row i of unfold_m(W_A), row j of unfold_m(pi_{-m}(W_B))>,
// where unfold_m moves the member's axis to the front and cuts the group's units into rows (unit u
// covers positions offset + u*inner .. + inner - 1 of that axis, times every other axis), and
// pi_{-m} applies the current permutations of the tensor's OTHER axes. Groups are visited in a
// random order per sweep until a whole sweep changes nothing.
//
// Each update's S is a sum of matmuls on the GPU (indexSelect for the other axes, permute/slice/
// reshape to unfold); only the n x n matrix is read back for the exact assignment solver. A new
// assignment is accepted only when it raises the group's total, so the objective never decreases
// and ties cannot make the sweeps cycle. Since the tensor positions outside a group's rows do not
// depend on its permutation, the objective rises by exactly (new total - old total): it is tracked
// from one GPU evaluation at the start.
import { Tensor, add, concat, indexSelect, keep, matmul, mul, noGrad, permute, reshape, sameShape, slice, sum, tensor, tidy } from '../engine/index.js';
import { deriveSeed, permutation } from '../nn/data/random.js';
import type { StateDict } from '../nn/module.js';
import { solveAssignment } from './assignment.js';
import { checkPermutation, disposeStateDict, identityPermutation, permuteStateDict, type Permutations } from './permute.js';
import type { AxisMember, PermutationGroup, PermutationSpec } from './spec.js';

export interface WeightMatchingOptions {
  /** Most sweeps over all groups (default 100; the paper's code sees 3 to 50). */
  maxIterations?: number;
  /** Seeds the random group order of each sweep (default 0). */
  seed?: number;
  /** Starting permutations (default the identity); an absent group starts at the identity. */
  initial?: Permutations;
  /**
   * Which tensors enter the objective (default: all but BN running means and variances, which
   * are data statistics, not weights; Git Re-Basin matches only parameters). Tensors left out
   * are still permuted in the returned state.
   */
  include?: (param: string) => boolean;
  /** Called after every sweep (permutations are copies). */
  onSweep?: (sweep: SweepReport) => void;
}

export interface SweepReport {
  /** 1-based sweep number. */
  iteration: number;
  /** Groups whose permutation changed in this sweep. */
  changed: string[];
  /** sum over included tensors of <W_A, pi(W_B)> after the sweep. */
  objective: number;
  permutations: Permutations;
}

export interface WeightMatchingResult {
  spec: PermutationSpec;
  /** Per group: B's unit perm[i] becomes unit i (as alignModels; apply with permuteStateDict). */
  permutations: Permutations;
  /** Sweeps run (the last one changed nothing when `converged`). */
  iterations: number;
  converged: boolean;
  /** The objective at the start, then after each sweep (non-decreasing). */
  objective: number[];
  /** B's state dict with the permutations applied (new kept tensors: the caller disposes them). */
  state: StateDict;
}

/** BN running statistics: describe activations, not weights (left out of the objective by default). */
export const isRunningStatistic = (param: string): boolean => /(^|\.)running_(mean|var)$/.test(param);

const defaultInclude = (param: string) => !isRunningStatistic(param);

/** A member together with its group's size: all it takes to unfold a tensor along it. */
interface Unfolding extends AxisMember {
  group: string;
  size: number;
}

/**
 * Matches B's hidden units to A's by their weights (Git Re-Basin weight matching). `stateA` and
 * `stateB` hold the same names and shapes; `spec` is their architecture's permutation spec.
 */
export async function weightMatching(stateA: StateDict, stateB: StateDict, spec: PermutationSpec, opts: WeightMatchingOptions = {}): Promise<WeightMatchingResult> {
  const { maxIterations = 100, seed = 0, include = defaultInclude } = opts;
  if (!(Number.isInteger(maxIterations) && maxIterations >= 1)) throw new Error(`weightMatching: maxIterations must be a positive integer, got ${maxIterations}`);
  const perms: Permutations = new Map();
  for (const g of spec.groups) {
    const p = opts.initial?.get(g.name);
    if (p) checkPermutation(p, g.size, `weightMatching: initial permutation of '${g.name}'`);
    perms.set(g.name, p ? Int32Array.from(p) : identityPermutation(g.size));
  }
  const similarity = new WeightSimilarity(stateA, stateB, spec, include);
  try {
    const objective = [await weightMatchingObjective(stateA, stateB, spec, perms, include)];
    let current = objective[0]!;
    let iterations = 0;
    let converged = false;
    while (iterations < maxIterations && !converged) {
      iterations++;
      const changed: string[] = [];
      for (const gi of permutation(spec.groups.length, deriveSeed(seed, iterations))) {
        const g = spec.groups[gi]!;
        const matrix = await similarity.matrix(g.name, perms);
        if (!matrix) continue;
        const old = perms.get(g.name)!;
        const { match, total } = solveAssignment(matrix, { maximize: true, rows: g.size, cols: g.size });
        let before = 0;
        for (let i = 0; i < g.size; i++) before += matrix[i * g.size + old[i]!]!;
        if (isProgress(total, before, matrix, g.size)) {
          perms.set(g.name, match);
          current += total - before;
          changed.push(g.name);
        }
      }
      objective.push(current);
      converged = changed.length === 0;
      opts.onSweep?.({ iteration: iterations, changed, objective: current, permutations: copyPermutations(perms) });
    }
    const state = permuteStateDict(stateB, spec, perms);
    return { spec, permutations: perms, iterations, converged, objective, state };
  } finally {
    similarity.dispose();
  }
}

/**
 * Whether an assignment total beats the current one by more than the rounding of float64 sums of
 * float32 entries (rounding alone must not count as progress: ties would make sweeps cycle).
 */
export function isProgress(total: number, before: number, matrix: ArrayLike<number>, n: number): boolean {
  let scale = 0;
  for (let k = 0; k < matrix.length; k++) scale = Math.max(scale, Math.abs(matrix[k]!));
  return total > before + 1e-10 * n * scale;
}

/**
 * One group's weight-similarity matrix with the other groups' permutations held at `perms`:
 *   S[i][j] = sum over included members m of <row i of unfold_m(W_A), row j of unfold_m(pi_{-m}(W_B))>
 * (the file comment). Computed on the GPU, one n x n read-back per call. Shared by weight matching
 * and by the matching of silent units after the correlation assignment (dead-units.ts).
 * dispose() frees A's unfolded rows, which are computed once.
 */
export class WeightSimilarity {
  private readonly byParam: Map<string, Unfolding[]>;
  private readonly unfoldedA = new Map<AxisMember, Tensor>();
  private readonly groups: Map<string, PermutationGroup>;

  constructor(
    stateA: StateDict,
    private readonly stateB: StateDict,
    spec: PermutationSpec,
    private readonly include: (param: string) => boolean = defaultInclude,
  ) {
    checkStates(stateA, stateB);
    this.byParam = membersByParam(spec);
    this.groups = new Map(spec.groups.map((g) => [g.name, g]));
    try {
      noGrad(() => {
        for (const g of spec.groups) {
          for (const m of g.members) {
            if (include(m.param)) this.unfoldedA.set(m, keep(tidy(() => unfold(stateA.get(m.param)!, m, g.size))));
          }
        }
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** S for group `group`, row-major [A units x B units]; null when no member is included. */
  async matrix(group: string, perms: Permutations): Promise<Float32Array | null> {
    const g = this.groups.get(group)!;
    const members = g.members.filter((m) => this.include(m.param));
    if (members.length === 0) return null;
    const similarity = tidy(() =>
      noGrad(() => {
        let s: Tensor | null = null;
        for (const m of members) {
          const b = unfold(permuteOtherAxes(this.stateB.get(m.param)!, m, this.byParam.get(m.param)!, perms), m, g.size);
          const term = matmul(this.unfoldedA.get(m)!, b, { transB: true });
          s = s ? add(s, term) : term;
        }
        return s!;
      }),
    );
    const matrix = await similarity.toArray('f32');
    similarity.dispose();
    return matrix;
  }

  dispose(): void {
    for (const t of this.unfoldedA.values()) t.dispose();
    this.unfoldedA.clear();
  }
}

/**
 * The weight-matching objective sum over included f32 tensors of <W_A, pi(W_B)> (Frobenius inner
 * products), on the GPU; one read-back.
 */
export async function weightMatchingObjective(
  stateA: StateDict,
  stateB: StateDict,
  spec: PermutationSpec,
  perms: Permutations,
  include: (param: string) => boolean = defaultInclude,
): Promise<number> {
  const permuted = permuteStateDict(stateB, spec, perms);
  try {
    const sums = tidy(() =>
      noGrad(() => {
        const parts: Tensor[] = [];
        for (const [name, a] of stateA) {
          if (a.dtype !== 'f32' || a.size === 0 || !include(name)) continue;
          parts.push(reshape(sum(mul(a, permuted.get(name)!)), [1]));
        }
        return parts.length ? concat(parts, 0) : null;
      }),
    );
    if (!sums) return 0;
    const values = await sums.toArray();
    sums.dispose();
    let total = 0;
    for (const v of values) total += v;
    return total;
  } finally {
    disposeStateDict(permuted);
  }
}

/**
 * The member's axis moved to the front and the group's positions cut into one row per unit:
 * [size, inner * (elements per position)]. A and B unfold alike, so row inner products compare
 * the same weights.
 */
function unfold(t: Tensor, m: AxisMember, size: number): Tensor {
  const len = t.shape[m.axis]!;
  const offset = m.offset ?? 0;
  const inner = m.inner ?? 1;
  const front = m.axis === 0 ? t : permute(t, [m.axis, ...[...t.shape.keys()].filter((a) => a !== m.axis)]);
  let x = reshape(front, [len, t.size / len]);
  if (offset !== 0 || size * inner !== len) x = slice(x, [offset], [offset + size * inner]);
  return reshape(x, [size, -1]);
}

/**
 * `t` with the current permutations of its axes other than `m.axis` applied (new[i] = old[perm[i]],
 * as permuteStateDict). Along m.axis nothing is applied: other groups sharing that axis (branches
 * of a concatenation) lie outside m's rows, which unfold cuts away.
 */
function permuteOtherAxes(t: Tensor, m: AxisMember, all: Unfolding[], perms: Permutations): Tensor {
  const indices = new Map<number, Int32Array>();
  for (const o of all) {
    if (o.axis === m.axis) continue;
    const perm = perms.get(o.group)!;
    const index = indices.get(o.axis) ?? identityPermutation(t.shape[o.axis]!);
    indices.set(o.axis, index);
    const offset = o.offset ?? 0;
    const inner = o.inner ?? 1;
    for (let u = 0; u < o.size; u++) {
      for (let p = 0; p < inner; p++) index[offset + u * inner + p] = offset + perm[u]! * inner + p;
    }
  }
  let x = t;
  for (const [axis, index] of indices) {
    if (index.every((v, i) => v === i)) continue;
    x = indexSelect(x, axis, tensor(index, [index.length], 'i32'));
  }
  return x;
}

/** Every member of every group, by tensor name; rejects a group permuting two axes of one tensor. */
function membersByParam(spec: PermutationSpec): Map<string, Unfolding[]> {
  const out = new Map<string, Unfolding[]>();
  for (const g of spec.groups) {
    for (const m of g.members) {
      const list = out.get(m.param) ?? [];
      // Its objective would be quadratic in the group's permutation, not an assignment problem.
      if (list.some((o) => o.group === g.name && o.axis !== m.axis)) {
        throw new Error(`weightMatching: group '${g.name}' permutes two axes of '${m.param}'`);
      }
      list.push({ ...m, group: g.name, size: g.size });
      out.set(m.param, list);
    }
  }
  return out;
}

function checkStates(a: StateDict, b: StateDict): void {
  for (const [name, t] of a) {
    const u = b.get(name);
    if (!u || u.dtype !== t.dtype || !sameShape(u.shape, t.shape)) {
      throw new Error(`weightMatching: the state dicts differ at '${name}' ([${t.shape.join(', ')}] vs ${u ? `[${u.shape.join(', ')}]` : 'missing'})`);
    }
  }
  if (a.size !== b.size) throw new Error('weightMatching: the state dicts have different tensors');
}

function copyPermutations(perms: Permutations): Permutations {
  return new Map([...perms].map(([g, p]) => [g, Int32Array.from(p)]));
}
