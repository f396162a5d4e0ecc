// Softmax, log-softmax (over the last axis, or any one axis) and cross-entropy over the last axis.
//
// log_softmax(x)_c = x_c - m - log(sum_c' exp(x_c' - m)), m = max_c x_c (subtracting the max keeps
// exp from overflowing). Its gradient is g - softmax(x) * sum_c g_c, the sum over the same axis. Cross-entropy with integer
// labels is the mean over rows of -log_softmax(x)[row, label]; its gradient is
// (softmax(x) - onehot(label)) * g / rows, computed directly rather than through the graph.
import indexWgsl from '../../shaders/index.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { noGrad, record } from '../autograd.js';
import { Kernel, gridStride, launch } from '../runtime.js';
import { Tensor, tidy } from '../tensor.js';
import { exp, log, mul, mulScalar, sub } from './elementwise.js';
import { max, mean, sum } from './reduce.js';
import { shapeString } from './util.js';

const pickKernel = new Kernel('pick', [gridWgsl, indexWgsl], 'pick');
const oneHotKernel = new Kernel('one_hot', [gridWgsl, indexWgsl], 'one_hot');

/** log_softmax along `axis` (default the last; torch.log_softmax(x, dim)). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const y = noGrad(() =>
    tidy(() => {
      const shifted = sub(x, max(x, axis, { keepDims: true }));
      return sub(shifted, log(sum(exp(shifted), axis, { keepDims: true })));
    }),
  );
  return record(y, 'logSoftmax', [x], (g) => [sub(g, mul(exp(y), sum(g, axis, { keepDims: true })))]);
}

export function softmax(x: Tensor): Tensor {
  const logProb = logSoftmax(x);
  const out = exp(logProb);
  if (!out.requiresGrad) logProb.dispose(); // else a node of the graph; its scope frees it
  return out;
}

/** out[n] = x[n, index[n]] for x of shape [rows, C] and i32 index of shape [rows] (no gradient). */
export function pick(x: Tensor, index: Tensor): Tensor {
  const [rows, classes] = checkLabels(x, index, 'pick');
  const out = new Tensor([rows], x.dtype);
  if (rows > 0) {
    launch(pickKernel, {
      op: 'pick',
      params: (w) => w.u32(rows, classes, rows, 1),
      buffers: [x.buffer, index.buffer, out.buffer],
      shapes: [x.shape],
      workgroups: gridStride(rows, 256),
    });
  }
  return out;
}

/** One-hot f32 rows [labels.size, classes] from i32 labels. */
export function oneHot(labels: Tensor, classes: number): Tensor {
  if (labels.dtype !== 'i32' || labels.rank !== 1) throw new Error(`oneHot: labels must be a 1-D i32 tensor, got ${labels.dtype}${shapeString(labels.shape)}`);
  const out = new Tensor([labels.size, classes], 'f32');
  if (out.size > 0) {
    launch(oneHotKernel, {
      op: 'oneHot',
      params: (w) => w.u32(out.size, classes, labels.size, 1),
      buffers: [null, labels.buffer, out.buffer],
      shapes: [out.shape],
      workgroups: gridStride(out.size, 256),
    });
  }
  return out;
}

function checkLabels(x: Tensor, labels: Tensor, op: string): [number, number] {
  if (x.rank !== 2) throw new Error(`${op}: expects logits of shape [rows, classes], got ${shapeString(x.shape)}`);
  if (labels.dtype !== 'i32' || labels.rank !== 1 || labels.size !== x.shape[0]) {
    throw new Error(`${op}: labels must be i32 of shape [${x.shape[0]}], got ${labels.dtype}${shapeString(labels.shape)}`);
  }
  return [x.shape[0]!, x.shape[1]!];
}

/** Mean cross-entropy of logits [rows, classes] against i32 labels [rows] (torch.nn.functional.cross_entropy). */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const [rows, classes] = checkLabels(logits, labels, 'crossEntropy');
  const logProb = noGrad(() => logSoftmax(logits));
  const loss = noGrad(() => tidy(() => mulScalar(mean(pick(logProb, labels)), -1)));
  record(loss, 'crossEntropy', [logits], (g) => {
    const grad = sub(exp(logProb), oneHot(labels, classes));
    return [mul(grad, mulScalar(g, 1 / rows))];
  });
  if (!loss.requiresGrad) logProb.dispose(); // else the backward reads it; the scope frees it
  return loss;
}
