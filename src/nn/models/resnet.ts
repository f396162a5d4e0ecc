// ResNet32 for 32x32 inputs (NeuronAlignment models/resnet.py, about 0.47M parameters):
// a 3x3 stem (16 channels) + BN + ReLU, three stages of five BasicBlocks with 16, 32 and 64
// channels (stride 2 entering stages 2 and 3), global average pool, linear classifier. No conv
// bias. A block whose shape changes projects its shortcut with a 1x1 conv + BN ("downsample").
// Conv weights: kaiming_normal_(mode='fan_out', nonlinearity='relu'); BN weight 1, bias 0.
//
// Names as the official code: layers.0.{0 conv, 1 bn}, layers.{s}.{b}.{conv1,bn1,conv2,bn2},
// layers.{s}.0.downsample.{0 conv, 1 bn}, fc.{weight,bias}.
import { Generator, Tensor, globalAvgPool2d } from '../../engine/index.js';
import { kaimingNormal, type WeightInit } from '../init.js';
import { ReLU } from '../layers/activation.js';
import { BatchNorm2d } from '../layers/batchnorm.js';
import { Conv2d } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { Module, ModuleList, Sequential } from '../module.js';
import { scaled, type ModelConfig } from './common.js';
import type { PermutationSpecBuilder } from './permutation.js';

const fanOutInit: WeightInit = (shape, generator) => kaimingNormal(shape, generator, 'fanOut');

export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential | null;
  constructor(inC: number, outC: number, stride: number, generator: Generator) {
    super();
    const conv = (i: number, o: number, k: number, s: number) =>
      new Conv2d(i, o, k, { stride: s, padding: k === 3 ? 1 : 0, bias: false, generator, weightInit: fanOutInit });
    this.conv1 = this.registerModule('conv1', conv(inC, outC, 3, stride));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(outC));
    this.conv2 = this.registerModule('conv2', conv(outC, outC, 3, 1));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(outC));
    this.downsample =
      stride !== 1 || inC !== outC
        ? this.registerModule('downsample', new Sequential(conv(inC, outC, 1, stride), new BatchNorm2d(outC)))
        : null;
  }

  /** The block output relu(bn2(conv2(h)) + shortcut(x)), and the inner activation h. */
  forwardWithInner(x: Tensor): { out: Tensor; inner: Tensor } {
    const inner = this.bn1.forwardRelu(this.conv1.forward(x));
    const shortcut = this.downsample ? this.downsample.forward(x) : x;
    return { out: this.bn2.forwardRelu(this.conv2.forward(inner), shortcut), inner };
  }

  forward(x: Tensor): Tensor {
    return this.forwardWithInner(x).out;
  }
}

export class ResNet32 extends Module {
  readonly stem: Sequential;
  readonly stages: ModuleList<BasicBlock>[] = [];
  readonly fc: Linear;
  static readonly blocksPerStage = 5;

  constructor(readonly config: ModelConfig) {
    super();
    const generator = new Generator(config.seed);
    const widths = [16, 32, 64].map((c) => scaled(c, config.width));
    const layers = this.registerModule('layers', new ModuleList<Module>());
    this.stem = new Sequential(
      new Conv2d(config.inChannels, widths[0]!, 3, { padding: 1, bias: false, generator, weightInit: fanOutInit }),
      new BatchNorm2d(widths[0]!),
      new ReLU(),
    );
    layers.push(this.stem);
    let inC = widths[0]!;
    widths.forEach((w, s) => {
      const stage = new ModuleList<BasicBlock>();
      for (let b = 0; b < ResNet32.blocksPerStage; b++) {
        stage.push(new BasicBlock(inC, w, b === 0 && s > 0 ? 2 : 1, generator));
        inC = w;
      }
      layers.push(stage);
      this.stages.push(stage);
    });
    this.fc = this.registerModule('fc', new Linear(inC, config.numClasses, { generator }));
  }

  forward(x: Tensor): Tensor {
    x = this.stem.forward(x);
    for (const stage of this.stages) for (const block of stage) x = block.forward(x);
    return this.fc.forward(globalAvgPool2d(x));
  }

  /**
   * Permutation spec (NeuronAlignment compute_model_alignment_resnet / align_models_resnet):
   *  - the residual stream carries one permutation from one projection shortcut to the next: the
   *    stem's group covers stage 1 (no projection there), and each block with a downsample starts
   *    a new stream group (stages 2 and 3). The stem's group is matched on the stem's output alone
   *    (the official code discards stage 1's summed matching); a projected stage's group on the sum
   *    of its blocks' output correlations;
   *  - a block's inner activation relu(bn1(conv1(x))) is a group of its own: conv1/bn1 rows and
   *    conv2's columns;
   *  - conv2/bn2 rows follow the stream group the block writes to; conv1's columns and a
   *    downsample conv's columns the stream group it reads; a downsample's conv and BN rows the
   *    new stream group.
   */
  override describePermutations(b: PermutationSpecBuilder): void {
    let stream = 'layers.0';
    b.group(stream, 'layers.0.0');
    b.rows(stream, 'layers.0.0').batchNorm(stream, 'layers.0.1');
    b.layer('layers.0', stream, ['layers.0.1']);
    let projected = false; // whether the current stream group began at a projection shortcut
    this.stages.forEach((stage, s) => {
      for (let i = 0; i < stage.length; i++) {
        const block = `layers.${s + 1}.${i}`;
        const reads = stream;
        if (stage.at(i).downsample) {
          stream = `${block}.downsample`;
          projected = true;
          b.group(stream, `${block}.downsample.0`);
          b.rows(stream, `${block}.downsample.0`).batchNorm(stream, `${block}.downsample.1`).cols(reads, `${block}.downsample.0`);
        }
        const inner = `${block}.bn1`;
        b.group(inner, `${block}.conv1`);
        b.cols(reads, `${block}.conv1`);
        b.rows(inner, `${block}.conv1`).batchNorm(inner, `${block}.bn1`).cols(inner, `${block}.conv2`);
        b.rows(stream, `${block}.conv2`).batchNorm(stream, `${block}.bn2`);
        b.layer(inner, inner, [`${block}.bn1`]);
        const shortcut = stage.at(i).downsample ? `${block}.downsample` : `${block}:input`;
        b.layer(block, stream, [`${block}.bn2`, shortcut], projected);
      }
    });
    b.cols(stream, 'fc');
  }
}
