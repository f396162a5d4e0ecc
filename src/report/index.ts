// The report of a reproduction: DIR/results.json (collectResults), DIR/plots/*.svg (vega-lite specs
// rendered headless) and DIR/report.md (renderMarkdown), written atomically.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';
import type { Preset } from '../reproduce/presets.js';
import { renderMarkdown } from './markdown.js';
import { correlationSpec, pathsSpec, planeSpec, renderSvg, robustSpec, type PlaneJson } from './plots.js';
import { collectResults, type Results } from './results.js';

export { collectResults, meanStd, type Results, type MeanStd, type VariantResults, type PathSummary } from './results.js';
export { renderMarkdown, effectSentences, formatPercent } from './markdown.js';
export { pathsSpec, correlationSpec, planeSpec, robustSpec, pathRows, renderSvg, type PlaneJson } from './plots.js';

const text = (s: string) => [new TextEncoder().encode(s)];

/** Writes the plots for `results` into dir/plots and returns their file names. */
export async function writePlots(dir: string, results: Results): Promise<string[]> {
  mkdirSync(join(dir, 'plots'), { recursive: true });
  const written: string[] = [];
  const write = async (name: string, spec: Record<string, unknown> | null) => {
    if (!spec) return;
    await writeFileAtomic(join(dir, 'plots', name), text(await renderSvg(spec)));
    written.push(name);
  };
  if (results.curves.length || results.lines.length) await write('paths.svg', pathsSpec(results));
  await write('correlation.svg', correlationSpec(results));
  await write('robust.svg', robustSpec(results));
  for (const p of results.planes) await write(`plane-${p.variant}.svg`, planeSpec(p.variant, JSON.parse(readFileSync(p.file, 'utf8')) as PlaneJson));
  return written;
}

/** Builds results.json, the plots and report.md in `dir`; returns the results. */
export async function buildReport(
  dir: string,
  preset: Preset,
  pairs: number,
  variants: readonly string[],
  versions: Record<string, string>,
  stages: { name: string; seconds: number }[],
): Promise<Results> {
  const results = collectResults(dir, preset, pairs, variants, versions, stages);
  await writeFileAtomic(join(dir, 'results.json'), text(`${JSON.stringify(results, null, 1)}\n`));
  const plots = await writePlots(dir, results);
  await writeFileAtomic(join(dir, 'report.md'), text(renderMarkdown(results, plots)));
  return results;
}
