// One permutation spec per architecture (spec.ts), built from a model instance so every size
// comes from its parameters (any width, input channels or classes). Groups are named after the
// module whose output units they are. Input channels and the classifier's rows (the logits) are
// never permuted (NeuronAlignment align_weights_head/tail).
import { GoogLeNet } from '../nn/models/googlenet.js';
import { MLP } from '../nn/models/mlp.js';
import { ResNet32 } from '../nn/models/resnet.js';
import { TinyTen } from '../nn/models/tinyten.js';
import { VGG16 } from '../nn/models/vgg.js';
import type { Module } from '../nn/module.js';
import { SpecBuilder, type PermutationSpec } from './spec.js';

/** The spec of `model`'s architecture (MLP, TinyTen, VGG16, ResNet32 or GoogLeNet). */
export function permutationSpec(model: Module): PermutationSpec {
  if (model instanceof MLP) return mlpSpec(model);
  if (model instanceof TinyTen) return tinyTenSpec(model);
  if (model instanceof VGG16) return vgg16Spec(model);
  if (model instanceof ResNet32) return resnet32Spec(model);
  if (model instanceof GoogLeNet) return googLeNetSpec(model);
  throw new Error(`no permutation spec for ${model.constructor.name}`);
}

/** Linear-ReLU pairs at layers.0, 2, 4, ...; the last Linear is the classifier. */
export function mlpSpec(model: MLP): PermutationSpec {
  const b = new SpecBuilder('mlp', model.stateDict());
  const hidden = model.config.hidden.length;
  for (let i = 0; i < hidden; i++) {
    const name = `layers.${2 * i}`;
    b.group(name, name);
    b.rows(name, name).cols(name, `layers.${2 * i + 2}`);
    b.layer(name, name, [name]); // pre-activation: the Linear's output
  }
  return b.build();
}

/** Eight conv -> BN -> ReLU blocks, global average pool, dense. */
export function tinyTenSpec(model: TinyTen): PermutationSpec {
  const b = new SpecBuilder('tinyten', model.stateDict());
  const n = model.layers.length;
  for (let i = 0; i < n; i++) {
    const name = `layers.${i}`;
    b.group(name, `${name}.conv`);
    b.rows(name, `${name}.conv`).batchNorm(name, `${name}.bn`);
    // Global average pooling keeps channels one to one, so dense's columns are channels.
    b.cols(name, i + 1 < n ? `layers.${i + 1}.conv` : 'dense');
    b.layer(name, name, [`${name}.bn`]);
  }
  return b.build();
}

/**
 * Thirteen conv -> BN -> ReLU (-> max pool) layers, then classifier.1 and .4 (Linear-ReLU) and
 * classifier.6 (logits). classifier.1 reads the flattened last feature map [C, H, W] (1x1 for
 * 32x32 inputs), so each channel owns H*W consecutive columns.
 */
export function vgg16Spec(model: VGG16): PermutationSpec {
  const b = new SpecBuilder('vgg16', model.stateDict());
  const convs: [conv: string, bn: string][] = [];
  [...model.layerBlocks].forEach((block, bi) => {
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
  return b.build();
}

/**
 * ResNet32 (NeuronAlignment compute_model_alignment_resnet / align_models_resnet):
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
export function resnet32Spec(model: ResNet32): PermutationSpec {
  const b = new SpecBuilder('resnet32', model.stateDict());
  let stream = 'layers.0';
  b.group(stream, 'layers.0.0');
  b.rows(stream, 'layers.0.0').batchNorm(stream, 'layers.0.1');
  b.layer('layers.0', stream, ['layers.0.1']);
  let projected = false; // whether the current stream group began at a projection shortcut
  model.stages.forEach((stage, s) => {
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
  return b.build();
}

/** Which block's output each auxiliary head reads (GoogLeNet.forwardWithAux). */
const AUX_INPUTS = { aux1: 'inception4a', aux2: 'inception4d' } as const;

/**
 * GoogLeNet (NeuronAlignment models/inception.py align_inception): every conv -> BN -> ReLU unit
 * is a group (stem convs, each Inception branch conv, each auxiliary conv), as is each auxiliary
 * fc1. An Inception block's output is the concatenation of its four branches, so its permutation
 * is the concatenation of the branch permutations, each at its channel offset; the next block's
 * four entry convs (the pool branch too: max pooling acts per channel), an auxiliary conv or the
 * final fc read it. An auxiliary head pools to 4x4 before fc1, so its conv's channel c owns fc1
 * columns c*16 .. c*16 + 15.
 */
export function googLeNetSpec(model: GoogLeNet): PermutationSpec {
  const b = new SpecBuilder('googlenet', model.stateDict());
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
  for (const name of model.blocks.keys()) {
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
    for (const [aux, after] of Object.entries(AUX_INPUTS)) {
      if (after === name) {
        auxHead(aux);
        b.auxiliary.push({ module: aux, input: name });
      }
    }
  }
  readInput('fc'); // global average pool to 1x1: one column per channel
  return b.build();
}
