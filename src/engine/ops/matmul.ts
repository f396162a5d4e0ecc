// Batched matrix product with either operand transposed, and its gradient.
//
//   matmul(a, b):                 a [..., M, K] x b [..., K, N] -> [..., M, N]
//   matmul(a, b, {transA: true}): a is [..., K, M] and is used as its transpose (likewise transB)
// Batch axes must be equal, or one operand may have none (it is shared by every batch entry).
// Gradient: dA = g B^T, dB = A^T g, each a matmul with transposes folded into strides (no copies),
// summed over the batch when an operand was shared.
import matmulNaiveWgsl from '../../shaders/matmul_naive.wgsl';
import { record } from '../autograd.js';
import { Kernel, launch } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { sum } from './reduce.js';
import { shapeString } from './util.js';

const naiveKernel = new Kernel('matmul_naive', matmulNaiveWgsl);

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** The problem a kernel sees: sizes and element strides of both operands. */
export interface MatmulProblem {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Elements between batch entries of A and B (0: shared). */
  batchA: number;
  batchB: number;
}

export function matmulProblem(a: Tensor, b: Tensor, opts: MatmulOptions): { problem: MatmulProblem; outShape: number[] } {
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank >= 2, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error('matmul: expects f32 tensors');
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [M, Ka] = transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = transB ? [bc, br] : [br, bc];
  if (Ka !== Kb) {
    throw new Error(`matmul: inner sizes differ: ${shapeString(a.shape)}${transA ? 'ᵀ' : ''} x ${shapeString(b.shape)}${transB ? 'ᵀ' : ''}`);
  }
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  let batchShape: number[];
  if (batchShapeA.length === 0) batchShape = [...batchShapeB];
  else if (batchShapeB.length === 0) batchShape = [...batchShapeA];
  else if (batchShapeA.length === batchShapeB.length && batchShapeA.every((d, i) => d === batchShapeB[i])) batchShape = [...batchShapeA];
  else throw new Error(`matmul: batch axes ${shapeString(batchShapeA)} and ${shapeString(batchShapeB)} differ`);
  const batch = batchShape.reduce((p, d) => p * d, 1);
  return {
    problem: {
      M, N, K: Ka, batch, transA, transB,
      batchA: batchShapeA.length ? M * Ka : 0,
      batchB: batchShapeB.length ? Ka * N : 0,
    },
    outShape: [...batchShape, M, N],
  };
}

/** Records the kernel launch for `p` writing C into `out` (no gradient). */
export function matmulInto(a: Tensor, b: Tensor, out: Tensor, p: MatmulProblem): void {
  if (out.size === 0) return;
  launch(naiveKernel, {
    op: 'matmul',
    params: (w) =>
      w.u32(
        p.M, p.N, p.K, p.batch,
        p.transA ? 1 : p.K, p.transA ? p.M : 1, p.batchA,
        p.transB ? 1 : p.N, p.transB ? p.K : 1, p.batchB,
      ),
    buffers: [a.buffer, b.buffer, out.buffer],
    workgroups: [Math.ceil(p.N / 16), Math.ceil(p.M / 16), p.batch],
  });
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { problem, outShape } = matmulProblem(a, b, opts);
  const out = new Tensor(outShape, 'f32');
  matmulInto(a, b, out, problem);
  const { transA, transB } = problem;
  return record(out, 'matmul', [a, b], (g) => {
    // C = op(A) op(B). dop(A) = g op(B)^T, dop(B) = op(A)^T g; transposing back to A's own layout
    // swaps the operands: if A is stored transposed, dA = op(B) g^T, and likewise for B.
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      ga = transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      if (problem.batchA === 0 && ga.rank > 2) ga = sum(ga, [...Array(ga.rank - 2).keys()]);
    }
    if (b.requiresGrad) {
      gb = transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      if (problem.batchB === 0 && gb.rank > 2) gb = sum(gb, [...Array(gb.rank - 2).keys()]);
    }
    return [ga, gb];
  });
}
