// Module: PyTorch's nn.Module in miniature. A module owns named parameters (trainable tensors),
// named buffers (state such as batch-norm running statistics) and named child modules, so every
// tensor has a dotted name (`layers.3.bn.running_var`) that maps one to one onto a PyTorch
// state dict of the same architecture. Parameters and buffers are kept tensors (no scope frees
// them); optimizers update them in place, so a module's tensors keep their identity.
import { Tensor, keep, noGrad, runtime, sameShape } from '../engine/index.js';
import type { PermutationSpecBuilder } from './models/permutation.js';

export type StateDict = Map<string, Tensor>;

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();
  /** Parameters substituted for this module's own during withParameters (by own name). */
  private readonly overrides = new Map<string, Tensor>();

  abstract forward(x: Tensor, ...rest: unknown[]): Tensor;

  /**
   * The training loss and the logits that score accuracy, for a model whose loss is not
   * cross-entropy of forward's logits (GoogLeNet adds its auxiliary heads); nn/train.ts's
   * lossAndLogits uses it when present.
   */
  lossAndLogits?(x: Tensor, labels: Tensor): { loss: Tensor; logits: Tensor };

  /**
   * For an architecture the paper aligns: describes its interchangeable hidden units to `b`
   * (models/permutation.ts); src/align's permutationSpec builds the spec from it.
   */
  describePermutations?(b: PermutationSpecBuilder): void;

  /** Registers a trainable tensor (made to require gradients and kept). */
  protected registerParameter(name: string, t: Tensor): Tensor {
    keep(t).requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  /** Registers a non-trainable state tensor (kept, no gradient). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    keep(t);
    this.buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** This module's own parameter or buffer `name` (throws when absent). */
  protected tensor(name: string): Tensor {
    const t = this.overrides.get(name) ?? this.params.get(name) ?? this.buffers.get(name);
    if (!t) throw new Error(`${this.constructor.name} has no parameter or buffer '${name}'`);
    return t;
  }

  /** This module's own parameter `name`, or undefined (an optional bias). */
  protected optionalParameter(name: string): Tensor | undefined {
    return this.overrides.get(name) ?? this.params.get(name);
  }

  /**
   * Runs `fn` with some parameters replaced by other tensors, given by dotted name (as
   * torch.func.functional_call): the forward pass then computes with those tensors, and backward
   * sends their gradients to whatever they were computed from. This is how a curve's network at
   * t runs on w(t) = sum_k c_k(t) w_k (src/align/curve.ts) without copying into the module. Every
   * name must be a parameter of the tree, with its shape; the module's own tensors are untouched.
   */
  withParameters<T>(params: ReadonlyMap<string, Tensor>, fn: () => T): T {
    const owners: Module[] = [];
    let matched = 0;
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, own] of m.params) {
        const t = params.get(join(prefix, name));
        if (!t) continue;
        if (!sameShape(t.shape, own.shape)) {
          throw new Error(`withParameters: '${join(prefix, name)}' is [${t.shape.join(', ')}], the parameter [${own.shape.join(', ')}]`);
        }
        m.overrides.set(name, t);
        matched++;
      }
      owners.push(m);
    }
    try {
      if (matched !== params.size) {
        const names = new Set(this.namedParameters().map(([n]) => n));
        throw new Error(`withParameters: '${[...params.keys()].find((k) => !names.has(k))}' is not a parameter of ${this.constructor.name}`);
      }
      return fn();
    } finally {
      for (const m of owners) m.overrides.clear();
    }
  }

  protected child<M extends Module>(name: string): M {
    const m = this.children.get(name);
    if (!m) throw new Error(`${this.constructor.name} has no submodule '${name}'`);
    return m as M;
  }

  /** Child modules with their names, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** Every module in the tree (this one first), with dotted names. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this.children) out.push(...m.namedModules(join(prefix, name)));
    return out;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [moduleName, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.params) out.push([join(moduleName, name), t]);
    }
    return out;
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [moduleName, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.buffers) out.push([join(moduleName, name), t]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /**
   * Parameters and buffers by dotted name, in PyTorch's state_dict order (each module's own
   * parameters, then its buffers, then its children). The tensors are the module's own (no copy).
   */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = new Map();
    for (const [name, t] of this.params) out.set(join(prefix, name), t);
    for (const [name, t] of this.buffers) out.set(join(prefix, name), t);
    for (const [name, m] of this.children) for (const [k, t] of m.stateDict(join(prefix, name))) out.set(k, t);
    return out;
  }

  /**
   * Copies every tensor of `state` into this module's tensor of the same name (on the GPU). Checks
   * that the names match both ways, and each shape and dtype, naming the first tensor that differs.
   */
  loadStateDict(state: StateDict): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const extra = [...state.keys()].filter((k) => !own.has(k));
    if (missing.length) throw new Error(`state dict lacks ${missing.length} tensor(s), first '${missing[0]}'`);
    if (extra.length) throw new Error(`state dict has ${extra.length} unexpected tensor(s), first '${extra[0]}'`);
    for (const [name, dst] of own) {
      const src = state.get(name)!;
      if (src.dtype !== dst.dtype || !sameShape(src.shape, dst.shape)) {
        throw new Error(`'${name}': expected ${dst.dtype}[${dst.shape.join(', ')}], got ${src.dtype}[${src.shape.join(', ')}]`);
      }
    }
    noGrad(() => {
      for (const [name, dst] of own) copyInto(dst, state.get(name)!);
    });
  }

  /** Training mode (batch statistics, dropout on) or evaluation mode, for the whole tree. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter, buffer and gradient of the tree. */
  dispose(): void {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** dst <- src, element for element (same size and dtype), as a recorded GPU copy. */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size || dst.dtype !== src.dtype) throw new Error('copyInto: size or dtype differs');
  if (dst.size > 0) runtime().stream.copy(src.buffer, 0, dst.buffer, 0, dst.bytes);
}

/** Runs children in order (nn.Sequential); children are named '0', '1', ... */
export class Sequential extends Module {
  private readonly order: Module[];
  constructor(...modules: Module[]) {
    super();
    this.order = modules.map((m, i) => this.registerModule(String(i), m));
  }
  forward(x: Tensor): Tensor {
    for (const m of this.order) x = m.forward(x);
    return x;
  }
  get length(): number {
    return this.order.length;
  }
  at(i: number): Module {
    return this.order[i]!;
  }
}

/** A list of modules named '0', '1', ... with no forward of its own (nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.push(m);
  }
  push(m: M): void {
    this.items.push(this.registerModule(String(this.items.length), m));
  }
  forward(): Tensor {
    throw new Error('ModuleList has no forward; iterate over it');
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    return this.items[i]!;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
