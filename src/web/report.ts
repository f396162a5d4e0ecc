// The report viewer (report.html): pick a run folder served by `neuralign serve --runs DIR`, and
// see its report: the tables of report.md (renderMarkdown) and the plots drawn by vega from the
// same vega-lite specs the CLI renders to SVG (src/report/plots.ts), here live in the page with
// tooltips. URL parameter: run=<folder under /runs/>.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { renderMarkdown } from '../report/markdown.js';
import { correlationSpec, pathsSpec, planeSpec, robustSpec, type PlaneJson } from '../report/plots.js';
import type { Results } from '../report/results.js';
import { markdownToNodes } from './markdown.js';
import { byId, catchUncaught, el, page, setStatus, showError } from './ui.js';

interface Listing {
  entries: { name: string; dir: boolean }[];
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${(await res.text()).trim()}`);
  return (await res.json()) as T;
}

/** Run folders that hold a results.json (written at the end of `neuralign reproduce`). */
async function runFolders(): Promise<string[]> {
  const top = await getJson<Listing>('runs/');
  const found: string[] = [];
  for (const e of top.entries.filter((x) => x.dir)) {
    const inside = await getJson<Listing>(`runs/${encodeURIComponent(e.name)}/`).catch(() => ({ entries: [] }));
    if (inside.entries.some((x) => x.name === 'results.json')) found.push(e.name);
  }
  return found;
}

type View = { mark?: unknown; encoding?: Record<string, { field?: string } & Record<string, unknown>>; params?: unknown[] };

/**
 * The report's static spec made interactive for the page (the CLI's SVGs stay as they are): every
 * mark gets a tooltip (hover a point to read t, loss, accuracy), and where colour tells paths
 * apart, clicking a legend entry shows that path alone (shift-click adds more; click the
 * background to show all again). One selection, declared in the first such view, drives all of
 * them, so both panels of the paths plot follow the same legend.
 */
export function interactive(spec: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(spec)) as Record<string, unknown> & View & { hconcat?: View[]; vconcat?: View[] };
  const views: View[] = copy.hconcat ?? copy.vconcat ?? [copy];
  let declared = false;
  for (const v of views) {
    if (v.mark !== undefined) v.mark = typeof v.mark === 'string' ? { type: v.mark, tooltip: true } : { ...(v.mark as object), tooltip: true };
    if (v.encoding?.color?.field !== 'path') continue;
    if (!declared) v.params = [...(v.params ?? []), { name: 'shown', select: { type: 'point', fields: ['path'] }, bind: 'legend' }];
    declared = true;
    v.encoding.opacity = { condition: { param: 'shown', value: 1 }, value: 0.12 };
  }
  return copy;
}

/** Draws one vega-lite spec into a new figure (SVG renderer, vega's tooltips, legend toggles). */
async function draw(name: string, staticSpec: Record<string, unknown>): Promise<HTMLElement> {
  const spec = interactive(staticSpec);
  const figure = el('figure', undefined, { 'data-plot': name });
  const holder = el('div');
  figure.append(holder, el('figcaption', name));
  byId('plots').append(figure);
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'svg', container: holder, hover: true });
  await view.runAsync();
  return figure;
}

async function show(run: string): Promise<void> {
  page.state = 'running';
  setStatus(`loading runs/${run}/results.json…`);
  byId('report').replaceChildren();
  byId('plots').replaceChildren();
  const base = `runs/${encodeURIComponent(run)}/`;
  const results = await getJson<Results>(`${base}results.json`);
  byId('report').replaceChildren(...markdownToNodes(renderMarkdown(results, [])));
  const plots: string[] = [];
  if (results.curves.length || results.lines.length) plots.push((await draw('paths', pathsSpec(results))).dataset.plot!);
  const corr = correlationSpec(results);
  if (corr) plots.push((await draw('correlation', corr)).dataset.plot!);
  const robust = robustSpec(results);
  if (robust) plots.push((await draw('robust', robust)).dataset.plot!);
  for (const p of results.planes) {
    // The plane's file is a server path inside the run folder: planes/pair1-<variant>.json.
    const rel = p.file.split(/[\\/]/).slice(-2).join('/');
    const plane = await getJson<PlaneJson>(`${base}${rel}`).catch(() => null);
    if (plane) plots.push((await draw(`plane-${p.variant}`, planeSpec(p.variant, plane))).dataset.plot!);
  }
  page.plots = plots;
  page.state = 'done';
  setStatus(`runs/${run}: ${plots.length} plot(s)`);
}

async function main(): Promise<void> {
  catchUncaught();
  setStatus('listing run folders…');
  let runs: string[];
  try {
    runs = await runFolders();
  } catch (e) {
    showError('No run folders', `${(e as Error).message}. Start the server with \`neuralign serve --runs DIR\`, DIR holding run folders of \`neuralign reproduce\`.`);
    return;
  }
  const select = byId<HTMLSelectElement>('run');
  select.replaceChildren(...runs.map((r) => el('option', r, { value: r })));
  if (!runs.length) {
    showError('No reports yet', 'No run folder under /runs/ holds a results.json; `neuralign reproduce --preset quick --out runs/quick` writes one.');
    return;
  }
  const wanted = new URLSearchParams(location.search).get('run');
  select.value = wanted && runs.includes(wanted) ? wanted : runs[0]!;
  const load = () => show(select.value).catch((e: Error) => showError(`Could not show runs/${select.value}`, e.message));
  select.addEventListener('change', () => void load());
  await load();
}

void main();
