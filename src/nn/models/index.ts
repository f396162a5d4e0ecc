// The model registry: every architecture by name, built from a ModelConfig. A model's loss
// (Module.lossAndLogits, when it is not plain cross-entropy) and its permutation symmetry
// (Module.describePermutations, read by src/align) live on its class, so adding an architecture
// is its file in this folder and one line in MODELS (docs/ARCHITECTURE.md, "Adding an
// architecture").
import { tidy, trimPool } from '../../engine/index.js';
import type { Module } from '../module.js';
import { defaultConfig, type ModelConfig } from './common.js';
import { GoogLeNet } from './googlenet.js';
import { MLP } from './mlp.js';
import { ResNet32 } from './resnet.js';
import { TinyTen } from './tinyten.js';
import { VGG16 } from './vgg.js';

export { defaultConfig, type ModelConfig } from './common.js';
export type { PermutationSpecBuilder } from './permutation.js';
export { GoogLeNet, MLP, ResNet32, TinyTen, VGG16 };

/** Hidden widths of the MLP when built by name (a 32x32 input flattened). */
export const MLP_HIDDEN = [512, 512];

/** Name -> constructor, in the order commands list them. */
const MODELS = {
  mlp: (c: ModelConfig) => new MLP({ inFeatures: c.inChannels * 32 * 32, hidden: MLP_HIDDEN.map((h) => Math.max(1, Math.round(h * c.width))), numClasses: c.numClasses, seed: c.seed }),
  tinyten: (c: ModelConfig) => new TinyTen(c),
  resnet32: (c: ModelConfig) => new ResNet32(c),
  googlenet: (c: ModelConfig) => new GoogLeNet(c),
  vgg16: (c: ModelConfig) => new VGG16(c),
} satisfies Record<string, (c: ModelConfig) => Module>;

export type ModelName = keyof typeof MODELS;
export const MODEL_NAMES = Object.keys(MODELS) as readonly ModelName[];

/**
 * Builds a model by name; the initialization's temporary tensors are freed (only parameters stay),
 * and so are the pool's free buffers, which would otherwise keep the sizes of the initialization's
 * temporaries (GoogLeNet's truncated normals: 280 MiB) beside the training step's.
 */
export function createModel(name: ModelName, config: Partial<ModelConfig> = {}): Module {
  const model = tidy(() => MODELS[name]({ ...defaultConfig, ...config }));
  trimPool();
  return model;
}
