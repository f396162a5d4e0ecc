// Linear combinations of equally shaped f32 tensors, sum_k c_k w_k, in one kernel per four terms
// (lincomb.wgsl): the point of a curve, w(t) = sum_k c_k(t) w_k (src/align/curve.ts). As a chain
// of scale-and-add ops it would cost 2n - 1 launches and n - 1 intermediate tensors per
// parameter and step. The gradient of each input is c_k g, the same kernel with one term.
import gridWgsl from '../../shaders/lib/grid.wgsl';
import lincombWgsl from '../../shaders/lincomb.wgsl';
import { record } from '../autograd.js';
import { Kernel, gridStride, launch } from '../runtime.js';
import { Tensor } from '../tensor.js';

// The kernel loops over the elements (grid stride), so gridStride bounds its grid: 512 workgroups
// (16 elements per invocation, the CPU policy's) were the fastest count for 2M elements on
// llvmpipe (2 cores; 8192, one per 256 elements, took 4x as long).
const lincombKernel = new Kernel('lincomb', [gridWgsl, lincombWgsl]);

function lincombRaw(ws: readonly Tensor[], c: readonly number[], out: Tensor): void {
  if (ws.length === 0 || ws.length > 4) throw new Error(`lincomb: 1 to 4 terms per launch, got ${ws.length}`);
  const coefficients = [0, 1, 2, 3].map((k) => c[k] ?? 0);
  launch(lincombKernel, {
    op: 'linearCombination',
    params: (w) => w.u32(out.size, ws.length, 0, 0).f32(...coefficients),
    buffers: [0, 1, 2, 3].map((k) => (ws[k] ?? ws[0]!).buffer).concat(out.buffer),
    shapes: [out.shape],
    workgroups: gridStride(out.size, 256),
  });
}

/** sum_k c[k] * ws[k] for tensors of one shape (f32); terms with c = 0 are skipped. */
export function linearCombination(ws: readonly Tensor[], c: readonly number[]): Tensor {
  if (ws.length === 0 || ws.length !== c.length) throw new Error(`linearCombination: ${ws.length} tensors, ${c.length} coefficients`);
  for (const w of ws) {
    if (w.dtype !== 'f32' || w.shape.join() !== ws[0]!.shape.join()) throw new Error(`linearCombination: every tensor must be f32 of shape [${ws[0]!.shape.join(', ')}], got ${w}`);
  }
  const terms = ws.map((w, k) => [w, c[k]!] as const).filter(([, ck]) => ck !== 0);
  let out = new Tensor(ws[0]!.shape, 'f32');
  if (out.size > 0) {
    if (terms.length === 0) lincombRaw([ws[0]!], [0], out);
    // Four terms per launch; a later launch adds three more to the running sum (the previous
    // output as its term 0 with coefficient 1, written to a new tensor: one dispatch cannot read
    // and write the same buffer).
    for (let i = 0; i < terms.length; i += i === 0 ? 4 : 3) {
      const chunk = terms.slice(i, i + (i === 0 ? 4 : 3));
      if (i === 0) {
        lincombRaw(chunk.map(([w]) => w), chunk.map(([, ck]) => ck), out);
        continue;
      }
      const next = new Tensor(out.shape, 'f32');
      lincombRaw([out, ...chunk.map(([w]) => w)], [1, ...chunk.map(([, ck]) => ck)], next);
      out.dispose();
      out = next;
    }
  }
  return record(out, 'linearCombination', terms.map(([w]) => w), (g) => terms.map(([w, ck]) => (w.requiresGrad ? linearCombination([g], [ck]) : null)));
}

/**
 * w itself in the forward pass, with wd * w added to its gradient in the backward pass: the
 * gradient of the penalty 1/2 wd ||w||^2 without computing the penalty (one fused kernel,
 * g + wd w). A curve's objective CE(w(t)) + 1/2 wd ||w(t)||^2 (src/align/curve-run.ts) needs the
 * penalty's gradient at every step but its value only when it is reported.
 */
export function withL2Gradient(w: Tensor, wd: number): Tensor {
  if (w.dtype !== 'f32') throw new Error(`withL2Gradient: f32 only, got ${w}`);
  return record(w.reshape(w.shape), 'withL2Gradient', [w], (g) => [linearCombination([g, w], [1, wd])]);
}
