// Batch normalization (torch.nn.functional.batch_norm) for [N, C], [N, C, L] and [N, C, H, W]:
//   y = (x - mean) / sqrt(var + eps) * weight + bias,  per channel c.
// Training mode normalizes with the batch statistics (biased variance) and updates the running
// statistics in place on the GPU (unbiased variance, PyTorch's momentum convention; see
// batchnorm_stats.wgsl); evaluation mode normalizes with the running statistics. The running
// statistics are buffers, not graph inputs: their update is never recorded by autograd.
//
// Dispatches: training forward 3 (partial statistics, merge, normalize), eval forward 1;
// backward 3 (partial sums, merge, input gradient), fewer when x or the affine parameters need
// no gradient.
import backwardWgsl from '../../shaders/batchnorm_backward.wgsl';
import statsWgsl from '../../shaders/batchnorm_stats.wgsl';
import forwardWgsl from '../../shaders/batchnorm.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import walkWgsl from '../../shaders/lib/channel_walk.wgsl';
import { needsGrad, record } from '../autograd.js';
import { Kernel, grid1d, gridStride, launch, runtime, type ParamWriter } from '../runtime.js';
import { Tensor, sameShape } from '../tensor.js';
import { reluGradient } from './elementwise.js';
import { shapeString } from './util.js';

const statsPartialKernel = new Kernel('bn_stats_partial', [walkWgsl, statsWgsl], 'stats_partial');
const statsFinalizeKernel = new Kernel('bn_stats_finalize', [walkWgsl, statsWgsl], 'stats_finalize');
const statsUpdateKernel = new Kernel('bn_stats_finalize_update', [walkWgsl, statsWgsl], 'stats_finalize_update');
const forwardKernel = new Kernel('bn_forward', [gridWgsl, forwardWgsl], 'bn_forward');
const forwardPlanesKernel = new Kernel('bn_forward_planes', [gridWgsl, forwardWgsl], 'bn_forward_planes');
const backwardPartialKernel = new Kernel('bn_backward_partial', [gridWgsl, walkWgsl, backwardWgsl], 'backward_partial');
const backwardFinalizeKernel = new Kernel('bn_backward_finalize', [gridWgsl, walkWgsl, backwardWgsl], 'backward_finalize');
const backwardInputKernel = new Kernel('bn_backward_input', [gridWgsl, walkWgsl, backwardWgsl], 'backward_input');
const backwardInputEvalKernel = new Kernel('bn_backward_input_eval', [gridWgsl, walkWgsl, backwardWgsl], 'backward_input_eval');
const backwardInputPlanesKernel = new Kernel('bn_backward_input_planes', [gridWgsl, walkWgsl, backwardWgsl], 'backward_input_planes');
const backwardInputEvalPlanesKernel = new Kernel('bn_backward_input_eval_planes', [gridWgsl, walkWgsl, backwardWgsl], 'backward_input_eval_planes');

/**
 * From this plane size S = H * W on, the element-wise passes run one workgroup per plane (n, c)
 * (the *_planes entry points: per-channel values read once, no division per element); smaller
 * planes, BatchNorm1d's S = 1 above all, keep the grid-stride kernels. The two give the same bits.
 */
const PLANE_MIN = 16;
let planesOff = false;

/** Runs every element-wise pass with the grid-stride kernels (tests compare the two kinds); false restores the choice by plane size. */
export function setBatchNormFlat(flat: boolean): void {
  planesOff = flat;
}

/** The element-wise launch of one of the two kernel kinds over x's N * C planes of `spatial`. */
function elementwise(spatial: number, size: number, planes: Kernel, flat: Kernel): { kernel: Kernel; workgroups: [number, number, number] } {
  if (spatial >= PLANE_MIN && !planesOff) return { kernel: planes, workgroups: grid1d(size / spatial, 1) };
  return { kernel: flat, workgroups: gridStride(size, 256) };
}

/**
 * How the per-channel reductions (statistics, backward sums) split each channel's `count`
 * elements into runs, one workgroup each, and the workgroup size. A GPU wants about a thousand
 * workgroups of 256 in flight even when C is small. On a CPU (llvmpipe) every invocation pays for
 * each barrier of the shared-memory tree, so few workgroups of 64 are several times faster
 * (measured at [32, 64, 16, 16]: 86 ms per training forward with 512 workgroups of 256, 11 ms
 * with 64 of 64). Each workgroup gets at least MIN_CHUNK elements.
 */
const MIN_CHUNK = 1024;

function chunking(count: number, channels: number): { chunk: number; chunks: number; wg: number } {
  const cpu = runtime().info.isCPU;
  const targetWorkgroups = cpu ? 64 : 1024;
  const wanted = Math.max(1, Math.min(Math.ceil(targetWorkgroups / channels), Math.ceil(count / MIN_CHUNK)));
  const chunk = Math.ceil(count / wanted);
  return { chunk, chunks: Math.ceil(count / chunk), wg: cpu ? 64 : 256 };
}

export interface BatchNormOptions {
  /** Batch statistics (and running-statistics update) when true; running statistics when false. */
  training: boolean;
  /** Weight of the new batch statistic in the running average (PyTorch's default 0.1). */
  momentum?: number;
  eps?: number;
  /**
   * relu(batch_norm(x)) in one op: the ReLU applied in the normalize pass (no separate pass, and no
   * tensor for the normalized values, which nothing else needs: the ReLU's backward reads its
   * output). The same bits as relu(batchNorm(x)).
   */
  relu?: boolean;
  /**
   * A tensor of x's shape added to the normalized values before the ReLU: relu(batch_norm(x) +
   * residual) in one op, a ResNet block's output (He et al.), with the bits of the three ops and
   * neither the normalized values nor the sum kept. Its gradient is the masked output gradient.
   */
  residual?: Tensor;
}

/**
 * torch.nn.functional.batch_norm. x is [N, C, ...]; the running statistics, weight and bias are
 * [C]. In training mode the running statistics (when given) are updated in place; in evaluation
 * mode they are required. Gradients flow to x, weight and bias in both modes.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  opts: BatchNormOptions,
): Tensor {
  const { training, momentum = 0.1, eps = 1e-5, relu = false, residual = null } = opts;
  if (x.dtype !== 'f32' || x.rank < 2) throw new Error(`batchNorm: expects f32 [N, C, ...], got ${x.dtype}${shapeString(x.shape)}`);
  const [batch, channels] = x.shape as [number, number];
  const spatial = x.shape.slice(2).reduce((p, d) => p * d, 1);
  const count = batch * spatial;
  if (residual && (residual.dtype !== 'f32' || !sameShape(residual.shape, x.shape))) {
    throw new Error(`batchNorm: residual must be f32 ${shapeString(x.shape)} like x, got ${residual.dtype}${shapeString(residual.shape)}`);
  }
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', weight], ['bias', bias]] as const) {
    if (t && (t.dtype !== 'f32' || t.rank !== 1 || t.size !== channels)) {
      throw new Error(`batchNorm: ${name} must be f32 [${channels}], got ${t.dtype}${shapeString(t.shape)}`);
    }
  }
  if (channels > runtime().device.limits.maxComputeWorkgroupsPerDimension) throw new Error(`batchNorm: ${channels} channels exceed the grid limit`);
  if ((runningMean === null) !== (runningVar === null)) throw new Error('batchNorm: give both running statistics or neither');
  if (!training && !runningMean) throw new Error('batchNorm: evaluation mode needs the running statistics');
  if (training && count < 2) throw new Error(`batchNorm: training needs more than 1 value per channel, got input ${shapeString(x.shape)}`);
  if (x.size === 0) throw new Error('batchNorm: empty input');

  // mean and stat: the batch mean and invstd (training), or the running mean and variance (eval).
  let mean: Tensor;
  let stat: Tensor;
  if (training) {
    const { chunk, chunks, wg } = chunking(count, channels);
    const partial = new Tensor([channels, chunks, 2], 'f32');
    mean = new Tensor([channels], 'f32');
    stat = new Tensor([channels], 'f32');
    const params = (w: ParamWriter) => w.u32(count, channels, spatial, chunk, chunks).f32(eps, momentum);
    launch(statsPartialKernel, { op: 'batchNorm statistics', constants: { WG: wg }, params, buffers: [x.buffer, partial.buffer], workgroups: [chunks, channels, 1], shapes: [x.shape] });
    const update = runningMean !== null && runningVar !== null;
    launch(update ? statsUpdateKernel : statsFinalizeKernel, {
      op: 'batchNorm statistics',
      params,
      buffers: [null, partial.buffer, mean.buffer, stat.buffer, update ? runningMean.buffer : null, update ? runningVar.buffer : null],
      workgroups: [Math.ceil(channels / 64), 1, 1],
      shapes: [partial.shape],
    });
    partial.dispose();
  } else {
    mean = runningMean!;
    stat = runningVar!;
  }

  const y = new Tensor(x.shape, 'f32');
  const flags = (weight ? 1 : 0) | (bias ? 2 : 0);
  const forward = elementwise(spatial, x.size, forwardPlanesKernel, forwardKernel);
  launch(forward.kernel, {
    op: 'batchNorm',
    constants: { EVAL: training ? 0 : 1, RELU: relu ? 1 : 0, RESIDUAL: residual ? 1 : 0 },
    params: (w) => w.u32(x.size, channels, spatial, flags).f32(eps),
    // An absent weight or bias is never read (flags), but WebGPU binds every declared buffer.
    buffers: [x.buffer, mean.buffer, stat.buffer, (weight ?? x).buffer, (bias ?? x).buffer, y.buffer, (residual ?? x).buffer],
    shapes: [x.shape],
    workgroups: forward.workgroups,
  });

  const inputs = [x, weight, bias, residual].filter((t): t is Tensor => t !== null);
  if (!needsGrad(...inputs)) {
    if (training) {
      mean.dispose();
      stat.dispose();
    }
    return y;
  }
  return record(y, `batchNorm${residual ? '+add' : ''}${relu ? '+relu' : ''}`, inputs, (gy) => {
    // With the ReLU fused, the gradient reaching the normalized values: gy * (y > 0).
    const dy = relu ? reluGradient(gy, y) : gy;
    const { chunk, chunks, wg } = chunking(count, channels);
    const params = (w: ParamWriter) =>
      w.u32(x.size, count, channels, spatial, chunk, chunks, weight ? 1 : 0).f32(eps);
    const constants = { EVAL: training ? 0 : 1 };
    // sum(dy) and sum(dy * xhat) per channel: the bias and weight gradients, and in training
    // mode part of the input gradient.
    let sumDy: Tensor | null = null;
    let sumDyXhat: Tensor | null = null;
    if (training || weight?.requiresGrad || bias?.requiresGrad) {
      const partial = new Tensor([channels, chunks, 2], 'f32');
      sumDy = new Tensor([channels], 'f32');
      sumDyXhat = new Tensor([channels], 'f32');
      launch(backwardPartialKernel, {
        op: 'batchNorm backward',
        constants: { ...constants, WG: wg },
        params,
        buffers: [x.buffer, mean.buffer, stat.buffer, null, dy.buffer, partial.buffer],
        shapes: [x.shape],
        workgroups: [chunks, channels, 1],
      });
      launch(backwardFinalizeKernel, {
        op: 'batchNorm backward',
        params,
        buffers: [null, null, null, null, null, partial.buffer, sumDy.buffer, sumDyXhat.buffer],
        shapes: [partial.shape],
        workgroups: [Math.ceil(channels / 64), 1, 1],
      });
      partial.dispose();
    }
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = new Tensor(x.shape, 'f32');
      const w = (weight ?? x).buffer;
      const pass = training
        ? elementwise(spatial, x.size, backwardInputPlanesKernel, backwardInputKernel)
        : elementwise(spatial, x.size, backwardInputEvalPlanesKernel, backwardInputEvalKernel);
      launch(pass.kernel, {
        op: 'batchNorm backward',
        constants,
        params,
        buffers: training
          ? [x.buffer, mean.buffer, stat.buffer, w, dy.buffer, null, sumDy!.buffer, sumDyXhat!.buffer, dx.buffer]
          : [null, null, stat.buffer, w, dy.buffer, null, null, null, dx.buffer],
        shapes: [x.shape],
        workgroups: pass.workgroups,
      });
    }
    // Hand each sum to its parameter, or free it when that parameter is absent.
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(sumDyXhat);
    else sumDyXhat?.dispose();
    if (bias) grads.push(sumDy);
    else sumDy?.dispose();
    // The residual's gradient is dy itself; without the ReLU dy is gy, which backward() owns, so
    // the residual gets a second handle on its buffer (as backward() does for a shared gradient).
    if (residual) grads.push(residual.requiresGrad ? (relu ? dy : dy.reshape(dy.shape)) : null);
    return grads;
  });
}
