// 2-d convolution layer (torch.nn.Conv2d without dilation or groups): weight [out, in, kH, kW].
import { Generator, Tensor, conv2d, full } from '../../engine/index.js';
import { fans, pytorchDefault, type WeightInit } from '../init.js';
import { Module } from '../module.js';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  bias?: boolean;
  generator: Generator;
  /** The weight's initialization (default: PyTorch's, U(+-1/sqrt(fan_in))). */
  weightInit?: WeightInit;
  /** Zero bias instead of PyTorch's U(+-1/sqrt(fan_in)). */
  zeroBias?: boolean;
}

export class Conv2d extends Module {
  readonly stride: number;
  readonly padding: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dOptions,
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.registerParameter('weight', (opts.weightInit ?? pytorchDefault)(shape, opts.generator));
    if (opts.bias ?? true) {
      const bias = opts.zeroBias ? full([outChannels], 0) : pytorchDefault([outChannels], opts.generator, fans(shape).fanIn);
      this.registerParameter('bias', bias);
    }
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.tensor('weight'), this.optionalParameter('bias'), { stride: this.stride, padding: this.padding });
  }
}
