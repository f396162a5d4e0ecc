// results.json: everything the report shows, gathered from a reproduction's artifacts (the eval
// and plane JSON of every stage, the alignment reports, the stage records), with the paper's
// summaries over pairs: mean and sample standard deviation (ddof 1, as the paper's tables).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PathResult } from '../align/curve-eval.js';
import type { PaperNumbers, Preset } from '../reproduce/presets.js';

export interface MeanStd {
  mean: number;
  /** Sample standard deviation over pairs (ddof 1); null for a single pair. */
  std: number | null;
  values: number[];
}

export function meanStd(values: number[]): MeanStd {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { mean, std, values };
}

/** One path of one pair: its points and the summaries the tables use. */
export interface PathSummary {
  pair: number;
  points: { t: number; loss: number; accuracy: number }[];
  /** Test accuracy at t = 0 and t = 1 (BN re-estimated there, as every point). */
  endpoints: [number, number];
  avgAccuracy: number;
  minAccuracy: number;
  minAt: number;
  barriers: { entezari: number; gitRebasin: number; repairMidpointLoss: number; repairMidpointAccuracyDrop: number };
}

export interface VariantResults {
  variant: string;
  pairs: PathSummary[];
  endpoints: MeanStd;
  avg: MeanStd;
  min: MeanStd;
}

export interface Results {
  preset: Preset;
  pairs: number;
  versions: Record<string, string>;
  /** BN policy of every number: re-estimated at every t on the training images, as the paper. */
  batchNorm: string;
  curves: VariantResults[];
  /** Straight lines: A-B (the unaligned curve's endpoints) and A-P(B) (the aligned one's). */
  lines: VariantResults[];
  alignment: { layer: string; units: number; before: number; after: number }[] | null;
  planes: { variant: string; file: string }[];
  stages: { name: string; seconds: number }[];
  paper: PaperNumbers | null;
  /** With --robust: the adversarially trained endpoints' curves and lines (section 4). */
  robust: RobustResults | null;
  /** The paper's effect: aligned Min minus unaligned Min (percentage points), when both ran. */
  effect: { alignedMinusUnalignedMin: MeanStd; lineAlignedMinusUnalignedMin: MeanStd } | null;
}

/** One robust path of one pair (eval-curve --robust). */
export interface RobustPathSummary {
  pair: number;
  points: { t: number; accuracy: number; robustAccuracy: number; robustLoss: number }[];
  robustLossBarrier: number;
  minRobustAccuracy: number;
  /** Clean test accuracy at the t of the minimum robust accuracy. */
  cleanAtMinRobust: number;
}

export interface RobustVariantResults {
  variant: string;
  pairs: RobustPathSummary[];
  barrier: MeanStd;
  minRobust: MeanStd;
  cleanAtMinRobust: MeanStd;
}

export interface RobustResults {
  curves: RobustVariantResults[];
  /** A-B between the robust endpoints, A-P(B) with B aligned. */
  lines: RobustVariantResults[];
  /** Unaligned minus aligned robust loss barrier (positive: alignment lowered it), curves and lines. */
  barrierReduction: { curves: MeanStd; lines: MeanStd } | null;
}

function robustVariant(variant: string, pairs: RobustPathSummary[]): RobustVariantResults {
  return { variant, pairs, barrier: meanStd(pairs.map((p) => p.robustLossBarrier)), minRobust: meanStd(pairs.map((p) => p.minRobustAccuracy)), cleanAtMinRobust: meanStd(pairs.map((p) => p.cleanAtMinRobust)) };
}

/** The robust results of eval/robust-pair{i}-{variant}.json, or null when the run had none. */
function collectRobust(dir: string, pairs: number): RobustResults | null {
  const curves: RobustVariantResults[] = [];
  const lines: RobustVariantResults[] = [];
  for (const variant of ['unaligned', 'aligned']) {
    const byPath = new Map<string, RobustPathSummary[]>();
    for (let i = 1; i <= pairs; i++) {
      const file = join(dir, 'eval', `robust-pair${i}-${variant}.json`);
      if (!existsSync(file)) continue;
      for (const r of (JSON.parse(readFileSync(file, 'utf8')) as { paths: PathResult[] }).paths) {
        if (!r.robust) continue;
        const summary: RobustPathSummary = {
          pair: i,
          points: r.points.map((p) => ({ t: p.t, accuracy: p.accuracy, robustAccuracy: p.robust!.accuracy, robustLoss: p.robust!.loss })),
          robustLossBarrier: r.robust.robustLossBarrier.value,
          minRobustAccuracy: r.robust.minRobustAccuracy.value,
          cleanAtMinRobust: r.robust.cleanAccuracyAtMinRobust,
        };
        byPath.set(r.path, [...(byPath.get(r.path) ?? []), summary]);
      }
    }
    const curve = byPath.get('curve');
    const line = byPath.get('line');
    if (curve) curves.push(robustVariant(variant, curve));
    if (line) lines.push(robustVariant(variant === 'unaligned' ? 'A-B' : 'A-P(B)', line));
  }
  if (!curves.length && !lines.length) return null;
  const reduction = (xs: RobustVariantResults[]) => {
    const [u, a] = [xs[0], xs[1]];
    if (!u || !a) return null;
    return meanStd(u.pairs.flatMap((p) => {
      const q = a.pairs.find((r) => r.pair === p.pair);
      return q ? [p.robustLossBarrier - q.robustLossBarrier] : [];
    }));
  };
  const [c, l] = [reduction(curves), reduction(lines)];
  return { curves, lines, barrierReduction: c && l ? { curves: c, lines: l } : null };
}

function summarize(pair: number, r: PathResult): PathSummary {
  const b = r.barriers;
  return {
    pair,
    points: r.points.map((p) => ({ t: p.t, loss: p.loss, accuracy: p.accuracy })),
    endpoints: b.endpoints.accuracy,
    avgAccuracy: b.meanAccuracy.value,
    minAccuracy: b.minAccuracy.value,
    minAt: b.minAccuracy.t ?? NaN,
    barriers: {
      entezari: b.lossBarrierLinear.value,
      gitRebasin: b.lossBarrierMean.value,
      repairMidpointLoss: b.midpointLossBarrier.value,
      repairMidpointAccuracyDrop: b.midpointAccuracyDrop.value,
    },
  };
}

function variantResults(variant: string, pairs: PathSummary[]): VariantResults {
  return {
    variant,
    pairs,
    endpoints: meanStd(pairs.map((p) => (p.endpoints[0] + p.endpoints[1]) / 2)),
    avg: meanStd(pairs.map((p) => p.avgAccuracy)),
    min: meanStd(pairs.map((p) => p.minAccuracy)),
  };
}

/** Gathers results.json from the run folder `dir` (eval/pair{i}-{variant}.json and friends). */
export function collectResults(dir: string, preset: Preset, pairs: number, variants: readonly string[], versions: Record<string, string>, stages: { name: string; seconds: number }[]): Results {
  const curves: VariantResults[] = [];
  const lines = new Map<string, PathSummary[]>();
  for (const variant of variants) {
    const summaries: PathSummary[] = [];
    for (let i = 1; i <= pairs; i++) {
      const file = join(dir, 'eval', `pair${i}-${variant}.json`);
      if (!existsSync(file)) continue;
      const report = JSON.parse(readFileSync(file, 'utf8')) as { paths: PathResult[] };
      const curve = report.paths.find((p) => p.path === 'curve');
      const line = report.paths.find((p) => p.path === 'line');
      if (curve) summaries.push(summarize(i, curve));
      // The line between the curve's endpoints: A-B for an unaligned curve, A-P(B) for an aligned one.
      const lineName = variant === 'unaligned' ? 'A-B' : variant === 'aligned' ? 'A-P(B)' : null;
      if (line && lineName) lines.set(lineName, [...(lines.get(lineName) ?? []), summarize(i, line)]);
    }
    if (summaries.length) curves.push(variantResults(variant, summaries));
  }
  const alignmentFile = join(dir, 'curves', 'pair1-aligned', 'alignment.json');
  const alignment = existsSync(alignmentFile)
    ? ((JSON.parse(readFileSync(alignmentFile, 'utf8')) as { layers: { layer: string; units: number; before: number; after: number }[] | null }).layers ?? []).map((l) => ({
        layer: l.layer,
        units: l.units,
        before: l.before,
        after: l.after,
      }))
    : null;
  const planes = ['unaligned', 'aligned'].map((v) => ({ variant: v, file: join(dir, 'planes', `pair1-${v}.json`) })).filter((p) => existsSync(p.file));
  const byVariant = (v: string) => curves.find((c) => c.variant === v);
  const lineOf = (n: string) => lines.get(n);
  const [u, a, lu, la] = [byVariant('unaligned'), byVariant('aligned'), lineOf('A-B'), lineOf('A-P(B)')];
  const diff = (x: PathSummary[], y: PathSummary[]) =>
    meanStd(x.flatMap((p) => {
      const q = y.find((r) => r.pair === p.pair);
      return q ? [100 * (p.minAccuracy - q.minAccuracy)] : [];
    }));
  return {
    preset,
    pairs,
    versions,
    batchNorm: 'every accuracy (endpoints included) with BN statistics re-estimated at that point on the training images (section 2, update_bn); networks without BN use their weights as they are',
    curves,
    lines: [...lines].map(([name, ps]) => variantResults(name, ps)),
    alignment,
    planes: planes.map((p) => ({ variant: p.variant, file: p.file })),
    stages,
    paper: preset.paper ?? null,
    robust: collectRobust(dir, pairs),
    effect: u && a && lu && la ? { alignedMinusUnalignedMin: diff(a.pairs, u.pairs), lineAlignedMinusUnalignedMin: diff(la, lu) } : null,
  };
}
