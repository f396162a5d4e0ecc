// A multilayer perceptron: flatten, then Linear-ReLU pairs of the given hidden widths, then a
// Linear classifier. Names follow nn.Sequential: `layers.0.weight`, `layers.2.weight`, ...
import { Generator, Tensor, flatten } from '../../engine/index.js';
import { ReLU } from '../layers/activation.js';
import { Linear } from '../layers/linear.js';
import { Module, Sequential } from '../module.js';

export interface MLPConfig {
  inFeatures: number;
  hidden: number[];
  numClasses: number;
  seed: number;
}

export class MLP extends Module {
  readonly layers: Sequential;
  constructor(readonly config: MLPConfig) {
    super();
    const generator = new Generator(config.seed);
    const mods = [];
    let width = config.inFeatures;
    for (const h of config.hidden) {
      mods.push(new Linear(width, h, { generator }), new ReLU());
      width = h;
    }
    mods.push(new Linear(width, config.numClasses, { generator }));
    this.layers = this.registerModule('layers', new Sequential(...mods));
  }

  forward(x: Tensor): Tensor {
    return this.layers.forward(flatten(x, 1));
  }
}
