// The model zoo: each architecture by name, built from a ModelConfig.
import { tidy } from '../../engine/index.js';
import type { Module } from '../module.js';
import { defaultConfig, type ModelConfig } from './common.js';
import { GoogLeNet } from './googlenet.js';
import { MLP } from './mlp.js';
import { ResNet32 } from './resnet.js';
import { TinyTen } from './tinyten.js';
import { VGG16 } from './vgg.js';

export { defaultConfig, type ModelConfig } from './common.js';
export { GoogLeNet, MLP, ResNet32, TinyTen, VGG16 };

export const MODEL_NAMES = ['mlp', 'tinyten', 'resnet32', 'googlenet', 'vgg16'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Hidden widths of the MLP when built by name (a 32x32 input flattened). */
export const MLP_HIDDEN = [512, 512];

/** Builds a model by name; the initialization's temporary tensors are freed (only parameters stay). */
export function createModel(name: ModelName, config: Partial<ModelConfig> = {}): Module {
  return tidy(() => construct(name, { ...defaultConfig, ...config }));
}

function construct(name: ModelName, c: ModelConfig): Module {
  switch (name) {
    case 'mlp':
      return new MLP({ inFeatures: c.inChannels * 32 * 32, hidden: MLP_HIDDEN.map((h) => Math.max(1, Math.round(h * c.width))), numClasses: c.numClasses, seed: c.seed });
    case 'tinyten':
      return new TinyTen(c);
    case 'resnet32':
      return new ResNet32(c);
    case 'googlenet':
      return new GoogLeNet(c);
    case 'vgg16':
      return new VGG16(c);
  }
}
