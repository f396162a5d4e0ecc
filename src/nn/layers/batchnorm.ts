// Batch normalization layers (torch.nn.BatchNorm1d / BatchNorm2d): weight (gamma) = 1, bias
// (beta) = 0, running_mean = 0, running_var = 1, num_batches_tracked counts training batches
// (PyTorch stores it as int64; here i32, written as I64 in checkpoints).
// Training mode normalizes with batch statistics and updates the running ones; eval mode uses the
// running ones (see ops/batchnorm.ts for the arithmetic).
import { Tensor, add, addInPlaceInt, batchNorm, full, relu } from '../../engine/index.js';
import { Module } from '../module.js';

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
}

export class BatchNorm extends Module {
  readonly eps: number;
  readonly momentum: number;
  constructor(
    readonly numFeatures: number,
    opts: BatchNormOptions = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    this.registerParameter('weight', full([numFeatures], 1));
    this.registerParameter('bias', full([numFeatures], 0));
    this.registerBuffer('running_mean', full([numFeatures], 0));
    this.registerBuffer('running_var', full([numFeatures], 1));
    this.registerBuffer('num_batches_tracked', full([], 0, 'i32'));
  }

  forward(x: Tensor): Tensor {
    return this.normalize(x, false);
  }

  /**
   * relu(forward(x)), or relu(forward(x) + residual), as one op: the same bits, one pass and one
   * or two tensors fewer (ops/batchnorm.ts).
   */
  forwardRelu(x: Tensor, residual?: Tensor): Tensor {
    // A forward replaced on the instance (src/align's activation capture hooks module outputs)
    // must see the normalized values, so the three ops then run apart, with the same bits.
    if (Object.prototype.hasOwnProperty.call(this, 'forward')) {
      const y = this.forward(x);
      return relu(residual ? add(y, residual) : y);
    }
    return this.normalize(x, true, residual);
  }

  private normalize(x: Tensor, relu: boolean, residual?: Tensor): Tensor {
    if (this.training) addInPlaceInt(this.tensor('num_batches_tracked'), 1);
    return batchNorm(x, this.tensor('running_mean'), this.tensor('running_var'), this.tensor('weight'), this.tensor('bias'), {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
      relu,
      residual,
    });
  }
}

/** [N, C] or [N, C, L] inputs. */
export class BatchNorm1d extends BatchNorm {}
/** [N, C, H, W] inputs. */
export class BatchNorm2d extends BatchNorm {}
