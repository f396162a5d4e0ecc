// Fully connected layer: y = x W^T + b, with W of shape [out, in] as in torch.nn.Linear.
import { Generator, Tensor, add, full, matmul } from '../../engine/index.js';
import { pytorchDefault, type WeightInit } from '../init.js';
import { Module } from '../module.js';

/** y = x W^T + b for x of shape [..., in]; the transpose is folded into the matmul (no copy). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight, { transB: true });
  return bias ? add(y, bias) : y;
}

export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; generator: Generator; weightInit?: WeightInit; zeroBias?: boolean },
  ) {
    super();
    this.registerParameter('weight', (opts.weightInit ?? pytorchDefault)([outFeatures, inFeatures], opts.generator));
    if (opts.bias ?? true) {
      const bias = opts.zeroBias ? full([outFeatures], 0) : pytorchDefault([outFeatures], opts.generator, inFeatures);
      this.registerParameter('bias', bias);
    }
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.tensor('weight'), this.optionalParameter('bias'));
  }
}
