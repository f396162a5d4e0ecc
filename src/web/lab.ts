// The kernel lab (lab.html): `neuralign bench matmul` on the visitor's adapter. The same sweep as
// the CLI (bench/matmul.ts: every variant's output checked against a float64 reference before it
// is timed, then GFLOP/s per shape, as a table and a bar plot), the adapter's name, features and
// limits, the variant the engine would pick (tuneMatmul), and the report as a download in the
// `bench --json` format.
// With conv=1 the conv suite (bench/conv.ts: forward, input and weight gradient of the quick
// VGG16/ResNet32 layers, each pass checked against float64 before it is timed) runs after it.
// URL parameters: auto=1 runs at once; sizes=64,128,256 (square sizes); models=1 instead times
// the paper's model shapes; variants=tiled,regblock; reps=3; tune=512 (the size tuneMatmul
// times); conv=1; nets=vgg16,resnet32 and batch=2 (the conv layers and their batch).
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { CONV_SHAPES, benchConv, type ConvBenchReport, type ConvRow, type PassResult } from '../../bench/conv.js';
import { benchMatmul, MODEL_SHAPES, type MatmulBenchReport } from '../../bench/matmul.js';
import { CONV_KERNELS, MATMUL_VARIANTS, convKernelAvailable, matmulVariantAvailable, type MatmulVariant, type Runtime } from '../engine/index.js';
import { byId, catchUncaught, el, page, setStatus, showError, startEngine } from './ui.js';

const params = new URLSearchParams(location.search);

function numbers(text: string): number[] {
  return text.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

function showAdapter(rt: Runtime): void {
  const i = rt.info;
  const rows: [string, string][] = [
    ['adapter', i.description],
    ['vendor / architecture', `${i.vendor || 'unknown'} / ${i.architecture || 'unknown'}`],
    ['type', i.isCPU ? 'CPU (software rasterizer)' : 'GPU (or not said)'],
    ['features', i.features.join(', ') || 'none'],
    ...Object.entries(i.limits).map(([k, v]): [string, string] => [k, String(v)]),
  ];
  const table = el('table');
  for (const [k, v] of rows) {
    const tr = el('tr');
    tr.append(el('th', k), el('td', v));
    table.append(tr);
  }
  byId('adapter').replaceChildren(table);
}

/** The results table's head: shape, size, one column per variant. */
function tableHead(variants: readonly MatmulVariant[]): HTMLTableElement {
  const table = el('table', undefined, { id: 'results-table' });
  const tr = el('tr');
  tr.append(el('th', 'shape'), el('th', 'M x N x K'), ...variants.map((v) => el('th', v)));
  table.append(el('thead'));
  table.tHead!.append(tr);
  table.append(el('tbody'));
  return table;
}

/** One shape's row: GFLOP/s per variant (fastest marked), or why it was not timed. */
function resultRow(row: MatmulBenchReport['rows'][number], variants: readonly MatmulVariant[]): HTMLTableRowElement {
  const { shape } = row;
  const tr = el('tr');
  tr.append(el('td', shape.name), el('td', `${shape.batch ? `${shape.batch} x ` : ''}${shape.M} x ${shape.N} x ${shape.K}`));
  const best = Math.max(...row.results.map((r) => r.gflops ?? 0));
  for (const v of variants) {
    const r = row.results.find((x) => x.variant === v);
    const td = el('td');
    td.dataset.variant = v;
    if (!r) td.textContent = '';
    else if (r.gflops !== undefined) {
      td.dataset.check = 'correct';
      td.append(el('span', r.gflops >= 10 ? r.gflops.toFixed(1) : r.gflops.toPrecision(2), { class: r.gflops === best ? 'best' : '' }));
      td.append(el('small', ` ✓ ${r.maxRelError!.toExponential(1)}`, { title: `largest sampled error relative to sum |a b|, bound ${r.errorBound!.toExponential(1)}` }));
    } else if (r.skipped?.startsWith('wrong')) {
      td.dataset.check = 'wrong';
      td.append(el('span', 'wrong', { class: 'wrong', title: r.skipped }));
    } else td.append(el('span', '-', { title: r.skipped ?? '' }));
    tr.append(td);
  }
  return tr;
}

/** Points link #id at `report` as a JSON file (the `bench --json` format of its suite). */
function offerDownload(id: string, suite: string, report: unknown): void {
  const blob = new Blob([JSON.stringify(report, null, 2) + '\n'], { type: 'application/json' });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const a = byId<HTMLAnchorElement>(id);
  a.href = URL.createObjectURL(blob);
  a.download = `${suite}-browser-${stamp}.json`;
  a.hidden = false;
}

/**
 * GFLOP/s per shape and variant as grouped bars (vega-lite, SVG; hover for the numbers). Only
 * checked-and-timed results are drawn: a wrong variant has no bar.
 */
async function plotGflops(report: MatmulBenchReport): Promise<void> {
  const values = report.rows.flatMap((row) =>
    row.results.filter((r) => r.gflops !== undefined).map((r) => ({ shape: `${row.shape.name} ${row.shape.M}x${row.shape.N}x${row.shape.K}`, variant: r.variant, gflops: r.gflops })),
  );
  const spec = {
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: { field: 'shape', type: 'nominal', title: 'shape (M x N x K)', sort: null },
      xOffset: { field: 'variant' },
      y: { field: 'gflops', type: 'quantitative', title: 'GFLOP/s' },
      color: { field: 'variant', type: 'nominal' },
    },
    width: { step: 60 },
    height: 220,
  };
  const holder = el('div', undefined, { id: 'gflops-plot' });
  byId('plot').replaceChildren(holder);
  await new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'svg', container: holder, hover: true }).runAsync();
}

/** One conv pass's cell: GFLOP/s with its checked error, 'n/a' (the kernel does not compute it), or 'wrong'. */
function passCell(p: PassResult): HTMLTableCellElement {
  const td = el('td');
  if (p.notApplicable) {
    td.dataset.check = 'n/a';
    td.append(el('span', 'n/a', { title: 'this kernel computes only 3x3, stride-1, padding-1 layers' }));
  } else if (p.gflops === undefined) {
    td.dataset.check = 'wrong';
    td.append(el('span', 'wrong', { class: 'wrong', title: `relative error ${p.maxRelError} > ${p.errorBound}` }));
  } else {
    td.dataset.check = 'correct';
    td.append(el('span', p.gflops >= 10 ? p.gflops.toFixed(1) : p.gflops.toPrecision(2)), el('small', ` ✓ ${p.maxRelError.toExponential(1)}`));
  }
  return td;
}

async function runConv(): Promise<ConvBenchReport> {
  const nets = params.get('nets')?.split(',') ?? ['vgg16', 'resnet32'];
  const batch = Number(params.get('batch')) || 2;
  const table = el('table', undefined, { id: 'conv-table' });
  const head = el('tr');
  head.append(...['net', 'layer', 'kernel', 'forward', 'input grad', 'weight grad'].map((h) => el('th', h)));
  table.append(head);
  byId('conv-results').replaceChildren(table);
  setStatus(`conv: checking and timing each pass at batch ${batch}…`);
  const report = await benchConv({
    quick: true,
    batch,
    runs: Number(byId<HTMLInputElement>('reps').value) || 3,
    kernels: CONV_KERNELS.filter(convKernelAvailable),
    shapes: CONV_SHAPES.filter((s) => s.quick && nets.includes(s.net)),
    log: (line) => (byId('log').textContent += line + '\n'),
    onRow: (row: ConvRow) => {
      const tr = el('tr');
      tr.append(el('td', row.net), el('td', row.layer), el('td', row.kernel), passCell(row.forward), passCell(row.inputGrad), passCell(row.weightGrad));
      table.append(tr);
    },
  });
  offerDownload('conv-download', 'conv', report);
  return report;
}

async function run(rt: Runtime): Promise<void> {
  const button = byId<HTMLButtonElement>('run');
  button.disabled = true;
  page.state = 'running';
  const sizes = numbers(byId<HTMLInputElement>('sizes').value);
  const models = byId<HTMLInputElement>('models').checked;
  const reps = Number(byId<HTMLInputElement>('reps').value) || 3;
  const variants = [...document.querySelectorAll<HTMLInputElement>('#variants input:checked')].map((c) => c.value as MatmulVariant);
  const tuneSize = Number(params.get('tune')) || 512;
  const log = byId('log');
  log.textContent = '';
  const table = tableHead(variants);
  byId('results').replaceChildren(table);
  setStatus(`timing the engine's candidates at ${tuneSize}³ to pick its variant…`);
  try {
    const report = await benchMatmul({
      quick: true,
      reps,
      variants,
      // bench/matmul.ts times the given square sizes, or with none the model shapes too.
      sizes: models ? undefined : sizes,
      tuneSize,
      log: (line) => {
        log.textContent += line + '\n';
        if (line.startsWith('matmul on')) setStatus('checking and timing each variant…');
      },
      onRow: (row) => table.tBodies[0]!.append(resultRow(row, variants)),
    });
    byId('choice').textContent = `The engine would use ${report.tuned.choice} here (timed at ${tuneSize}³: ${Object.entries(report.tuned.ms).map(([v, ms]) => `${v} ${ms!.toFixed(1)} ms`).join(', ') || 'forced'}).`;
    offerDownload('download', 'matmul', report);
    await plotGflops(report);
    if (byId<HTMLInputElement>('conv').checked) page.conv = await runConv();
    page.report = report;
    page.state = 'done';
    setStatus(`done: ${report.rows.length} shapes x ${variants.length} variants${page.conv ? ', and conv' : ''}`);
  } catch (e) {
    showError('The benchmark failed', (e as Error).message);
  } finally {
    button.disabled = false;
  }
}

async function main(): Promise<void> {
  catchUncaught();
  setStatus('opening a WebGPU device…');
  const rt = await startEngine();
  if (!rt) return;
  showAdapter(rt);
  byId<HTMLInputElement>('sizes').value = params.get('sizes') ?? '64,128,256';
  byId<HTMLInputElement>('models').checked = params.get('models') === '1';
  byId<HTMLInputElement>('reps').value = params.get('reps') ?? '3';
  byId<HTMLInputElement>('conv').checked = params.get('conv') === '1';
  const wanted = params.get('variants')?.split(',');
  const box = byId('variants');
  for (const v of MATMUL_VARIANTS) {
    const available = matmulVariantAvailable(v);
    const input = el('input', undefined, { type: 'checkbox', value: v });
    input.checked = available && (!wanted || wanted.includes(v));
    input.disabled = !available;
    const label = el('label', undefined, available ? {} : { title: 'not available on this adapter (needs subgroups of at least 8)' });
    label.append(input, ` ${v}`);
    box.append(label);
  }
  byId('model-count').textContent = String(MODEL_SHAPES.length);
  const button = byId<HTMLButtonElement>('run');
  button.disabled = false;
  button.addEventListener('click', () => void run(rt));
  page.state = 'ready';
  setStatus('ready');
  if (params.get('auto') === '1') await run(rt);
}

void main();
