// 2-D pooling over NCHW tensors (pool.wgsl): max and average pooling with PyTorch's semantics
// (torch.nn.functional.max_pool2d / avg_pool2d, dilation 1, ceil_mode optional), and global average
// pooling. Max pooling keeps the argmax of every window for its backward pass, which sends each
// output gradient to that one position.
import poolWgsl from '../../shaders/pool.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { needsGrad, record } from '../autograd.js';
import { Kernel, gridStride, launch, type ParamWriter } from '../runtime.js';
import { Tensor } from '../tensor.js';
import type { Pair } from './conv.js';
import { mean } from './reduce.js';
import { reshape } from './shape.js';
import { shapeString } from './util.js';

const maxPoolKernel = new Kernel('max_pool2d', [gridWgsl, poolWgsl], 'max_pool2d');
const maxPoolBackwardKernel = new Kernel('max_pool2d_backward', [gridWgsl, poolWgsl], 'max_pool2d_backward');
const avgPoolKernel = new Kernel('avg_pool2d', [gridWgsl, poolWgsl], 'avg_pool2d');
const avgPoolBackwardKernel = new Kernel('avg_pool2d_backward', [gridWgsl, poolWgsl], 'avg_pool2d_backward');

export interface Pool2dOptions {
  /** Default: the kernel size (PyTorch's default). */
  stride?: Pair;
  /** Implicit padding on both sides; at most half the kernel size. Default 0. */
  padding?: Pair;
  /** Round the output size up rather than down (a last, partial window), as PyTorch's ceil_mode. */
  ceilMode?: boolean;
}

export interface AvgPool2dOptions extends Pool2dOptions {
  /** Divide by the full window, padding included (PyTorch's default true), or by the real positions. */
  countIncludePad?: boolean;
}

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

interface Geometry {
  planes: number;
  height: number;
  width: number;
  outH: number;
  outW: number;
  k: [number, number];
  s: [number, number];
  p: [number, number];
}

function geometry(x: Tensor, kernelSize: Pair, opts: Pool2dOptions, op: string): Geometry {
  if (x.dtype !== 'f32' || x.rank !== 4) throw new Error(`${op}: expects f32 [N, C, H, W], got ${x.dtype}${shapeString(x.shape)}`);
  const [n, c, height, width] = x.shape as [number, number, number, number];
  const k = pair(kernelSize);
  const s = pair(opts.stride ?? kernelSize);
  const p = pair(opts.padding ?? 0);
  for (let d = 0; d < 2; d++) {
    if (!(Number.isInteger(k[d]) && k[d]! >= 1 && Number.isInteger(s[d]) && s[d]! >= 1 && Number.isInteger(p[d]) && p[d]! >= 0)) {
      throw new Error(`${op}: invalid kernel ${k}, stride ${s} or padding ${p}`);
    }
    if (p[d]! > k[d]! / 2) throw new Error(`${op}: padding ${p} must be at most half the kernel size ${k}`);
  }
  const outH = outputSize(height, k[0], s[0], p[0], !!opts.ceilMode);
  const outW = outputSize(width, k[1], s[1], p[1], !!opts.ceilMode);
  if (outH < 1 || outW < 1) throw new Error(`${op}: input ${shapeString(x.shape)} is smaller than the kernel ${k}`);
  return { planes: n * c, height, width, outH, outW, k, s, p };
}

/**
 * PyTorch's pooling output size. With ceil_mode the last window may hang over the input's end,
 * but it must start inside the input or the left padding, never in the right padding.
 */
function outputSize(len: number, k: number, s: number, p: number, ceilMode: boolean): number {
  const span = len + 2 * p - k;
  let out = (ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceilMode && (out - 1) * s >= len + p) out--;
  return out;
}

function writeParams(g: Geometry, invocations: number, countIncludePad = true): (w: ParamWriter) => void {
  return (w) =>
    w
      .u32(invocations)
      .i32(g.height, g.width, g.outH, g.outW, g.k[0], g.k[1], g.s[0], g.s[1], g.p[0], g.p[1])
      .u32(countIncludePad ? 1 : 0);
}

/** torch.nn.functional.max_pool2d; the gradient goes to the first maximum of each window. */
export function maxPool2d(x: Tensor, kernelSize: Pair, opts: Pool2dOptions = {}): Tensor {
  const g = geometry(x, kernelSize, opts, 'maxPool2d');
  const outShape = [x.shape[0]!, x.shape[1]!, g.outH, g.outW];
  const y = new Tensor(outShape, 'f32');
  const indices = new Tensor(outShape, 'i32');
  launch(maxPoolKernel, {
    op: 'maxPool2d',
    params: writeParams(g, y.size),
    buffers: [x.buffer, indices.buffer, y.buffer],
    shapes: [x.shape, y.shape],
    workgroups: gridStride(y.size, 256),
  });
  if (!needsGrad(x)) {
    indices.dispose();
    return y;
  }
  return record(y, 'maxPool2d', [x], (dy) => {
    const dx = new Tensor(x.shape, 'f32');
    launch(maxPoolBackwardKernel, {
      op: 'maxPool2d backward',
      params: writeParams(g, x.size),
      buffers: [dy.buffer, indices.buffer, dx.buffer],
      shapes: [dy.shape, dx.shape],
      workgroups: gridStride(x.size, 256),
    });
    return [dx];
  });
}

/** torch.nn.functional.avg_pool2d (count_include_pad true by default). */
export function avgPool2d(x: Tensor, kernelSize: Pair, opts: AvgPool2dOptions = {}): Tensor {
  const g = geometry(x, kernelSize, opts, 'avgPool2d');
  const includePad = opts.countIncludePad ?? true;
  const y = new Tensor([x.shape[0]!, x.shape[1]!, g.outH, g.outW], 'f32');
  launch(avgPoolKernel, {
    op: 'avgPool2d',
    params: writeParams(g, y.size, includePad),
    buffers: [x.buffer, null, y.buffer],
    shapes: [x.shape, y.shape],
    workgroups: gridStride(y.size, 256),
  });
  return record(y, 'avgPool2d', [x], (dy) => {
    const dx = new Tensor(x.shape, 'f32');
    launch(avgPoolBackwardKernel, {
      op: 'avgPool2d backward',
      params: writeParams(g, x.size, includePad),
      buffers: [dy.buffer, null, dx.buffer],
      shapes: [dy.shape, dx.shape],
      workgroups: gridStride(x.size, 256),
    });
    return [dx];
  });
}

/**
 * Global average pooling, [N, C, H, W] -> [N, C] (adaptive_avg_pool2d to 1x1, then flatten): a
 * mean over each contiguous H * W plane, one reduction kernel; its gradient spreads dy / (H * W).
 */
export function globalAvgPool2d(x: Tensor): Tensor {
  if (x.rank !== 4) throw new Error(`globalAvgPool2d: expects [N, C, H, W], got ${shapeString(x.shape)}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return mean(reshape(x, [n, c, h * w]), 2);
}
