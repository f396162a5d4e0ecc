// The permutation spec of a model, built from what the model says about its own hidden units
// (Module.describePermutations, written beside each architecture in src/nn/models) by
// spec.ts's SpecBuilder, which reads every size from the model's parameters (any width, input
// channels or classes) and validates the result. Groups are named after the module whose output
// units they are. Input channels and the classifier's rows (the logits) are never permuted
// (NeuronAlignment align_weights_head/tail).
import type { Module } from '../nn/module.js';
import { SpecBuilder, type PermutationSpec } from './spec.js';

/** The spec of `model`'s architecture (any model that implements describePermutations). */
export function permutationSpec(model: Module): PermutationSpec {
  const architecture = model.constructor.name;
  if (!model.describePermutations) throw new Error(`no permutation spec for ${architecture}`);
  const b = new SpecBuilder(architecture, model.stateDict());
  model.describePermutations(b);
  return b.build();
}
