// Applying permutations to a state dict (NeuronAlignment align_weights_head/tail): along every
// member axis of a group, new[i] = old[perm[i]], i.e. unit perm[i] of the original network
// becomes unit i (the matching's convention: model-1 unit match[i] is paired with model-0 unit i).
// Each permuted axis is one indexSelect on the GPU with an index vector built here from the spec:
// identity outside the group's range, and for a member with offset o and inner block k, position
// o + u*k + p reads o + perm[u]*k + p.
import { clone, indexSelect, keep, noGrad, tensor, tidy } from '../engine/index.js';
import type { StateDict } from '../nn/module.js';
import type { PermutationSpec } from './spec.js';

/** A permutation per group name; a group that is absent keeps its order (the identity). */
export type Permutations = Map<string, Int32Array>;

/** Throws unless `perm` is a permutation of 0..n-1. */
export function checkPermutation(perm: ArrayLike<number>, n: number, what = 'permutation'): void {
  if (perm.length !== n) throw new Error(`${what}: length ${perm.length}, expected ${n}`);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = perm[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < n) || seen[v]) throw new Error(`${what}: entry ${i} (${v}) repeats or is outside 0..${n - 1}`);
    seen[v] = 1;
  }
}

export function identityPermutation(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** inv[perm[i]] = i. */
export function invertPermutation(perm: ArrayLike<number>): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let i = 0; i < perm.length; i++) inv[perm[i]!] = i;
  return inv;
}

/**
 * The permutation equal to applying `first`, then `second`: with new = old[first] and then
 * newer = new[second], newer[i] = old[first[second[i]]].
 */
export function composePermutations(first: ArrayLike<number>, second: ArrayLike<number>): Int32Array {
  return Int32Array.from({ length: second.length }, (_, i) => first[second[i]!]!);
}

/** For each permuted (param, axis): the gather index along that axis. */
export function axisIndices(spec: PermutationSpec, state: StateDict, perms: Permutations): Map<string, Map<number, Int32Array>> {
  const out = new Map<string, Map<number, Int32Array>>();
  for (const g of spec.groups) {
    const perm = perms.get(g.name);
    if (!perm) continue;
    checkPermutation(perm, g.size, `group '${g.name}'`);
    for (const m of g.members) {
      const t = state.get(m.param);
      if (!t) throw new Error(`permute: state dict has no '${m.param}' (group '${g.name}')`);
      const axes = out.get(m.param) ?? new Map<number, Int32Array>();
      out.set(m.param, axes);
      const index = axes.get(m.axis) ?? identityPermutation(t.shape[m.axis]!);
      axes.set(m.axis, index);
      const offset = m.offset ?? 0;
      const inner = m.inner ?? 1;
      for (let u = 0; u < g.size; u++) {
        for (let p = 0; p < inner; p++) index[offset + u * inner + p] = offset + perm[u]! * inner + p;
      }
    }
  }
  return out;
}

/**
 * The state dict with every group's permutation applied (same names, same shapes). Every tensor
 * of the result is new and kept (untouched ones, num_batches_tracked among them, are copies):
 * the caller owns them all (disposeStateDict).
 */
export function permuteStateDict(state: StateDict, spec: PermutationSpec, perms: Permutations): StateDict {
  const indices = axisIndices(spec, state, perms);
  const out: StateDict = new Map();
  noGrad(() => {
    for (const [name, t] of state) {
      const permuted = tidy(() => {
        let x = t;
        for (const [axis, index] of indices.get(name) ?? []) {
          x = indexSelect(x, axis, tensor(index, [index.length], 'i32'));
        }
        return x === t ? clone(t) : x;
      });
      out.set(name, keep(permuted));
    }
  });
  return out;
}

/** Disposes every tensor of a state dict this module returned. */
export function disposeStateDict(state: StateDict): void {
  for (const t of state.values()) t.dispose();
}

/** A uniformly random permutation per group (tests, baselines), from `random` in [0, 1). */
export function randomPermutations(spec: PermutationSpec, random: () => number): Permutations {
  const perms: Permutations = new Map();
  for (const g of spec.groups) {
    const p = identityPermutation(g.size);
    for (let i = g.size - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    perms.set(g.name, p);
  }
  return perms;
}

