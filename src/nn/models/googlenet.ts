// GoogLeNet (Inception v1) for 32x32 inputs as NeuronAlignment models/inception.py builds it
// (about 10.24M parameters with the auxiliary heads): torchvision's GoogLeNet with conv1 7x7 at
// stride 1, maxpool1 and maxpool4 removed, batch norm (eps 1e-3) after every conv, two auxiliary
// heads (after inception4a and 4d) whose losses are weighted 0.3 in training, dropout 0.2.
//
//   conv1 7x7 64 -> conv2 1x1 64 -> conv3 3x3 192 -> maxpool 3/2 ceil (32 -> 16)
//   inception3a, 3b -> maxpool 3/2 ceil (16 -> 8) -> 4a [aux1] 4b 4c 4d [aux2] 4e -> 5a 5b
//   -> global average pool -> dropout 0.2 -> fc(1024, classes)
// An Inception block concatenates four branches along channels: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 (the
// "5x5" branch, a 3x3 kernel in torchvision); maxpool 3/1 -> 1x1.
// Weights: truncated normal N(0, 0.01^2) cut at 2 std (the base model's scipy.stats.truncnorm),
// linear biases PyTorch's default, BN weight 1 and bias 0.
import { Generator, Tensor, abs, concat, crossEntropy, flatten, gt, mulScalar, add, randn, relu, tidy, where } from '../../engine/index.js';
import type { WeightInit } from '../init.js';
import { BatchNorm2d } from '../layers/batchnorm.js';
import { Conv2d } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { Dropout } from '../layers/dropout.js';
import { AdaptiveAvgPool2d, MaxPool2d } from '../layers/pool.js';
import { Module, ModuleList } from '../module.js';
import { scaled, type ModelConfig } from './common.js';
import type { PermutationSpecBuilder } from './permutation.js';

/**
 * N(0, std^2) truncated to +-2 std: entries outside are redrawn twice, then clamped (after three
 * draws about 1e-4 of entries would still be outside; clamping them changes the variance by <1e-5).
 */
const truncatedNormal = (std: number): WeightInit => (shape, generator) =>
  // Its own scope, so each weight's dozen temporaries are freed (and their buffers reused) before
  // the next weight is drawn: inside createModel's one scope they made GoogLeNet's pool 600 MiB.
  tidy(() => {
    let z = randn(shape, 0, 1, { generator });
    for (let i = 0; i < 2; i++) z = where(gt(abs(z), 2), randn(shape, 0, 1, { generator }), z);
    return mulScalar(where(gt(z, 2), 2, where(gt(mulScalar(z, -1), 2), -2, z)), std);
  });
const inceptionInit = truncatedNormal(0.01);

/** conv (no bias) -> BN (eps 1e-3) -> ReLU; names conv.*, bn.* */
export class BasicConv2d extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, kernel: number, padding: number, generator: Generator) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(inC, outC, kernel, { padding, bias: false, generator, weightInit: inceptionInit }));
    this.bn = this.registerModule('bn', new BatchNorm2d(outC, { eps: 1e-3 }));
  }
  forward(x: Tensor): Tensor {
    return this.bn.forwardRelu(this.conv.forward(x));
  }
}

export class Inception extends Module {
  readonly branch1: BasicConv2d;
  readonly branch2: ModuleList<BasicConv2d>;
  readonly branch3: ModuleList<BasicConv2d>;
  readonly branch4: BasicConv2d;
  private readonly branch4Pool = new MaxPool2d(3, { stride: 1, padding: 1, ceilMode: true });
  readonly outChannels: number;
  constructor(inC: number, c1: number, c3red: number, c3: number, c5red: number, c5: number, poolProj: number, generator: Generator) {
    super();
    this.branch1 = this.registerModule('branch1', new BasicConv2d(inC, c1, 1, 0, generator));
    this.branch2 = this.registerModule('branch2', new ModuleList([new BasicConv2d(inC, c3red, 1, 0, generator), new BasicConv2d(c3red, c3, 3, 1, generator)]));
    this.branch3 = this.registerModule('branch3', new ModuleList([new BasicConv2d(inC, c5red, 1, 0, generator), new BasicConv2d(c5red, c5, 3, 1, generator)]));
    this.branch4 = this.registerModule('branch4', new BasicConv2d(inC, poolProj, 1, 0, generator));
    this.outChannels = c1 + c3 + c5 + poolProj;
  }
  forward(x: Tensor): Tensor {
    return concat(
      [
        this.branch1.forward(x),
        this.branch2.at(1).forward(this.branch2.at(0).forward(x)),
        this.branch3.at(1).forward(this.branch3.at(0).forward(x)),
        this.branch4.forward(this.branch4Pool.forward(x)),
      ],
      1,
    );
  }
}

/** Auxiliary classifier: adaptive average pool to 4x4, 1x1 conv 128, fc1 2048 -> 1024, ReLU, dropout 0.7, fc2. */
export class InceptionAux extends Module {
  readonly conv: BasicConv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly pool = new AdaptiveAvgPool2d(4);
  private readonly dropout: Dropout;
  constructor(inC: number, numClasses: number, width: number, generator: Generator) {
    super();
    const c = scaled(128, width);
    const hidden = scaled(1024, width);
    this.conv = this.registerModule('conv', new BasicConv2d(inC, c, 1, 0, generator));
    this.fc1 = this.registerModule('fc1', new Linear(c * 16, hidden, { generator, weightInit: inceptionInit }));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, numClasses, { generator, weightInit: inceptionInit }));
    this.dropout = this.registerModule('dropout', new Dropout(0.7, generator));
  }
  forward(x: Tensor): Tensor {
    const h = relu(this.fc1.forward(flatten(this.conv.forward(this.pool.forward(x)), 1)));
    return this.fc2.forward(this.dropout.forward(h));
  }
}

/** [in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj] per block, as torchvision. */
const BLOCKS: Record<string, number[]> = {
  inception3a: [64, 96, 128, 16, 32, 32],
  inception3b: [128, 128, 192, 32, 96, 64],
  inception4a: [192, 96, 208, 16, 48, 64],
  inception4b: [160, 112, 224, 24, 64, 64],
  inception4c: [128, 128, 256, 24, 64, 64],
  inception4d: [112, 144, 288, 32, 64, 64],
  inception4e: [256, 160, 320, 32, 128, 128],
  inception5a: [256, 160, 320, 32, 128, 128],
  inception5b: [384, 192, 384, 48, 128, 128],
};

export interface GoogLeNetOutputs {
  logits: Tensor;
  aux1: Tensor | null;
  aux2: Tensor | null;
}

export class GoogLeNet extends Module {
  /** Weight of each auxiliary head's loss in training (torchvision / the official training script). */
  static readonly auxWeight = 0.3;
  /** The block whose output each auxiliary head reads. */
  static readonly auxInputs = { aux1: 'inception4a', aux2: 'inception4d' } as const;
  readonly blocks = new Map<string, Inception>();
  readonly aux1: InceptionAux;
  readonly aux2: InceptionAux;
  readonly fc: Linear;
  private readonly stem: BasicConv2d[];
  private readonly pool = new MaxPool2d(3, { stride: 2, ceilMode: true });
  private readonly avgpool = new AdaptiveAvgPool2d(1);
  private readonly dropout: Dropout;

  constructor(readonly config: ModelConfig) {
    super();
    const generator = new Generator(config.seed);
    const s = (c: number) => scaled(c, config.width);
    this.stem = [
      this.registerModule('conv1', new BasicConv2d(config.inChannels, s(64), 7, 3, generator)),
      this.registerModule('conv2', new BasicConv2d(s(64), s(64), 1, 0, generator)),
      this.registerModule('conv3', new BasicConv2d(s(64), s(192), 3, 1, generator)),
    ];
    let inC = s(192);
    const auxIn: Record<string, number> = {};
    for (const [name, cs] of Object.entries(BLOCKS)) {
      const [c1, c3r, c3, c5r, c5, pp] = cs.map(s) as [number, number, number, number, number, number];
      const block = this.registerModule(name, new Inception(inC, c1, c3r, c3, c5r, c5, pp, generator));
      this.blocks.set(name, block);
      inC = block.outChannels;
      auxIn[name] = inC;
    }
    // Registered after the blocks: torchvision's state_dict order puts aux1, aux2 before fc.
    const { aux1, aux2 } = GoogLeNet.auxInputs;
    this.aux1 = this.registerModule('aux1', new InceptionAux(auxIn[aux1]!, config.numClasses, config.width, generator));
    this.aux2 = this.registerModule('aux2', new InceptionAux(auxIn[aux2]!, config.numClasses, config.width, generator));
    this.dropout = this.registerModule('dropout', new Dropout(0.2, generator));
    this.fc = this.registerModule('fc', new Linear(inC, config.numClasses, { generator, weightInit: inceptionInit }));
  }

  /** Logits, and in training mode the two auxiliary heads' logits. */
  forwardWithAux(x: Tensor): GoogLeNetOutputs {
    for (const conv of this.stem) x = conv.forward(x);
    x = this.pool.forward(x); // maxpool2: 32 -> 16
    let aux1: Tensor | null = null;
    let aux2: Tensor | null = null;
    for (const [name, block] of this.blocks) {
      if (name === 'inception4a') x = this.pool.forward(x); // maxpool3: 16 -> 8
      x = block.forward(x);
      if (this.training && name === GoogLeNet.auxInputs.aux1) aux1 = this.aux1.forward(x);
      if (this.training && name === GoogLeNet.auxInputs.aux2) aux2 = this.aux2.forward(x);
    }
    const logits = this.fc.forward(this.dropout.forward(flatten(this.avgpool.forward(x), 1)));
    return { logits, aux1, aux2 };
  }

  forward(x: Tensor): Tensor {
    return this.forwardWithAux(x).logits;
  }

  /** The training loss CE(main) + 0.3 (CE(aux1) + CE(aux2)) (plain CE in eval mode), and the main logits. */
  override lossAndLogits(x: Tensor, labels: Tensor): { loss: Tensor; logits: Tensor } {
    const { logits, aux1, aux2 } = this.forwardWithAux(x);
    let loss = crossEntropy(logits, labels);
    if (aux1 && aux2) loss = add(loss, mulScalar(add(crossEntropy(aux1, labels), crossEntropy(aux2, labels)), GoogLeNet.auxWeight));
    return { loss, logits };
  }

  /**
   * The permutation spec (NeuronAlignment models/inception.py align_inception): every conv -> BN -> ReLU unit
   * is a group (stem convs, each Inception branch conv, each auxiliary conv), as is each auxiliary
   * fc1. An Inception block's output is the concatenation of its four branches, so its permutation
   * is the concatenation of the branch permutations, each at its channel offset; the next block's
   * four entry convs (the pool branch too: max pooling acts per channel), an auxiliary conv or the
   * final fc read it. An auxiliary head pools to 4x4 before fc1, so its conv's channel c owns fc1
   * columns c*16 .. c*16 + 15.
   */
  override describePermutations(b: PermutationSpecBuilder): void {
    /** A conv -> BN -> ReLU unit named `unit` (conv at unit.conv, BN at unit.bn). */
    const convUnit = (unit: string) => {
      b.group(unit, `${unit}.conv`);
      b.rows(unit, `${unit}.conv`).batchNorm(unit, `${unit}.bn`);
      b.layer(unit, unit, [`${unit}.bn`]);
      return b.dim(`${unit}.conv.weight`);
    };
    /** The groups making up the current feature map's channels, with their channel offsets. */
    let input: { group: string; offset: number }[] = [];
    const readInput = (module: string, inner = 1) => {
      for (const seg of input) b.cols(seg.group, module, seg.offset * inner, inner);
    };
    const auxHead = (aux: string) => {
      readInput(`${aux}.conv.conv`);
      const channels = convUnit(`${aux}.conv`);
      const inner = b.dim(`${aux}.fc1.weight`, 1) / channels;
      if (!Number.isInteger(inner)) throw new Error(`googlenet spec: ${aux}.fc1 has ${b.dim(`${aux}.fc1.weight`, 1)} inputs for ${channels} channels`);
      b.cols(`${aux}.conv`, `${aux}.fc1`, 0, inner);
      b.group(`${aux}.fc1`, `${aux}.fc1`);
      b.rows(`${aux}.fc1`, `${aux}.fc1`).cols(`${aux}.fc1`, `${aux}.fc2`);
      b.layer(`${aux}.fc1`, `${aux}.fc1`, [`${aux}.fc1`]);
    };

    for (const [unit, next] of [['conv1', 'conv2'], ['conv2', 'conv3']] as const) {
      convUnit(unit);
      b.cols(unit, `${next}.conv`);
    }
    convUnit('conv3');
    input = [{ group: 'conv3', offset: 0 }];
    for (const name of this.blocks.keys()) {
      const entries = ['branch1', 'branch2.0', 'branch3.0', 'branch4'];
      for (const e of entries) readInput(`${name}.${e}.conv`);
      for (const [reduce, conv] of [['branch2.0', 'branch2.1'], ['branch3.0', 'branch3.1']] as const) {
        convUnit(`${name}.${reduce}`);
        b.cols(`${name}.${reduce}`, `${name}.${conv}.conv`);
      }
      let offset = 0;
      input = [];
      for (const out of ['branch1', 'branch2.1', 'branch3.1', 'branch4']) {
        const group = `${name}.${out}`;
        input.push({ group, offset });
        offset += convUnit(group);
      }
      for (const [aux, after] of Object.entries(GoogLeNet.auxInputs)) {
        if (after === name) {
          auxHead(aux);
          b.auxiliary.push({ module: aux, input: name });
        }
      }
    }
    readInput('fc'); // global average pool to 1x1: one column per channel
  }
}
