// Weight initializations as torch.nn.init defines them, drawn from the engine's seeded
// counter-based generator (so a model's initial weights depend only on its seed).
//
// fan_in and fan_out of a weight [out, in, k...] are in * prod(k) and out * prod(k).
//   xavierNormal:    N(0, gain^2 * 2 / (fan_in + fan_out))
//   kaimingNormal:   N(0, 2 / fan_in)                       (ReLU gain, fan_in mode)
//   pytorchDefault:  U(-1/sqrt(fan_in), 1/sqrt(fan_in))      what nn.Linear and nn.Conv2d use
//                    (kaiming_uniform with a = sqrt(5)); their bias uses the same bound.
import { Generator, Tensor, full, rand, randn, type Shape } from '../engine/index.js';

/** How a layer draws its weight: given the shape and the model's generator. */
export type WeightInit = (shape: Shape, generator: Generator) => Tensor;

export function fans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fan of a tensor of shape [${shape.join(', ')}] is undefined`);
  const receptive = shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export function xavierNormal(shape: Shape, generator: Generator, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(shape);
  return randn(shape, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), { generator });
}

/** kaiming_normal_(mode='fan_in' | 'fan_out', nonlinearity='relu'): N(0, 2 / fan). */
export function kaimingNormal(shape: Shape, generator: Generator, mode: 'fanIn' | 'fanOut' = 'fanIn'): Tensor {
  return randn(shape, 0, Math.sqrt(2 / fans(shape)[mode]), { generator });
}

/** nn.Linear / nn.Conv2d's default weight init, or its bias init when given the weight's fan_in. */
export function pytorchDefault(shape: Shape, generator: Generator, fanIn = fans(shape).fanIn): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return rand(shape, -bound, bound, { generator });
}

export const constant = (shape: Shape, value: number): Tensor => full(shape, value);
