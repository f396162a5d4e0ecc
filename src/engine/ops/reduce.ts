// Reductions over any axes (reduce.wgsl): sum, mean, max, min, argmax; and sumTo, which folds a
// broadcast gradient back to an input's shape.
import reduceWgsl from '../../shaders/reduce.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { record } from '../autograd.js';
import { Kernel, grid1d, launch } from '../runtime.js';
import { Tensor, sameShape, type Shape } from '../tensor.js';
import { div, eq, mul, mulScalar } from './elementwise.js';
import { expand } from './shape.js';
import { MAX_RANK, contiguousStrides, normalizeAxes } from './util.js';

const reduceKernel = new Kernel('reduce', [gridWgsl, reduceWgsl]);

const OPS = { sum: 0, max: 1, min: 2, argmax: 3 } as const;
type ReduceName = keyof typeof OPS;

/** Invocations to aim for when few outputs each reduce many elements. */
const TARGET_INVOCATIONS = 16384;
/** Longest run one invocation reduces serially (except argmax, which has no second pass). */
const MAX_RUN = 1024;

interface Axis {
  len: number;
  stride: number;
  reduced: boolean;
}

/**
 * Splits x's axes into kept and reduced ones, dropping length-1 axes and merging neighbours of
 * the same kind that are contiguous in memory ([N, C, H, W] reduced over N, H, W becomes kept C
 * and reduced N and H*W).
 */
function plan(shape: Shape, axes: number[]): { kept: Axis[]; red: Axis[] } {
  const strides = contiguousStrides(shape);
  const merged: Axis[] = [];
  shape.forEach((len, d) => {
    if (len === 1) return;
    const axis = { len, stride: strides[d]!, reduced: axes.includes(d) };
    const last = merged[merged.length - 1];
    if (last && last.reduced === axis.reduced && last.stride === axis.len * axis.stride) {
      last.len *= axis.len;
      last.stride = axis.stride;
    } else merged.push(axis);
  });
  return { kept: merged.filter((a) => !a.reduced), red: merged.filter((a) => a.reduced) };
}

/** Runs reduce.wgsl; returns a contiguous tensor of shape `outShape` (no gradient recorded). */
function reduceRaw(x: Tensor, axes: number[], outShape: Shape, name: ReduceName): Tensor {
  if (x.dtype !== 'f32') throw new Error(`${name}: expects an f32 tensor, got ${x.dtype}`);
  const { kept, red } = plan(x.shape, axes);
  if (kept.length > MAX_RANK || red.length > MAX_RANK) throw new Error(`${name}: too many axes`);
  const nOut = kept.reduce((p, a) => p * a.len, 1);
  const redSize = red.reduce((p, a) => p * a.len, 1);
  const dtype = name === 'argmax' ? 'i32' : 'f32';
  if (redSize === 0 || nOut === 0) {
    if (name !== 'sum' && nOut > 0) throw new Error(`${name}: cannot reduce an empty axis`);
  }
  // Split long reductions into runs when there are too few outputs to fill the device.
  // Runs of at most 1024 elements: enough invocations when outputs are few, and float32 error
  // bounded by the run length when rows are long (a second pass adds the runs' partial results).
  let chunk = redSize;
  if (name !== 'argmax' && redSize > 256) {
    chunk = Math.min(MAX_RUN, Math.max(256, Math.ceil((redSize * nOut) / TARGET_INVOCATIONS)));
    if (chunk >= redSize) chunk = redSize;
  }
  const chunks = Math.max(1, Math.ceil(redSize / Math.max(chunk, 1)));
  const partial = new Tensor(chunks > 1 ? [nOut, chunks] : outShape, dtype);
  if (partial.size > 0) {
    launch(reduceKernel, {
      op: name,
      constants: { OP: OPS[name] },
      params: (w) =>
        w
          .u32(nOut, kept.length, red.length, redSize, Math.max(chunk, 1), chunks)
          .u32x4(kept.map((a) => a.len), 2)
          .u32x4(kept.map((a) => a.stride), 2)
          .u32x4(red.map((a) => a.len), 2)
          .u32x4(red.map((a) => a.stride), 2),
      buffers: [x.buffer, partial.buffer],
      shapes: [x.shape, partial.shape],
      workgroups: grid1d(nOut * chunks, 64),
    });
  }
  if (chunks === 1) return partial;
  const out = reduceRaw(partial, [1], outShape, name);
  partial.dispose();
  return out;
}

function outShapeOf(shape: Shape, axes: number[], keepDims: boolean): number[] {
  if (keepDims) return shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return shape.filter((_, i) => !axes.includes(i));
}

export interface ReduceOptions {
  keepDims?: boolean;
}

/** Sum over `axes` (default: all). The gradient broadcasts back over the reduced axes. */
export function sum(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  const ax = normalizeAxes(axes, x.rank);
  const out = reduceRaw(x, ax, outShapeOf(x.shape, ax, !!opts.keepDims), 'sum');
  return record(out, 'sum', [x], (g) => [expand(g.reshape(outShapeOf(x.shape, ax, true)), x.shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  const ax = normalizeAxes(axes, x.rank);
  const count = ax.reduce((p, a) => p * x.shape[a]!, 1);
  const total = sum(x, ax, opts);
  const out = mulScalar(total, 1 / count);
  if (!out.requiresGrad) total.dispose(); // else a node of the graph; its scope frees it
  return out;
}

/** Max or min; the gradient is split evenly among the elements equal to the extreme (amax). */
function extreme(x: Tensor, axes: number | readonly number[] | undefined, opts: ReduceOptions, name: 'max' | 'min'): Tensor {
  const ax = normalizeAxes(axes, x.rank);
  const out = reduceRaw(x, ax, outShapeOf(x.shape, ax, !!opts.keepDims), name);
  return record(out, name, [x], (g) => {
    const keptShape = outShapeOf(x.shape, ax, true);
    const mask = eq(x, out.reshape(keptShape));
    const count = reduceRaw(mask, ax, keptShape, 'sum');
    return [mul(mask, div(g.reshape(keptShape), count))];
  });
}
export const max = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor => extreme(x, axes, opts, 'max');
export const min = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor => extreme(x, axes, opts, 'min');

/** Index (i32) of the first maximum along `axis` (torch.argmax). */
export function argmax(x: Tensor, axis: number, opts: ReduceOptions = {}): Tensor {
  const ax = normalizeAxes(axis, x.rank);
  return reduceRaw(x, ax, outShapeOf(x.shape, ax, !!opts.keepDims), 'argmax');
}

/**
 * Sums `g` down to `shape` by NumPy broadcasting rules in reverse: leading axes that `shape` lacks
 * and axes where `shape` has length 1 are summed. Returns `g` itself when the shapes match.
 */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const summed = reduceRaw(g, axes, outShapeOf(g.shape, axes, false), 'sum');
  const out = summed.reshape(shape);
  summed.dispose(); // the reshape holds the buffer
  return out;
}
