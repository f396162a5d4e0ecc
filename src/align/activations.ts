// The alignable activations of a network on one batch, read with forward hooks: the modules a
// spec's layers name are wrapped for the duration of one forward so their outputs (or inputs)
// are captured, and each layer's pre-activation is the sum of its terms (spec.ts, AlignedLayer).
// The post-activation, the paper's default (NeuronAlignment get_activations, pre_act=False), is
// its ReLU: every alignable unit of these architectures is followed by one.
import { Tensor, add, clone, keep, noGrad, relu } from '../engine/index.js';
import { BatchNorm } from '../nn/layers/batchnorm.js';
import { copyInto, type Module } from '../nn/module.js';
import type { PermutationSpec } from './spec.js';

export interface ActivationOptions {
  /** The BN output before the ReLU instead of the post-activation. */
  preActivation?: boolean;
}

const INPUT_SUFFIX = ':input';

/**
 * Runs `model.forward(x)` (then any auxiliary head the forward skipped) and returns each layer's
 * activation by layer name. The model runs in whatever mode its modules are in; the returned
 * tensors belong to the caller's scope.
 */
export function collectActivations(model: Module, spec: PermutationSpec, x: Tensor, opts: ActivationOptions = {}): Map<string, Tensor> {
  const modules = new Map(model.namedModules());
  const module = (name: string) => {
    const m = modules.get(name);
    if (!m) throw new Error(`${spec.architecture}: no module '${name}' to read an activation from`);
    return m;
  };
  // What to capture from each module: its output, its first input, or both.
  const wanted = new Map<string, { output: boolean; input: boolean }>();
  const want = (term: string) => {
    const isInput = term.endsWith(INPUT_SUFFIX);
    const name = isInput ? term.slice(0, -INPUT_SUFFIX.length) : term;
    const w = wanted.get(name) ?? { output: false, input: false };
    if (isInput) w.input = true;
    else w.output = true;
    wanted.set(name, w);
  };
  for (const layer of spec.layers) for (const t of layer.terms) want(t);
  for (const aux of spec.auxiliary) want(aux.input);

  const captured = new Map<string, Tensor>();
  const hooked: Module[] = [];
  try {
    for (const [name, w] of wanted) {
      const m = module(name);
      const forward = m.forward;
      // An own property shadows the class's method until it is deleted below.
      m.forward = (input: Tensor, ...rest: unknown[]): Tensor => {
        const out = forward.call(m, input, ...rest);
        if (w.input) captured.set(name + INPUT_SUFFIX, input);
        if (w.output) captured.set(name, out);
        return out;
      };
      hooked.push(m);
    }
    model.forward(x);
    for (const aux of spec.auxiliary) {
      const input = captured.get(aux.input);
      if (!input) throw new Error(`${spec.architecture}: the forward did not run '${aux.input}'`);
      const missing = spec.layers.some((l) => l.name.startsWith(`${aux.module}.`) && l.terms.some((t) => !captured.has(t)));
      if (missing) module(aux.module).forward(input);
    }
  } finally {
    for (const m of hooked) delete (m as { forward?: unknown }).forward;
  }

  const out = new Map<string, Tensor>();
  for (const layer of spec.layers) {
    let pre: Tensor | null = null;
    for (const term of layer.terms) {
      const t = captured.get(term);
      if (!t) throw new Error(`${spec.architecture}: the forward did not produce '${term}' (layer '${layer.name}')`);
      pre = pre ? add(pre, t) : t;
    }
    out.set(layer.name, opts.preActivation ? pre! : relu(pre!));
  }
  return out;
}

/**
 * Runs `fn` with the model in evaluation mode (dropout off), its batch norms using batch
 * statistics when `batchStatistics` is set, and restores every module's mode and every running
 * statistic afterwards (a training-mode BN forward updates them).
 */
export async function withAlignmentMode<T>(models: Module[], batchStatistics: boolean, fn: () => Promise<T>): Promise<T> {
  const modes: [Module, boolean][] = [];
  const saved: [Tensor, Tensor][] = [];
  for (const model of models) {
    for (const [, m] of model.namedModules()) {
      modes.push([m, m.training]);
      m.training = batchStatistics && m instanceof BatchNorm;
    }
    if (batchStatistics) {
      for (const [, t] of model.namedBuffers()) saved.push([t, keepCopy(t)]);
    }
  }
  try {
    return await fn();
  } finally {
    for (const [m, mode] of modes) m.training = mode;
    for (const [t, copy] of saved) {
      copyInto(t, copy);
      copy.dispose();
    }
  }
}

function keepCopy(t: Tensor): Tensor {
  return keep(noGrad(() => clone(t)));
}
