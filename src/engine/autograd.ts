// Reverse-mode automatic differentiation on a tape.
//
// While gradients are enabled, an op whose inputs require gradients attaches a GradNode to its
// output: the inputs, and a `backward` closure that maps the output's gradient to the inputs'
// gradients using other ops (so gradients stay on the GPU). backward() walks the nodes reachable
// from a scalar loss in reverse topological order, so each tensor's gradient is complete (all
// paths summed) before it flows on: a residual diamond is walked once, not once per path.
// A non-leaf's gradient is freed as soon as it has been passed to its inputs, and the
// temporaries of each op's backward as soon as it returns, so backward's memory does not grow
// with the depth of the graph and nothing leaks when it runs outside a tidy scope.
//
// The graph's tensors themselves (every activation a training step computed) live until the
// caller's tidy scope ends, because the caller may still read them. With `free`, backward()
// disposes each one as soon as its own node has run (no later node can need it: the nodes that
// read it, its consumers, come after it in the forward order and so before it here), keeping only
// the tensors the caller names. This is what PyTorch does with the tensors saved for backward
// (retain_graph=False); it lowers a training step's peak memory, which otherwise comes at the
// start of backward with every activation alive and the first gradients beside them.
import { setPhase } from './profiler.js';
import { Tensor, endScope, keep, sameShape, sizeOf, startScope, type Shape } from './tensor.js';

export interface GradNode {
  /** The op's name, for error messages. */
  op: string;
  inputs: readonly Tensor[];
  /** Gradients for each input (null where an input needs none), given the output's gradient. */
  backward: (gradOutput: Tensor) => (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording (evaluation, optimizer updates, BN statistics). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    const result = fn();
    if (result instanceof Promise) {
      // Restore only when the async work is done, so awaited ops are not recorded either.
      return result.finally(() => (gradEnabled = previous)) as T;
    }
    gradEnabled = previous;
    return result;
  } catch (e) {
    gradEnabled = previous;
    throw e;
  }
}

/** True when an op with these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * Records how `output` was computed when any input requires a gradient. Returns `output`.
 * Ops call this last: `return record(out, 'add', [a, b], (g) => [g, g])`.
 */
export function record(output: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (needsGrad(...inputs)) {
    output.requiresGrad = true;
    output.node = { op, inputs, backward };
  }
  return output;
}

// The ops backward() itself needs; set by ops/index.ts to avoid an import cycle.
interface GradHelpers {
  add: (a: Tensor, b: Tensor) => Tensor;
  ones: (shape: Shape) => Tensor;
  clone: (t: Tensor) => Tensor;
}
let helpers: GradHelpers | null = null;
export function setGradHelpers(h: GradHelpers): void {
  helpers = h;
}

/** Tensors reachable from `root` through nodes, in topological order (inputs first). */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative post-order DFS: deep networks would overflow a recursive one.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    // dispose() drops a tensor's node, which would silently turn it into a leaf.
    if (t.isDisposed) throw new Error(`backward(): ${t} in the graph was disposed before backward()`);
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

export interface BackwardOptions {
  /** d(final)/d(loss) when `loss` is not a scalar. */
  gradOutput?: Tensor;
  /**
   * Dispose of each non-leaf tensor of the graph once its node has run, except `loss` and the
   * tensors in `except` (what the caller reads afterwards: the logits that score accuracy).
   */
  free?: { except: readonly Tensor[] };
}

/**
 * Computes d(loss)/d(leaf) for every leaf with requiresGrad reachable from `loss`, adding it to
 * `leaf.grad` (gradients accumulate across calls, as in PyTorch; zero them between steps).
 * `loss` must have one element unless `gradOutput` is given. Leaf gradients are kept (they outlive
 * scopes); the caller disposes them (an optimizer's zeroGrad does). `options.free`: see the file
 * comment and BackwardOptions.
 */
export function backward(loss: Tensor, { gradOutput, free }: BackwardOptions = {}): void {
  const spared = free ? new Set<Tensor>([loss, ...free.except]) : null;
  /** With `free`: disposes a non-leaf whose node has run, unless spared or kept. */
  const done = (t: Tensor) => {
    if (spared && t.node && !spared.has(t) && !t.kept) t.dispose();
  };
  if (!loss.requiresGrad) throw new Error('backward(): the tensor does not require a gradient (no parameter reached it)');
  if (!gradOutput && sizeOf(loss.shape) !== 1) {
    throw new Error(`backward(): needs a scalar, got shape [${loss.shape.join(', ')}]; pass gradOutput`);
  }
  if (gradOutput && !sameShape(gradOutput.shape, loss.shape)) {
    throw new Error(`backward(): gradOutput has shape [${gradOutput.shape.join(', ')}], the tensor [${loss.shape.join(', ')}]`);
  }
  if (!helpers) throw new Error('autograd: ops not loaded');
  const { add, ones, clone } = helpers;
  // Every tensor in `grads` is owned by this walk: it is either passed on or disposed.
  const grads = new Map<Tensor, Tensor>();
  const previous = gradEnabled;
  gradEnabled = false; // backward ops are not themselves recorded (no double backward)
  const previousPhase = setPhase('backward'); // the profiler's label for these launches
  try {
    grads.set(loss, gradOutput ? clone(gradOutput) : ones(loss.shape));
    const order = topologicalOrder(loss);
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      const node = t.node;
      if (!g) {
        done(t);
        continue;
      }
      grads.delete(t);
      if (!node) {
        // A leaf: accumulate into .grad, which outlives every scope.
        if (t.grad) {
          const sum = keep(add(t.grad, g));
          t.grad.dispose();
          g.dispose();
          t.grad = sum;
        } else {
          t.grad = keep(g);
        }
        continue;
      }
      // The op's temporaries (masks, products before sumTo) are freed as soon as it returns,
      // inside a scope or not; the gradients it returns survive.
      let inputGrads: (Tensor | null)[] = [];
      startScope();
      try {
        inputGrads = node.backward(g);
      } finally {
        endScope(inputGrads);
      }
      // An op may hand back `g` itself (add) or one tensor for two inputs (add(a, a), a residual
      // sum). Each input gets a tensor of its own, so that disposing one never frees another's
      // gradient: `g` and any other tensor go to their first taker, later takers get a second
      // handle on the same buffer (reshape: reference-counted, no copy; made before any
      // accumulation below disposes the original). Sharing is safe because nothing writes a
      // gradient in place: accumulation and every op make new tensors, and SGD reads .grad only.
      const owned = new Set<Tensor>();
      const given = node.inputs.map((input, i) => {
        let gi = inputGrads[i];
        if (!gi || !input.requiresGrad) return null;
        if (owned.has(gi)) gi = gi.reshape(gi.shape);
        owned.add(gi);
        if (!sameShape(gi.shape, input.shape)) {
          throw new Error(
            `autograd: ${node.op} returned a gradient of shape [${gi.shape}] for an input of shape [${input.shape}]`,
          );
        }
        return gi;
      });
      node.inputs.forEach((input, i) => {
        const gi = given[i];
        if (!gi) return;
        const before = grads.get(input);
        if (before) {
          grads.set(input, add(before, gi));
          before.dispose();
          gi.dispose();
        } else {
          grads.set(input, gi);
        }
      });
      // Gradients the op computed for inputs that need none, and g unless given on, are done with.
      for (const gi of inputGrads) if (gi && !owned.has(gi) && gi !== g) gi.dispose();
      if (!owned.has(g)) g.dispose();
      done(t);
    }
  } finally {
    gradEnabled = previous;
    setPhase(previousPhase);
    for (const g of grads.values()) g.dispose();
  }
}
