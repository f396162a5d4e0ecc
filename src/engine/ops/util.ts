// Shape arithmetic shared by the ops: broadcasting, strides, axis normalization.
import type { Shape } from '../tensor.js';

/** Most axes any kernel's Params struct holds (two vec4<u32>). */
export const MAX_RANK = 8;

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** NumPy broadcasting: shapes align at the right; an axis of length 1 stretches. */
export function broadcastShapes(...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const shape of shapes) {
    for (let i = 0; i < shape.length; i++) {
      const d = rank - shape.length + i;
      const len = shape[i]!;
      if (out[d] === 1) out[d] = len;
      else if (len !== 1 && len !== out[d]) {
        throw new Error(`shapes ${shapes.map((s) => `[${s.join(', ')}]`).join(' and ')} do not broadcast`);
      }
    }
  }
  return out;
}

/** Element strides of `shape` read along the axes of `outShape` (0 where it broadcasts). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const own = contiguousStrides(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((_, d) => {
    const i = d - offset;
    return i < 0 || shape[i] === 1 ? 0 : own[i]!;
  });
}

/** Resolves negative axes and checks range; returns sorted unique axes. */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = new Set<number>();
  for (const a of list) out.add(normalizeAxis(a, rank));
  return [...out].sort((x, y) => x - y);
}

export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function checkRank(shape: Shape, op: string): void {
  if (shape.length > MAX_RANK) throw new Error(`${op}: rank ${shape.length} exceeds the engine's limit of ${MAX_RANK}`);
}

// sameShape lives beside Shape in tensor.ts; ops may import it from here with the other helpers.
export { sameShape } from '../tensor.js';

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
