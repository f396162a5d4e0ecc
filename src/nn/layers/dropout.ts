// The dropout layer (torch.nn.Dropout) over engine/ops/dropout.ts. Its mask comes from a seeded
// Generator the layer holds, whose offset a checkpoint saves (nn/checkpoint/model.ts).
import { Generator, Tensor, dropout } from '../../engine/index.js';
import { Module } from '../module.js';

/** Inverted dropout with a seeded mask; identity in eval mode. */
export class Dropout extends Module {
  constructor(
    readonly p: number,
    readonly generator: Generator,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, { training: this.training, generator: this.generator });
  }
}
