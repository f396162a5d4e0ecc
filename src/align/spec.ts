// Permutation specs: which parameter axes share one permutation of hidden units
// (docs/ARCHITECTURE.md, "Permutation specs"). A spec is plain data read by every part of the
// paper's pipeline: activation statistics (which activations to correlate), matching (which
// correlation matrices define a group's permutation), permutation application, and later PAM.
//
// A group is a set of interchangeable hidden units: a conv's output channels (with its bias, its
// BN's weight, bias and running statistics) and the next layer's input channels. Permuting every
// member axis of a group by the same permutation leaves the network's function unchanged.
//
// A layer is one alignable activation: the tensor whose units belong to a group and whose
// cross-correlation between two networks is measured. Most groups have one layer; a ResNet's
// residual stream (one group per stage) has several, and its matching maximizes their summed
// correlation (NeuronAlignment compute_model_alignment_resnet).
import type { PermutationSpecBuilder } from '../nn/models/permutation.js';
import type { StateDict } from '../nn/module.js';

/** One axis of one parameter (or buffer) that a group permutes. */
export interface AxisMember {
  /** Dotted state-dict name, e.g. 'layers.0.conv.weight'. */
  param: string;
  /** 0 for a layer's own units (rows, bias, BN vectors), 1 for the next layer's inputs. */
  axis: number;
  /**
   * Where the group's units sit along the axis: unit u covers positions
   * offset + u * inner + p for p in [0, inner). Defaults 0 and 1. `offset` places a branch inside
   * a concatenation (GoogLeNet); `inner` > 1 is a flattened [C, H, W] input of a linear layer,
   * where channel c covers columns c * H * W .. c * H * W + H * W - 1.
   */
  offset?: number;
  inner?: number;
}

export interface PermutationGroup {
  name: string;
  /** Number of units (the permutation's length). */
  size: number;
  members: AxisMember[];
  /** Layers whose correlation matrices, summed, define the group's matching. */
  solveFrom: string[];
}

export interface AlignedLayer {
  /** Usually the name of the module whose output it is. */
  name: string;
  /** The group its units belong to (layer size = group size). */
  group: string;
  /**
   * The pre-activation is the sum of these module outputs; 'name:input' is the first input of
   * module `name` (an identity shortcut). The post-activation, the alignment default, is its ReLU.
   */
  terms: string[];
}

/** A module run on another module's output after the forward, when the forward skipped it. */
export interface AuxiliaryForward {
  module: string;
  input: string;
}

export interface PermutationSpec {
  architecture: string;
  groups: PermutationGroup[];
  /** Every alignable activation, in forward order. */
  layers: AlignedLayer[];
  /** GoogLeNet's auxiliary heads, which run only in training mode. */
  auxiliary: AuxiliaryForward[];
}

/**
 * Assembles a spec from a state dict, reading every size from a parameter's shape. A model
 * describes itself to it through Module.describePermutations (the interface lives in src/nn so
 * models need not import this folder).
 */
export class SpecBuilder implements PermutationSpecBuilder {
  readonly groups: PermutationGroup[] = [];
  readonly layers: AlignedLayer[] = [];
  readonly auxiliary: AuxiliaryForward[] = [];
  private readonly byName = new Map<string, PermutationGroup>();

  constructor(
    readonly architecture: string,
    readonly state: StateDict,
  ) {}

  /** Length of axis `axis` of parameter `param`. */
  dim(param: string, axis = 0): number {
    const t = this.state.get(param);
    if (!t) throw new Error(`${this.architecture} spec: no parameter '${param}'`);
    const d = t.shape[axis];
    if (d === undefined) throw new Error(`${this.architecture} spec: '${param}' has no axis ${axis}`);
    return d;
  }

  has(param: string): boolean {
    return this.state.has(param);
  }

  /** A new group whose units are the rows of `${module}.weight` (axis 0). */
  group(name: string, module: string): PermutationGroup {
    if (this.byName.has(name)) throw new Error(`${this.architecture} spec: group '${name}' twice`);
    const g: PermutationGroup = { name, size: this.dim(`${module}.weight`), members: [], solveFrom: [] };
    this.groups.push(g);
    this.byName.set(name, g);
    return g;
  }

  get(name: string): PermutationGroup {
    const g = this.byName.get(name);
    if (!g) throw new Error(`${this.architecture} spec: no group '${name}'`);
    return g;
  }

  /** A conv or linear layer's output units: weight rows and the bias when there is one. */
  rows(group: string, module: string): this {
    const g = this.get(group);
    g.members.push({ param: `${module}.weight`, axis: 0 });
    if (this.has(`${module}.bias`)) g.members.push({ param: `${module}.bias`, axis: 0 });
    return this;
  }

  /** A batch norm's per-channel vectors (num_batches_tracked is a scalar and never permuted). */
  batchNorm(group: string, module: string): this {
    const g = this.get(group);
    for (const v of ['weight', 'bias', 'running_mean', 'running_var']) g.members.push({ param: `${module}.${v}`, axis: 0 });
    return this;
  }

  /** The input axis (1) of the next layer's weight; see AxisMember for offset and inner. */
  cols(group: string, module: string, offset = 0, inner = 1): this {
    const member: AxisMember = { param: `${module}.weight`, axis: 1 };
    if (offset) member.offset = offset;
    if (inner !== 1) member.inner = inner;
    this.get(group).members.push(member);
    return this;
  }

  /** An alignable activation; `solve` adds it to the group's matching. */
  layer(name: string, group: string, terms: string[], solve = true): this {
    this.layers.push({ name, group, terms });
    if (solve) this.get(group).solveFrom.push(name);
    return this;
  }

  build(): PermutationSpec {
    const spec = { architecture: this.architecture, groups: this.groups, layers: this.layers, auxiliary: this.auxiliary };
    validateSpec(spec, this.state);
    return spec;
  }
}

/**
 * Checks a spec against a state dict: every member names an existing tensor, fits inside its
 * axis, and no two members of one axis overlap; every group is solved from at least one layer of
 * its own. Throws naming the first problem.
 */
export function validateSpec(spec: PermutationSpec, state: StateDict): void {
  const where = `${spec.architecture} spec`;
  const covered = new Map<string, Uint8Array>();
  const groups = new Map(spec.groups.map((g) => [g.name, g]));
  for (const g of spec.groups) {
    if (!(Number.isInteger(g.size) && g.size > 0)) throw new Error(`${where}: group '${g.name}' has size ${g.size}`);
    for (const m of g.members) {
      const t = state.get(m.param);
      if (!t) throw new Error(`${where}: group '${g.name}' names missing tensor '${m.param}'`);
      const len = t.shape[m.axis];
      if (len === undefined) throw new Error(`${where}: '${m.param}' has no axis ${m.axis}`);
      const offset = m.offset ?? 0;
      const inner = m.inner ?? 1;
      if (offset < 0 || offset + g.size * inner > len) {
        throw new Error(`${where}: group '${g.name}' (${g.size} x ${inner} at ${offset}) overflows axis ${m.axis} of '${m.param}' (${len})`);
      }
      const key = `${m.param}#${m.axis}`;
      const used = covered.get(key) ?? new Uint8Array(len);
      covered.set(key, used);
      for (let i = offset; i < offset + g.size * inner; i++) {
        if (used[i]) throw new Error(`${where}: position ${i} of axis ${m.axis} of '${m.param}' is in two groups`);
        used[i] = 1;
      }
    }
    if (g.solveFrom.length === 0) throw new Error(`${where}: group '${g.name}' has no layer to solve from`);
  }
  const layers = new Map(spec.layers.map((l) => [l.name, l]));
  if (layers.size !== spec.layers.length) throw new Error(`${where}: two layers share a name`);
  for (const l of spec.layers) if (!groups.has(l.group)) throw new Error(`${where}: layer '${l.name}' names missing group '${l.group}'`);
  for (const g of spec.groups) {
    for (const name of g.solveFrom) {
      if (layers.get(name)?.group !== g.name) throw new Error(`${where}: group '${g.name}' solves from '${name}', not one of its layers`);
    }
  }
}

/** The group of each layer, by layer name. */
export function groupOfLayer(spec: PermutationSpec): Map<string, PermutationGroup> {
  const groups = new Map(spec.groups.map((g) => [g.name, g]));
  return new Map(spec.layers.map((l) => [l.name, groups.get(l.group)!]));
}
