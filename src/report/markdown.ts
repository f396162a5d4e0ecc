// report.md from results.json: the paper's main table rebuilt from the run (per curve the
// endpoints' accuracy and the Avg and Min test accuracy along t, mean +- std over pairs), the
// straight lines' barriers under every definition, the paper's own numbers beside ours where the
// paper reports the configuration, and how the run was made (hyperparameters, versions, wall
// times, the BN policy of every number).
import type { MeanStd, Results, VariantResults } from './results.js';

const NAMES: Record<string, string> = {
  unaligned: 'Unaligned',
  'pam-unaligned': 'PAM Unaligned',
  'pam-aligned': 'PAM Aligned',
  aligned: 'Aligned',
};

/** 0.8734 -> "87.3", with "+- 0.4" when there are several pairs. */
export function formatPercent(m: MeanStd): string {
  return `${(100 * m.mean).toFixed(1)}${m.std === null ? '' : ` +- ${(100 * m.std).toFixed(1)}`}`;
}

const paperCell = (v: [number, number] | undefined) => (v ? `${v[0].toFixed(1)} +- ${v[1].toFixed(1)}` : '');

function seconds(s: number): string {
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`;
}

function mainTable(r: Results): string[] {
  const paper = r.paper;
  const header = paper ? '| | Avg | Min | paper Avg | paper Min | Avg - paper | Min - paper |' : '| | Avg | Min |';
  const rule = paper ? '|---|---|---|---|---|---|---|' : '|---|---|---|';
  const rows = [header, rule];
  const first = r.curves[0];
  if (first) {
    // The endpoints' accuracy, from t = 0 and t = 1 of every curve's evaluation (the same networks).
    const p = paper ? ` | ${paperCell(paper.endpoints)} | | ${(100 * first.endpoints.mean - paper.endpoints[0]).toFixed(1)} |` : '';
    rows.push(`| **${r.preset.model}** endpoints | ${formatPercent(first.endpoints)} | |${p}`);
  }
  for (const c of r.curves) {
    const ours = `| ${NAMES[c.variant] ?? c.variant} | ${formatPercent(c.avg)} | ${formatPercent(c.min)} |`;
    const theirs = paper?.curves[c.variant as keyof typeof paper.curves];
    rows.push(
      paper
        ? `${ours} ${paperCell(theirs?.avg)} | ${paperCell(theirs?.min)} | ${theirs ? (100 * c.avg.mean - theirs.avg[0]).toFixed(1) : ''} | ${theirs ? (100 * c.min.mean - theirs.min[0]).toFixed(1) : ''} |`
        : ours,
    );
  }
  return rows;
}

function lineTable(lines: VariantResults[]): string[] {
  const rows = [
    '| line | Min acc | Avg acc | loss barrier, Entezari et al. | loss barrier, Git Re-Basin | midpoint loss, REPAIR | midpoint accuracy drop, REPAIR |',
    '|---|---|---|---|---|---|---|',
  ];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const l of lines) {
    const b = (key: keyof VariantResults['pairs'][number]['barriers']) => mean(l.pairs.map((p) => p.barriers[key]));
    rows.push(
      `| ${l.variant} | ${formatPercent(l.min)} | ${formatPercent(l.avg)} | ${b('entezari').toFixed(3)} | ${b('gitRebasin').toFixed(3)} | ${b('repairMidpointLoss').toFixed(3)} | ${(100 * b('repairMidpointAccuracyDrop')).toFixed(1)} points |`,
    );
  }
  return rows;
}

/** What the run says about the paper's claim, in one sentence each for the curves and the lines. */
export function effectSentences(r: Results): string[] {
  if (!r.effect) return ['The run has no aligned and unaligned pair to compare.'];
  const say = (what: string, d: MeanStd) => {
    const pts = `${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(1)} points${d.std === null ? '' : ` (std ${d.std.toFixed(1)} over ${d.values.length} pairs)`}`;
    if (d.mean > 0.5) return `${what}: alignment raised the minimum test accuracy along t by ${pts}: the paper's effect shows.`;
    if (d.mean >= -0.5) return `${what}: alignment changed the minimum test accuracy along t by ${pts}: no clear effect in this run.`;
    return `${what}: alignment lowered the minimum test accuracy along t by ${pts}: the paper's effect does not show in this run.`;
  };
  return [say('Curves', r.effect.alignedMinusUnalignedMin), say('Straight lines', r.effect.lineAlignedMinusUnalignedMin)];
}

export function renderMarkdown(r: Results, plots: string[]): string {
  const p = r.preset;
  const out = [
    `# Reproduction: ${p.name}`,
    '',
    `${p.description}. ${r.pairs} pair(s) of endpoints (seeds ${Array.from({ length: r.pairs }, (_, i) => `(${2 * i + 1}, ${2 * i + 2})`).join(', ')}).`,
    '',
    '## Main table (test accuracy, %)',
    '',
    `Avg is the arc-length mean along t and Min the minimum over the evaluated t (${p.evaluation.points} points), as Tatro et al. 2020, section 7;`,
    `mean +- sample std over pairs. ${r.batchNorm[0]!.toUpperCase()}${r.batchNorm.slice(1)}.`,
    '',
    ...mainTable(r),
    '',
    ...effectSentences(r),
    '',
    '## Straight lines between the same endpoints',
    '',
    ...lineTable(r.lines),
    '',
  ];
  if (r.robust) out.push(...robustSection(r), '');
  if (r.alignment?.length) {
    out.push('## Alignment (pair 1): mean correlation of matched units', '', '| layer | units | before | after |', '|---|---|---|---|');
    for (const l of r.alignment) out.push(`| ${l.layer} | ${l.units} | ${l.before.toFixed(3)} | ${l.after.toFixed(3)} |`);
    out.push('');
  }
  if (plots.length) out.push('## Plots', '', ...plots.map((f) => `![${f}](plots/${f})`), '');
  out.push(
    '## How this was run',
    '',
    `- Model ${p.model} (width ${p.width}) on ${p.dataset}; endpoints ${p.train.epochs} epochs${p.train.trainSubset ? ` on the first ${p.train.trainSubset} training images` : ''}; ` +
      `curves ${p.curve.epochs} epochs${p.curve.trainSubset ? ` on ${p.curve.trainSubset} images` : ''}; evaluation at ${p.evaluation.points} values of t` +
      `${p.evaluation.trainSubset ? `, BN re-estimated on ${p.evaluation.trainSubset} training images` : ''}${p.evaluation.testSubset ? `, test on ${p.evaluation.testSubset} images` : ''}.`,
    '- Everything else is the paper\'s recipe (section 5 and 2): Nesterov SGD, momentum 0.9, lr 0.1, weight decay 5e-4, lr 0.1 * 0.5^floor(e/20) * 0.9996^e, one t ~ U[0,1] per batch for curves.',
    `- Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join('; ')}.`,
    `- Wall time per stage: ${r.stages.map((s) => `${s.name} ${seconds(s.seconds)}`).join(', ')}; in all ${seconds(r.stages.reduce((a, s) => a + s.seconds, 0))}.`,
    '',
  );
  return out.join('\n');
}

/** The robust table (section 4): robust loss barrier, minimum PGD accuracy and the clean accuracy there. */
function robustSection(r: Results): string[] {
  const rb = r.robust!;
  const rows = [
    '## Adversarially trained endpoints (PGD, section 4)',
    '',
    'Robust loss barrier: the largest rise of the PGD test loss above the line between the endpoints\' PGD losses (Entezari et al.\'s form, as Zhao et al. 2020); BN re-estimated on PGD examples at every t.',
    '',
    '| path | robust loss barrier | min PGD accuracy | clean accuracy there |',
    '|---|---|---|---|',
  ];
  const cell = (m: MeanStd, pct: boolean) => (pct ? formatPercent(m) : `${m.mean.toFixed(3)}${m.std === null ? '' : ` +- ${m.std.toFixed(3)}`}`);
  for (const v of [...rb.curves.map((c) => ({ ...c, label: `curve, ${c.variant}` })), ...rb.lines.map((l) => ({ ...l, label: `line ${l.variant}` }))]) {
    rows.push(`| ${v.label} | ${cell(v.barrier, false)} | ${cell(v.minRobust, true)} | ${cell(v.cleanAtMinRobust, true)} |`);
  }
  if (rb.barrierReduction) {
    const d = rb.barrierReduction.curves;
    rows.push('', d.mean > 0 ? `Alignment lowered the robust loss barrier of the curve by ${d.mean.toFixed(3)} (unaligned minus aligned).` : `Alignment did not lower the robust loss barrier of the curve in this run (unaligned minus aligned: ${d.mean.toFixed(3)}).`);
  }
  return rows;
}
