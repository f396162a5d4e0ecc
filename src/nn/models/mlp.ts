// A multilayer perceptron: flatten, then Linear-ReLU pairs of the given hidden widths, then a
// Linear classifier. Names follow nn.Sequential: `layers.0.weight`, `layers.2.weight`, ...
import { Generator, Tensor, flatten } from '../../engine/index.js';
import { ReLU } from '../layers/activation.js';
import { Linear } from '../layers/linear.js';
import { Module, Sequential } from '../module.js';
import type { PermutationSpecBuilder } from './permutation.js';

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

  /** Permutation spec: one group per hidden Linear (layers.0, 2, 4, ...); the last Linear is the classifier. */
  override describePermutations(b: PermutationSpecBuilder): void {
    const hidden = this.config.hidden.length;
    for (let i = 0; i < hidden; i++) {
      const name = `layers.${2 * i}`;
      b.group(name, name);
      b.rows(name, name).cols(name, `layers.${2 * i + 2}`);
      b.layer(name, name, [name]); // pre-activation: the Linear's output
    }
  }
}
