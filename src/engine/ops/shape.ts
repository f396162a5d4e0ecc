// Moving data without arithmetic: reshape views, and copies through copy.wgsl (permute, slice,
// expand, concat) and index.wgsl (indexSelect). All work on any 32-bit dtype; gradients flow for
// f32 tensors.
import copyWgsl from '../../shaders/copy.wgsl';
import indexWgsl from '../../shaders/index.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { record } from '../autograd.js';
import { Kernel, gridStride, launch } from '../runtime.js';
import { Tensor, type Shape } from '../tensor.js';
import { zeros } from './creation.js';
import { sumTo } from './reduce.js';
import { MAX_RANK, broadcastShapes, broadcastStrides, checkRank, contiguousStrides, normalizeAxis, shapeString } from './util.js';

const gatherKernel = new Kernel('strided_gather', [gridWgsl, copyWgsl], 'gather');
const scatterKernel = new Kernel('strided_scatter', [gridWgsl, copyWgsl], 'scatter');
const indexSelectKernel = new Kernel('index_select', [gridWgsl, indexWgsl], 'index_select');
const indexSelectBackwardKernel = new Kernel('index_select_backward', [gridWgsl, indexWgsl], 'index_select_backward');

/** out = the strided view (shape, strides, offset) of src, made contiguous. */
function stridedGather(src: Tensor, shape: Shape, strides: readonly number[], offset: number, op: string): Tensor {
  checkRank(shape, op);
  const out = new Tensor(shape, src.dtype);
  if (out.size === 0) return out;
  launch(gatherKernel, {
    op,
    params: (w) => w.u32(out.size, shape.length, offset).u32x4(shape, MAX_RANK / 4).u32x4(strides, MAX_RANK / 4),
    buffers: [src.buffer, out.buffer],
    shapes: [src.shape, out.shape],
    workgroups: gridStride(out.size, 256),
  });
  return out;
}

/** Writes all of src into the strided region (src.shape, strides, offset) of dst, in place. */
function stridedScatter(src: Tensor, dst: Tensor, strides: readonly number[], offset: number, op: string): void {
  checkRank(src.shape, op);
  if (src.size === 0) return;
  launch(scatterKernel, {
    op,
    params: (w) => w.u32(src.size, src.rank, offset).u32x4(src.shape, MAX_RANK / 4).u32x4(strides, MAX_RANK / 4),
    buffers: [src.buffer, dst.buffer],
    shapes: [src.shape, dst.shape],
    workgroups: gridStride(src.size, 256),
  });
}

/** A copy with its own buffer. */
export function clone(x: Tensor): Tensor {
  const out = stridedGather(x, x.shape, contiguousStrides(x.shape), 0, 'clone');
  return record(out, 'clone', [x], (g) => [g]);
}

/** Reshape with a gradient (the forward is a view; see Tensor.reshape). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const out = x.reshape(shape);
  return record(out, 'reshape', [x], (g) => [g.reshape(x.shape)]);
}

export function flatten(x: Tensor, startAxis = 1): Tensor {
  const s = normalizeAxis(startAxis, x.rank);
  return reshape(x, [...x.shape.slice(0, s), x.shape.slice(s).reduce((p, d) => p * d, 1)]);
}

/** Broadcasts x to `shape` (NumPy rules), materialized; the gradient sums back. */
export function expand(x: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes(x.shape, shape);
  if (target.length !== shape.length || target.some((d, i) => d !== shape[i])) {
    throw new Error(`expand: ${shapeString(x.shape)} cannot broadcast to ${shapeString(shape)}`);
  }
  const out = stridedGather(x, shape, broadcastStrides(x.shape, shape), 0, 'expand');
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** Reorders axes: out axis i is x's axis dims[i] (torch.permute). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((a) => normalizeAxis(a, x.rank));
  if (d.length !== x.rank || new Set(d).size !== d.length) {
    throw new Error(`permute: [${dims.join(', ')}] is not a permutation of ${x.rank} axes`);
  }
  const strides = contiguousStrides(x.shape);
  const out = stridedGather(x, d.map((a) => x.shape[a]!), d.map((a) => strides[a]!), 0, 'permute');
  const inverse = new Array<number>(d.length);
  d.forEach((a, i) => (inverse[a] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const dims = [...x.shape.keys()];
  const a = normalizeAxis(axis0, x.rank);
  const b = normalizeAxis(axis1, x.rank);
  [dims[a], dims[b]] = [dims[b]!, dims[a]!];
  return permute(x, dims);
}

/**
 * x[starts[0]:ends[0], starts[1]:ends[1], ...] along the first axes given (Python-style negative
 * bounds, clamped). The gradient writes g into a zero tensor of x's shape.
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  const begin: number[] = [];
  const shape: number[] = [];
  x.shape.forEach((len, d) => {
    const clampIndex = (v: number) => Math.min(Math.max(v < 0 ? v + len : v, 0), len);
    const s = d < starts.length ? clampIndex(starts[d]!) : 0;
    const e = d < ends.length ? clampIndex(ends[d]!) : len;
    begin.push(s);
    shape.push(Math.max(0, e - s));
  });
  const strides = contiguousStrides(x.shape);
  const offset = begin.reduce((p, b, d) => p + b * strides[d]!, 0);
  const out = stridedGather(x, shape, strides, offset, 'slice');
  return record(out, 'slice', [x], (g) => {
    const gx = zeros(x.shape);
    stridedScatter(g, gx, strides, offset, 'slice backward');
    return [gx];
  });
}

/** Joins tensors along `axis`; the gradient slices g back into pieces. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors');
  const first = tensors[0]!;
  const a = normalizeAxis(axis, first.rank);
  for (const t of tensors) {
    const ok = t.rank === first.rank && t.dtype === first.dtype && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!ok) throw new Error(`concat: ${shapeString(t.shape)} (${t.dtype}) does not match ${shapeString(first.shape)} (${first.dtype}) off axis ${a}`);
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((p, t) => p + t.shape[a]!, 0);
  const out = new Tensor(shape, first.dtype);
  const strides = contiguousStrides(shape);
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    offsets.push(at);
    stridedScatter(t, out, strides, at * strides[a]!, 'concat');
    at += t.shape[a]!;
  }
  return record(out, 'concat', tensors, (g) =>
    tensors.map((t, i) => {
      if (!t.requiresGrad) return null;
      const starts = shape.map((_, d) => (d === a ? offsets[i]! : 0));
      const ends = shape.map((len, d) => (d === a ? offsets[i]! + t.shape[a]! : len));
      return slice(g, starts, ends);
    }),
  );
}

/**
 * Selects entries along `axis` by an i32 index tensor (torch.index_select): with x viewed as
 * [outer, dim, inner], out[o, j, k] = x[o, index[j], k]. Permuting channels for alignment is
 * indexSelect with a permutation. The gradient adds g back at the selected positions.
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  if (index.dtype !== 'i32' || index.rank !== 1) throw new Error(`indexSelect: index must be a 1-D i32 tensor, got ${index.dtype}${shapeString(index.shape)}`);
  const a = normalizeAxis(axis, x.rank);
  const dim = x.shape[a]!;
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const m = index.size;
  const shape = [...x.shape];
  shape[a] = m;
  const out = new Tensor(shape, x.dtype);
  if (out.size > 0) {
    launch(indexSelectKernel, {
      op: 'indexSelect',
      params: (w) => w.u32(out.size, dim, m, inner),
      buffers: [x.buffer, index.buffer, out.buffer],
      shapes: [x.shape, index.shape],
      workgroups: gridStride(out.size, 256),
    });
  }
  return record(out, 'indexSelect', [x], (g) => {
    const gx = new Tensor(x.shape, 'f32');
    if (gx.size > 0) {
      launch(indexSelectBackwardKernel, {
        op: 'indexSelect backward',
        params: (w) => w.u32(gx.size, dim, m, inner),
        buffers: [g.buffer, index.buffer, gx.buffer],
        shapes: [g.shape, gx.shape],
        workgroups: gridStride(gx.size, 256),
      });
    }
    return [gx];
  });
}
