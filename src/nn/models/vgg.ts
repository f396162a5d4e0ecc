// VGG16 with batch norm, the CIFAR variant of Garipov et al. (dnn-mode-connectivity models/vgg.py,
// VGG16BN): five blocks of 3x3 conv(+bias) -> BN -> ReLU with 64, 128, 256, 512, 512 channels
// (2, 2, 3, 3, 3 convs), each block ending in a 2x2 max pool (32 -> 1), then
// Dropout, Linear(512, 512), ReLU, Dropout, Linear(512, 512), ReLU, Linear(512, classes).
// Conv weights N(0, 2 / (k*k*out)), zero bias; BN weight 1, bias 0; linear layers PyTorch's default.
// Names: layer_blocks.{b}.{2i conv, 2i+1 bn}, classifier.{1,4,6}.{weight,bias}.
import { Generator, Tensor, flatten, randn } from '../../engine/index.js';
import { fans, type WeightInit } from '../init.js';
import { ReLU } from '../layers/activation.js';
import { BatchNorm2d } from '../layers/batchnorm.js';
import { Conv2d } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { Dropout } from '../layers/dropout.js';
import { MaxPool2d } from '../layers/pool.js';
import { Module, ModuleList, Sequential } from '../module.js';
import { scaled, type ModelConfig } from './common.js';
import type { PermutationSpecBuilder } from './permutation.js';

const VGG16_BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]];

/** m.weight.data.normal_(0, sqrt(2 / n)), n = kH * kW * out_channels (i.e. fan_out). */
const vggInit: WeightInit = (shape, generator) => randn(shape, 0, Math.sqrt(2 / fans(shape).fanOut), { generator });

export class VGG16 extends Module {
  readonly layerBlocks: ModuleList<ModuleList>;
  readonly classifier: Sequential;
  private readonly pool = new MaxPool2d(2, { stride: 2 });

  constructor(readonly config: ModelConfig) {
    super();
    const generator = new Generator(config.seed);
    this.layerBlocks = this.registerModule('layer_blocks', new ModuleList<ModuleList>());
    let inC = config.inChannels;
    for (const block of VGG16_BLOCKS) {
      const layers = new ModuleList();
      for (const c of block) {
        const outC = scaled(c, config.width);
        layers.push(new Conv2d(inC, outC, 3, { padding: 1, generator, weightInit: vggInit, zeroBias: true }));
        layers.push(new BatchNorm2d(outC));
        inC = outC;
      }
      this.layerBlocks.push(layers);
    }
    const hidden = scaled(512, config.width);
    this.classifier = this.registerModule(
      'classifier',
      new Sequential(
        new Dropout(0.5, generator),
        new Linear(inC, hidden, { generator }),
        new ReLU(),
        new Dropout(0.5, generator),
        new Linear(hidden, hidden, { generator }),
        new ReLU(),
        new Linear(hidden, config.numClasses, { generator }),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    for (const block of this.layerBlocks) {
      for (let i = 0; i < block.length; i += 2) x = (block.at(i + 1) as BatchNorm2d).forwardRelu(block.at(i).forward(x));
      x = this.pool.forward(x);
    }
    return this.classifier.forward(flatten(x, 1));
  }

  /**
   * Permutation spec: thirteen conv -> BN -> ReLU (-> max pool) groups, then classifier.1 and .4 (Linear-ReLU) and
   * classifier.6 (logits). classifier.1 reads the flattened last feature map [C, H, W] (1x1 for
   * 32x32 inputs), so each channel owns H*W consecutive columns.
   */
  override describePermutations(b: PermutationSpecBuilder): void {
    const convs: [conv: string, bn: string][] = [];
    [...this.layerBlocks].forEach((block, bi) => {
      for (let i = 0; i < block.length; i += 2) convs.push([`layer_blocks.${bi}.${i}`, `layer_blocks.${bi}.${i + 1}`]);
    });
    convs.forEach(([conv, bn], k) => {
      b.group(conv, conv);
      b.rows(conv, conv).batchNorm(conv, bn);
      if (k + 1 < convs.length) b.cols(conv, convs[k + 1]![0]);
      else {
        const channels = b.dim(`${conv}.weight`);
        const inner = b.dim('classifier.1.weight', 1) / channels;
        if (!Number.isInteger(inner)) throw new Error(`vgg16 spec: classifier.1 has ${b.dim('classifier.1.weight', 1)} inputs for ${channels} channels`);
        b.cols(conv, 'classifier.1', 0, inner);
      }
      b.layer(conv, conv, [bn]);
    });
    for (const [fc, next] of [['classifier.1', 'classifier.4'], ['classifier.4', 'classifier.6']] as const) {
      b.group(fc, fc);
      b.rows(fc, fc).cols(fc, next);
      b.layer(fc, fc, [fc]);
    }
  }
}
