// TinyTen (Tatro et al. 2020; NeuronAlignment models/tiny_ten.py, about 0.09M parameters):
// eight conv(+bias) -> BN -> ReLU blocks, global average pool, linear classifier.
//
//   block  in->out  kernel stride padding   spatial (32x32 input)
//   0      c ->16   3      1      1         32
//   1      16->16   3      1      1         32
//   2      16->32   3      2      1         16
//   3      32->32   3      1      1         16
//   4      32->32   3      1      1         16
//   5      32->64   3      2      1          8
//   6      64->64   3      1      0          6
//   7      64->64   1      1      0          6
// Xavier-normal conv and linear weights, zero biases; BN weight 1, bias 0.
// Names: layers.{i}.conv.{weight,bias}, layers.{i}.bn.{weight,bias,running_mean,running_var}, dense.*
import { Generator, Tensor, globalAvgPool2d } from '../../engine/index.js';
import { xavierNormal } from '../init.js';
import { BatchNorm2d } from '../layers/batchnorm.js';
import { Conv2d, type Conv2dOptions } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { Module, ModuleList } from '../module.js';
import { scaled, type ModelConfig } from './common.js';
import type { PermutationSpecBuilder } from './permutation.js';

/** conv -> BN -> ReLU (the unit whose output the alignment matches). */
export class ConvBNReLU extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, kernel: number, opts: Conv2dOptions & { bnEps?: number }) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(inC, outC, kernel, opts));
    const bnEps = opts.bnEps ?? 1e-5;
    this.bn = this.registerModule('bn', new BatchNorm2d(outC, { eps: bnEps }));
  }
  /** With preActivation, the BN output before the ReLU (the `--pre-activation` alignment option). */
  forward(x: Tensor, preActivation = false): Tensor {
    const z = this.conv.forward(x);
    return preActivation ? this.bn.forward(z) : this.bn.forwardRelu(z);
  }
}

const TINYTEN_BLOCKS: [out: number, kernel: number, stride: number, padding: number][] = [
  [16, 3, 1, 1],
  [16, 3, 1, 1],
  [32, 3, 2, 1],
  [32, 3, 1, 1],
  [32, 3, 1, 1],
  [64, 3, 2, 1],
  [64, 3, 1, 0],
  [64, 1, 1, 0],
];

export class TinyTen extends Module {
  readonly layers: ModuleList<ConvBNReLU>;
  readonly dense: Linear;
  constructor(readonly config: ModelConfig) {
    super();
    const generator = new Generator(config.seed);
    this.layers = this.registerModule('layers', new ModuleList<ConvBNReLU>());
    let inC = config.inChannels;
    for (const [out, k, s, p] of TINYTEN_BLOCKS) {
      const outC = scaled(out, config.width);
      const block = new ConvBNReLU(inC, outC, k, { stride: s, padding: p, generator, weightInit: xavierNormal, zeroBias: true });
      this.layers.push(block);
      inC = outC;
    }
    this.dense = this.registerModule('dense', new Linear(inC, config.numClasses, { generator, weightInit: xavierNormal, zeroBias: true }));
  }

  forward(x: Tensor): Tensor {
    for (const block of this.layers) x = block.forward(x);
    return this.dense.forward(globalAvgPool2d(x));
  }

  /** Permutation spec: one group per conv -> BN -> ReLU block; global average pooling keeps channels for dense. */
  override describePermutations(b: PermutationSpecBuilder): void {
    const n = this.layers.length;
    for (let i = 0; i < n; i++) {
      const name = `layers.${i}`;
      b.group(name, `${name}.conv`);
      b.rows(name, `${name}.conv`).batchNorm(name, `${name}.bn`);
      // Global average pooling keeps channels one to one, so dense's columns are channels.
      b.cols(name, i + 1 < n ? `layers.${i + 1}.conv` : 'dense');
      b.layer(name, name, [`${name}.bn`]);
    }
  }
}
