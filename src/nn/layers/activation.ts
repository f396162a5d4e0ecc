// Stateless layers: ReLU, Flatten, Identity.
import { Tensor, flatten, relu } from '../../engine/index.js';
import { Module } from '../module.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** Flattens all axes from `startAxis` on (torch.nn.Flatten, default from axis 1). */
export class Flatten extends Module {
  constructor(readonly startAxis = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startAxis);
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
