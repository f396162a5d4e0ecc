// Pooling layers (torch.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d) over engine/ops/pool.ts.
import { Tensor, avgPool2d, globalAvgPool2d, maxPool2d, reshape } from '../../engine/index.js';
import { Module } from '../module.js';

/** Stride (default: the kernel size) and padding (default 0), as the engine's pooling ops take them. */
export interface PoolOptions {
  stride?: number;
  padding?: number;
  /** Output size rounds up, as GoogLeNet's pools use (a last window may start in the padding's shadow). */
  ceilMode?: boolean;
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly opts: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.opts);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly opts: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.opts);
  }
}

/**
 * nn.AdaptiveAvgPool2d for output sizes that divide the input (the only case our models use:
 * GoogLeNet's auxiliary heads pool 8x8 to 4x4, its head pools to 1x1): a plain average pool with
 * kernel = stride = input / output.
 */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    const h = x.shape[2]!;
    const w = x.shape[3]!;
    if (h % this.outputSize !== 0 || w % this.outputSize !== 0) {
      throw new Error(`AdaptiveAvgPool2d(${this.outputSize}): input ${h}x${w} is not a multiple of the output size`);
    }
    if (this.outputSize === 1) return reshape(globalAvgPool2d(x), [x.shape[0]!, x.shape[1]!, 1, 1]);
    const k = h / this.outputSize;
    return avgPool2d(x, k, { stride: k, padding: 0, ceilMode: false });
  }
}
