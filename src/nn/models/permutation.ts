// What a model says about its permutation symmetry, for the paper's alignment (src/align). A
// model that can be aligned implements Module.describePermutations(b) by calling this builder:
// which parameter axes hold one set of interchangeable hidden units (a group), and which
// activations are correlated to match them (layers). The builder is an interface here and a
// class in src/align/spec.ts (SpecBuilder), which validates the result into a PermutationSpec:
// the description lives beside the model it describes, and src/nn never imports src/align.

export interface PermutationSpecBuilder {
  /** Length of axis `axis` of parameter `param` (every size comes from the model's tensors). */
  dim(param: string, axis?: number): number;
  /** Whether the model has parameter (or buffer) `param`. */
  has(param: string): boolean;
  /** A new group whose units are the rows of `${module}.weight` (axis 0). */
  group(name: string, module: string): unknown;
  /** A conv or linear layer's output units: weight rows and the bias when there is one. */
  rows(group: string, module: string): this;
  /** A batch norm's per-channel vectors. */
  batchNorm(group: string, module: string): this;
  /**
   * The input axis (1) of the next layer's weight: unit u covers positions offset + u * inner + p
   * for p in [0, inner) (a branch inside a concatenation; a flattened [C, H, W] input).
   */
  cols(group: string, module: string, offset?: number, inner?: number): this;
  /**
   * An alignable activation of `group`: the sum of these module outputs ('name:input' is module
   * name's first input, an identity shortcut), post-ReLU by default; `solve` adds its correlation
   * to the group's matching.
   */
  layer(name: string, group: string, terms: string[], solve?: boolean): this;
  /** Modules that run on another module's output only in training (GoogLeNet's auxiliary heads). */
  readonly auxiliary: { module: string; input: string }[];
}
