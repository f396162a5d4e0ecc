// The report's figures as vega-lite specifications, rendered to SVG headless by vega (no DOM, no
// canvas: the same specs can later drive an interactive page). Each spec is a pure function of
// results.json (and a plane's JSON), so a test can check its series without rendering.
//
//   paths.svg        test accuracy and loss against t for every curve and straight line (mean
//                    over pairs): the paper's teaser figure
//   correlation.svg  per-layer mean correlation of matched units before and after alignment
//   plane-V.svg      the test loss over the plane through A, P(B) and the bend, with the curve's
//                    and the line's projections drawn on it
import type { Results } from './results.js';

type Spec = Record<string, unknown>;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

const LABELS: Record<string, string> = {
  unaligned: 'curve, unaligned',
  'pam-unaligned': 'curve, PAM unaligned',
  'pam-aligned': 'curve, PAM aligned',
  aligned: 'curve, aligned',
  'A-B': 'line A-B',
  'A-P(B)': 'line A-P(B)',
};

/** One row per (path, t): accuracy and loss averaged over pairs. */
export function pathRows(r: Results): { path: string; t: number; accuracy: number; loss: number }[] {
  const rows: { path: string; t: number; accuracy: number; loss: number }[] = [];
  for (const v of [...r.curves, ...r.lines]) {
    const n = v.pairs.length;
    v.pairs[0]!.points.forEach((p, i) => {
      const mean = (f: (q: { accuracy: number; loss: number }) => number) => v.pairs.reduce((s, pair) => s + f(pair.points[i]!), 0) / n;
      rows.push({ path: LABELS[v.variant] ?? v.variant, t: p.t, accuracy: 100 * mean((q) => q.accuracy), loss: mean((q) => q.loss) });
    });
  }
  return rows;
}

export function pathsSpec(r: Results): Spec {
  const panel = (field: 'accuracy' | 'loss', title: string) => ({
    width: 320,
    height: 220,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 't' },
      y: { field, type: 'quantitative', title, scale: { zero: false } },
      color: { field: 'path', type: 'nominal', title: null, legend: { labelLimit: 240 } },
      strokeDash: { field: 'kind', type: 'nominal', legend: null },
    },
  });
  return {
    $schema: SCHEMA,
    title: `${r.preset.name}: test accuracy and loss along t (mean over ${r.pairs} pair(s); BN re-estimated at every t)`,
    data: { values: pathRows(r).map((row) => ({ ...row, kind: row.path.startsWith('line') ? 'line' : 'curve' })) },
    hconcat: [panel('accuracy', 'test accuracy (%)'), panel('loss', 'test loss')],
  };
}

/** PGD test accuracy against t for the robust curves and lines (mean over pairs), or null. */
export function robustSpec(r: Results): Spec | null {
  if (!r.robust) return null;
  const values: { path: string; t: number; accuracy: number }[] = [];
  for (const [label, list] of [['curve', r.robust.curves], ['line', r.robust.lines]] as const) {
    for (const v of list) {
      v.pairs[0]!.points.forEach((p, i) => {
        const mean = v.pairs.reduce((s, q) => s + q.points[i]!.robustAccuracy, 0) / v.pairs.length;
        values.push({ path: label === 'curve' ? `robust curve, ${v.variant}` : `robust line ${v.variant}`, t: p.t, accuracy: 100 * mean });
      });
    }
  }
  return {
    $schema: SCHEMA,
    title: `${r.preset.name}: PGD test accuracy along t between adversarially trained endpoints`,
    width: 320,
    height: 220,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 't' },
      y: { field: 'accuracy', type: 'quantitative', title: 'PGD test accuracy (%)', scale: { zero: false } },
      color: { field: 'path', type: 'nominal', title: null, legend: { labelLimit: 240 } },
    },
  };
}

export function correlationSpec(r: Results): Spec | null {
  if (!r.alignment?.length) return null;
  const values = r.alignment.flatMap((l, i) => [
    { layer: l.layer, order: i, when: 'before alignment', correlation: l.before },
    { layer: l.layer, order: i, when: 'after alignment', correlation: l.after },
  ]);
  return {
    $schema: SCHEMA,
    title: 'mean correlation of matched units, per layer (pair 1, alignment images)',
    width: Math.max(240, 28 * r.alignment.length),
    height: 200,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'layer', type: 'ordinal', sort: { field: 'order' }, title: 'layer' },
      y: { field: 'correlation', type: 'quantitative', title: 'mean correlation', scale: { domain: [Math.min(0, ...values.map((v) => v.correlation)), 1] } },
      color: { field: 'when', type: 'nominal', title: null },
    },
  };
}

/** The parts of `neuralign plane`'s JSON the heatmap needs. */
export interface PlaneJson {
  grid: { xs: number[]; ys: number[] };
  loss: number[][];
  /** Column arrays, one entry per t. */
  curveProjection: { t: number[]; x: number[]; y: number[] };
  lineProjection: { t: number[]; x: number[]; y: number[] };
  controlPoints: { label: string; x: number; y: number }[];
}

export function planeSpec(variant: string, plane: PlaneJson): Spec {
  const cells = plane.grid.ys.flatMap((y, iy) => plane.grid.xs.map((x, ix) => ({ x, y, loss: plane.loss[iy]![ix]! })));
  const path = (name: string, cols: PlaneJson['curveProjection']) => cols.t.map((t, i) => ({ t, x: cols.x[i]!, y: cols.y[i]!, path: name }));
  const dx = (plane.grid.xs[1]! - plane.grid.xs[0]!) || 1;
  const dy = (plane.grid.ys[1]! - plane.grid.ys[0]!) || 1;
  return {
    $schema: SCHEMA,
    title: `test loss on the plane through A, ${variant === 'unaligned' ? 'B' : 'P(B)'} and the bend (${variant} curve)`,
    width: 320,
    height: 260,
    layer: [
      {
        data: { values: cells.map((c) => ({ loss: c.loss, x: c.x - dx / 2, x2: c.x + dx / 2, y: c.y - dy / 2, y2: c.y + dy / 2 })) },
        mark: 'rect',
        encoding: {
          x: { field: 'x', type: 'quantitative', title: 'x (along B - A)' },
          x2: { field: 'x2' },
          y: { field: 'y', type: 'quantitative', title: 'y' },
          y2: { field: 'y2' },
          color: { field: 'loss', type: 'quantitative', scale: { scheme: 'viridis', type: 'log' }, title: 'test loss' },
        },
      },
      {
        data: { values: [...path('curve', plane.curveProjection), ...path('line', plane.lineProjection)] },
        mark: { type: 'line', color: 'white' },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, order: { field: 't' }, detail: { field: 'path' }, strokeDash: { field: 'path', legend: null } },
      },
      {
        data: { values: plane.controlPoints },
        mark: { type: 'point', color: 'white', filled: true, size: 60 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, tooltip: { field: 'label' } },
      },
    ],
  };
}

/** Renders a vega-lite spec to an SVG string (vega's headless renderer). */
export async function renderSvg(spec: Spec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
