// Element-wise ops and their gradients: unary (unary.wgsl), binary with broadcasting
// (binary.wgsl) and where (where.wgsl). A broadcast input's gradient is the output gradient
// summed back to the input's shape (sumTo).
import binaryWgsl from '../../shaders/binary.wgsl';
import unaryWgsl from '../../shaders/unary.wgsl';
import whereWgsl from '../../shaders/where.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { record } from '../autograd.js';
import { Kernel, gridStride, launch } from '../runtime.js';
import { Tensor, sameShape, type DType } from '../tensor.js';
import { full } from './creation.js';
import { sumTo } from './reduce.js';
import { MAX_RANK, broadcastShapes, broadcastStrides, checkRank } from './util.js';

const unaryKernel = new Kernel('unary', [gridWgsl, unaryWgsl]);
const binaryKernel = new Kernel('binary', [gridWgsl, binaryWgsl]);
const whereKernel = new Kernel('where', [gridWgsl, whereWgsl]);

const UNARY = {
  neg: 0, exp: 1, log: 2, sqrt: 3, relu: 4, abs: 5, clamp: 6, powScalar: 7, affine: 8, sign: 9,
  reciprocal: 10, square: 11, sigmoid: 12, tanh: 13, step: 14, sin: 15, cos: 16,
} as const;
type UnaryName = keyof typeof UNARY;

const BINARY = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6,
  lt: 7, le: 8, gt: 9, ge: 10, eq: 11, ne: 12, reluGrad: 13,
} as const;
type BinaryName = keyof typeof BINARY;

function requireF32(t: Tensor, op: string): void {
  if (t.dtype !== 'f32') throw new Error(`${op}: expects an f32 tensor, got ${t.dtype}`);
}

/** Launches unary.wgsl (no gradient recorded). */
function unaryRaw(x: Tensor, name: UnaryName, alpha = 0, beta = 0): Tensor {
  requireF32(x, name);
  const out = new Tensor(x.shape, 'f32');
  if (out.size > 0) {
    launch(unaryKernel, {
      op: name,
      constants: { OP: UNARY[name] },
      params: (w) => w.u32(x.size).f32(alpha, beta),
      buffers: [x.buffer, out.buffer],
      shapes: [x.shape],
      workgroups: gridStride(x.size, 256),
    });
  }
  return out;
}

/** Launches binary.wgsl (no gradient recorded). Comparisons accept any dtype, others only f32. */
function binaryRaw(a: Tensor, b: Tensor, name: BinaryName): Tensor {
  const comparison = BINARY[name] >= BINARY.lt && BINARY[name] <= BINARY.ne;
  if (comparison) {
    if (a.dtype !== b.dtype) throw new Error(`${name}: dtypes differ (${a.dtype} and ${b.dtype})`);
  } else {
    requireF32(a, name);
    requireF32(b, name);
  }
  const shape = broadcastShapes(a.shape, b.shape);
  checkRank(shape, name);
  const out = new Tensor(shape, 'f32');
  if (out.size === 0) return out;
  const contiguous = sameShape(a.shape, shape) && sameShape(b.shape, shape);
  launch(binaryKernel, {
    op: name,
    constants: { OP: BINARY[name], DTYPE: a.dtype === 'f32' ? 0 : a.dtype === 'i32' ? 1 : 2, CONTIGUOUS: contiguous ? 1 : 0 },
    params: (w) =>
      w
        .u32(out.size, shape.length)
        .u32x4(shape, MAX_RANK / 4)
        .u32x4(broadcastStrides(a.shape, shape), MAX_RANK / 4)
        .u32x4(broadcastStrides(b.shape, shape), MAX_RANK / 4),
    buffers: [a.buffer, b.buffer, out.buffer],
    shapes: [a.shape, b.shape],
    workgroups: gridStride(out.size, 256),
  });
  return out;
}

/** A 0-d tensor for a number operand (broadcasts against anything). */
function asTensor(v: Tensor | number): Tensor {
  return typeof v === 'number' ? full([], v) : v;
}

/**
 * op(v as a tensor). A 0-d tensor made here from a number is freed as soon as nothing can need
 * it: at once when op's output is not part of a graph, else with the enclosing scope (the
 * output's backward may read it). So ops with number operands leak nothing outside scopes.
 */
function withOperand(v: Tensor | number, dtype: DType, op: (t: Tensor) => Tensor): Tensor {
  if (typeof v !== 'number') return op(v);
  const t = full([], v, dtype);
  const out = op(t);
  if (!out.requiresGrad) t.dispose();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Unary ops with gradients

export function neg(x: Tensor): Tensor {
  return record(unaryRaw(x, 'neg'), 'neg', [x], (g) => [neg(g)]);
}

export function exp(x: Tensor): Tensor {
  const y = unaryRaw(x, 'exp');
  return record(y, 'exp', [x], (g) => [mul(g, y)]);
}

export function log(x: Tensor): Tensor {
  return record(unaryRaw(x, 'log'), 'log', [x], (g) => [div(g, x)]);
}

export function sqrt(x: Tensor): Tensor {
  const y = unaryRaw(x, 'sqrt');
  // d sqrt(x) = 1 / (2 sqrt(x))
  return record(y, 'sqrt', [x], (g) => [div(mulScalar(g, 0.5), y)]);
}

/** max(x, 0). The gradient g * (x > 0) is one pass over g and the output (relu(x) > 0 iff x > 0). */
export function relu(x: Tensor): Tensor {
  const y = unaryRaw(x, 'relu');
  return record(y, 'relu', [x], (g) => [reluGradient(g, y)]);
}

/** g * (y > 0) for y = relu(x): ReLU's backward from its output (no gradient recorded). */
export function reluGradient(g: Tensor, y: Tensor): Tensor {
  return binaryRaw(g, y, 'reluGrad');
}

export function abs(x: Tensor): Tensor {
  return record(unaryRaw(x, 'abs'), 'abs', [x], (g) => [mul(g, unaryRaw(x, 'sign'))]);
}

/** min(max(x, low), high); the gradient passes where low <= x <= high. */
export function clamp(x: Tensor, low = -Infinity, high = Infinity): Tensor {
  const lo = Math.max(low, -3.4028234663852886e38);
  const hi = Math.min(high, 3.4028234663852886e38);
  return record(unaryRaw(x, 'clamp', lo, hi), 'clamp', [x], (g) => {
    const inside = mul(binaryRaw(x, full([], lo), 'ge'), binaryRaw(x, full([], hi), 'le'));
    return [mul(g, inside)];
  });
}

/** alpha * x + beta, one kernel (scaling, shifting, scalar arithmetic). */
export function affine(x: Tensor, alpha: number, beta = 0): Tensor {
  return record(unaryRaw(x, 'affine', alpha, beta), 'affine', [x], (g) => [mulScalar(g, alpha)]);
}

export const mulScalar = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const addScalar = (x: Tensor, s: number): Tensor => affine(x, 1, s);

export function square(x: Tensor): Tensor {
  return record(unaryRaw(x, 'square'), 'square', [x], (g) => [mul(g, mulScalar(x, 2))]);
}

export function reciprocal(x: Tensor): Tensor {
  const y = unaryRaw(x, 'reciprocal');
  return record(y, 'reciprocal', [x], (g) => [neg(mul(g, square(y)))]);
}

export function sigmoid(x: Tensor): Tensor {
  const y = unaryRaw(x, 'sigmoid');
  // sigma' = sigma (1 - sigma)
  return record(y, 'sigmoid', [x], (g) => [mul(g, mul(y, affine(y, -1, 1)))]);
}

export function tanh(x: Tensor): Tensor {
  const y = unaryRaw(x, 'tanh');
  return record(y, 'tanh', [x], (g) => [mul(g, affine(square(y), -1, 1))]);
}

export function sin(x: Tensor): Tensor {
  return record(unaryRaw(x, 'sin'), 'sin', [x], (g) => [mul(g, unaryRaw(x, 'cos'))]);
}

export function cos(x: Tensor): Tensor {
  return record(unaryRaw(x, 'cos'), 'cos', [x], (g) => [neg(mul(g, unaryRaw(x, 'sin')))]);
}

/** sign(x) in {-1, 0, 1}; no gradient (zero almost everywhere). */
export const sign = (x: Tensor): Tensor => unaryRaw(x, 'sign');

// ---------------------------------------------------------------------------------------------
// Binary ops with broadcasting and gradients

export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, b);
  return record(binaryRaw(a, b, 'add'), 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(asTensor(a), -b);
  if (typeof a === 'number') return affine(b, -1, a);
  return record(binaryRaw(a, b, 'sub'), 'sub', [a, b], (g) => [sumTo(g, a.shape), neg(sumTo(g, b.shape))]);
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, b);
  return record(binaryRaw(a, b, 'mul'), 'mul', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryRaw(g, b, 'mul'), a.shape) : null,
    b.requiresGrad ? sumTo(binaryRaw(g, a, 'mul'), b.shape) : null,
  ]);
}

export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(asTensor(a), 1 / b);
  return withOperand(a, 'f32', (at) => divTensors(at, b));
}

function divTensors(at: Tensor, b: Tensor): Tensor {
  return record(binaryRaw(at, b, 'div'), 'div', [at, b], (g) => [
    // d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
    at.requiresGrad ? sumTo(binaryRaw(g, b, 'div'), at.shape) : null,
    b.requiresGrad ? sumTo(neg(div(mul(g, at), square(b))), b.shape) : null,
  ]);
}

/** x^p: a scalar exponent uses the sign-correct kernel; a tensor exponent needs a > 0. */
export function pow(a: Tensor, p: Tensor | number): Tensor {
  if (typeof p === 'number') {
    return record(unaryRaw(a, 'powScalar', p), 'pow', [a], (g) => [mul(g, mulScalar(unaryRaw(a, 'powScalar', p - 1), p))]);
  }
  const y = binaryRaw(a, p, 'pow');
  return record(y, 'pow', [a, p], (g) => [
    // d a^p / da = p a^(p-1) = p y / a ; d a^p / dp = y ln a
    a.requiresGrad ? sumTo(mul(g, div(mul(p, y), a)), a.shape) : null,
    p.requiresGrad ? sumTo(mul(g, mul(y, log(a))), p.shape) : null,
  ]);
}

/** Ties send half the gradient to each side, as PyTorch does. */
function minMax(a: Tensor, b: Tensor, name: 'maximum' | 'minimum'): Tensor {
  const wins = name === 'maximum' ? 'gt' : 'lt';
  return record(binaryRaw(a, b, name), name, [a, b], (g) => {
    const tie = mulScalar(binaryRaw(a, b, 'eq'), 0.5);
    const toA = add(binaryRaw(a, b, wins), tie);
    const toB = add(binaryRaw(b, a, wins), tie);
    return [sumTo(mul(g, toA), a.shape), sumTo(mul(g, toB), b.shape)];
  });
}
export const maximum = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, 'f32', (bt) => minMax(a, bt, 'maximum'));
export const minimum = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, 'f32', (bt) => minMax(a, bt, 'minimum'));

// Comparisons: f32 masks of 1 and 0, no gradient. Integer tensors compare exactly below 2^24.
export const lt = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'lt'));
export const le = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'le'));
export const gt = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'gt'));
export const ge = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'ge'));
export const eq = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'eq'));
export const ne = (a: Tensor, b: Tensor | number): Tensor => withOperand(b, a.dtype, (bt) => binaryRaw(a, bt, 'ne'));

/** cond != 0 ? a : b, all broadcast together; gradients flow to the chosen side. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  return withOperand(a, 'f32', (at) => withOperand(b, 'f32', (bt) => whereTensors(cond, at, bt)));
}

function whereTensors(cond: Tensor, at: Tensor, bt: Tensor): Tensor {
  requireF32(cond, 'where');
  requireF32(at, 'where');
  requireF32(bt, 'where');
  const shape = broadcastShapes(cond.shape, at.shape, bt.shape);
  checkRank(shape, 'where');
  const out = new Tensor(shape, 'f32');
  if (out.size > 0) {
    launch(whereKernel, {
      op: 'where',
      params: (w) =>
        w
          .u32(out.size, shape.length)
          .u32x4(shape, 2)
          .u32x4(broadcastStrides(cond.shape, shape), 2)
          .u32x4(broadcastStrides(at.shape, shape), 2)
          .u32x4(broadcastStrides(bt.shape, shape), 2),
      buffers: [cond.buffer, at.buffer, bt.buffer, out.buffer],
      shapes: [cond.shape, at.shape, bt.shape],
      workgroups: gridStride(out.size, 256),
    });
  }
  return record(out, 'where', [at, bt], (g) => {
    const zero = full([], 0);
    return [sumTo(where(cond, g, zero), at.shape), sumTo(where(cond, zero, g), bt.shape)];
  });
}
