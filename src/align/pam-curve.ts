// The PAM curve network (Tatro et al. 2020, section 3; NeuronAlignment models/curves_pam.py): the
// curve from theta_A to P theta_B where each permutation group's P is a real n x n matrix, so the
// curve loss is differentiable in P.
//
// P acting on B. A group's P acts on every axis the spec names for it (permute.ts's axes): a
// layer's rows, bias and BN vectors (W -> P W) and the next layer's input axis (W -> W P^T), so a
// weight between two groups becomes P_out W P_in^T, as the official weight_permutation_perm_train.
// On the GPU each axis is a matmul: the axis is moved to the front, the group's positions (offset,
// inner blocks: AxisMember) are cut out as an [n, rest] matrix X, and P X replaces them. With P a
// permutation matrix (Pi[i][perm[i]] = 1) this is exactly permuteStateDict's gather. Input
// channels and classes are in no group, so they stay fixed; a group left out of the map (a
// ResNet's stem, as the official code) is the identity.
//
// The bends. Bend k of n control points is (1 - a_k) theta_A + a_k P theta_B + phi_k with
// a_k = k / (n - 1) (for the paper's n = 3: 1/2 theta_A + 1/2 P theta_B + phi), phi_k from 0, so
//   w(t) = sum_k c_k(t) w_k = cA(t) theta_A + cB(t) P theta_B + sum_k c_k(t) phi_k,
//   cA = c_0 + sum_k c_k (1 - a_k),   cB = c_{n-1} + sum_k c_k a_k.
// (For Bezier and polychain coefficients cB = t, so with phi = 0 the P-step trains P on the
// straight line (1 - t) theta_A + t P theta_B.) One fused linearCombination per tensor.
import { Tensor, concat, linearCombination, matmul, permute, reshape, slice } from '../engine/index.js';
import type { StateDict } from '../nn/module.js';
import { curveCoefficients, type CurveKind } from './curve.js';
import type { AxisMember, PermutationSpec } from './spec.js';

/** One relaxed permutation matrix [n, n] per group (absent: the identity). */
export type RelaxedPermutations = ReadonlyMap<string, Tensor>;

/**
 * `t` with P applied along one member axis: the member's positions, as rows of an [n, rest]
 * matrix X (unit u: positions offset + u * inner .. + inner - 1), replaced by P X. Differentiable
 * in P (and in t).
 */
export function applyAlongAxis(t: Tensor, m: AxisMember, p: Tensor): Tensor {
  const n = p.shape[0]!;
  const len = t.shape[m.axis]!;
  const offset = m.offset ?? 0;
  const inner = m.inner ?? 1;
  const order = [m.axis, ...[...t.shape.keys()].filter((a) => a !== m.axis)];
  const front = m.axis === 0 ? t : permute(t, order);
  const rest = t.size / len;
  const x = reshape(front, [len, rest]);
  const whole = offset === 0 && n * inner === len;
  const part = whole ? x : slice(x, [offset], [offset + n * inner]);
  const moved = reshape(matmul(p, reshape(part, [n, inner * rest])), [n * inner, rest]);
  const pieces = whole ? [moved] : [slice(x, [0], [offset]), moved, slice(x, [offset + n * inner], [len])].filter((s) => s.shape[0]! > 0);
  const y = reshape(pieces.length === 1 ? pieces[0]! : concat(pieces, 0), front.shape);
  if (m.axis === 0) return y;
  const inverse = new Array<number>(order.length);
  order.forEach((a, i) => (inverse[a] = i));
  return permute(y, inverse);
}

/**
 * P theta_B for the tensors `names` of `state`: each with every group of `perms` applied along
 * the axes the spec gives it. Tensors no group touches are returned as they are (not copied).
 */
export function applyRelaxedPermutations(state: StateDict, spec: PermutationSpec, perms: RelaxedPermutations, names: readonly string[]): StateDict {
  const members = new Map<string, { m: AxisMember; p: Tensor }[]>();
  for (const g of spec.groups) {
    const p = perms.get(g.name);
    if (!p) continue;
    if (p.rank !== 2 || p.shape[0] !== g.size || p.shape[1] !== g.size) throw new Error(`PAM: group '${g.name}' has ${g.size} units, its matrix is ${p}`);
    for (const m of g.members) {
      const list = members.get(m.param) ?? [];
      list.push({ m, p });
      members.set(m.param, list);
    }
  }
  const out: StateDict = new Map();
  for (const name of names) {
    let t = state.get(name);
    if (!t) throw new Error(`PAM: the state has no '${name}'`);
    for (const { m, p } of members.get(name) ?? []) t = applyAlongAxis(t, m, p);
    out.set(name, t);
  }
  return out;
}

/** cA(t), cB(t) and the bends' c_k(t) of the PAM parameterization (file comment). */
export function pamCoefficients(kind: CurveKind, points: number, t: number): { a: number; b: number; bends: number[] } {
  const c = curveCoefficients(kind, t, points);
  const n1 = points - 1;
  let a = c[0]!;
  let b = c[n1]!;
  for (let k = 1; k < n1; k++) {
    a += c[k]! * (1 - k / n1);
    b += c[k]! * (k / n1);
  }
  return { a, b, bends: c.slice(1, n1) };
}

/** What the PAM network at t is made of. */
export interface PamCurveParts {
  kind: CurveKind;
  points: number;
  /** The curve parameters (curveParameterNames). */
  names: readonly string[];
  stateA: StateDict;
  /** theta_B as P acts on it (B as trained for PAM unaligned, B aligned for PAM aligned). */
  stateB: StateDict;
  spec: PermutationSpec;
  /** phi_k per bend (points - 2 of them), or null for phi = 0. */
  phi: readonly StateDict[] | null;
}

/**
 * w(t) = cA theta_A + cB P theta_B + sum_k c_k phi_k for every curve parameter, differentiable in
 * P (and phi); run the network on it with Module.withParameters.
 */
export function pamWeightsAt(parts: PamCurveParts, perms: RelaxedPermutations, t: number): StateDict {
  const c = pamCoefficients(parts.kind, parts.points, t);
  const permuted = applyRelaxedPermutations(parts.stateB, parts.spec, perms, parts.names);
  const out: StateDict = new Map();
  for (const name of parts.names) {
    const ws = [parts.stateA.get(name)!, permuted.get(name)!];
    const cs = [c.a, c.b];
    parts.phi?.forEach((phi, k) => {
      ws.push(phi.get(name)!);
      cs.push(c.bends[k]!);
    });
    const shape = ws[0]!.shape;
    out.set(name, linearCombination(ws.map((w) => (w.shape.join() === shape.join() ? w : w.reshape(shape))), cs));
  }
  return out;
}
