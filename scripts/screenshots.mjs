// Usage: node scripts/screenshots.mjs [--out docs/screenshots] [--runs DIR]
//
// Screenshots of the browser pages (README, "In the browser"), taken as test/web/ drives them:
// headless chromium (NEURALIGN_CHROMIUM, else /usr/bin/chromium) with WebGPU on SwiftShader,
// the built pages (node scripts/build.mjs -> dist/web/) served by `node dist/cli.js serve`.
// Each page is opened with the small parameters its test uses and shot (full page) once it says
// it is done: index, lab (?auto=1 sweep), report (a run folder: --runs DIR, else a small
// results.json fixture written here, the shape test/web/report.test.ts writes), live (?auto=1).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const USAGE = 'usage: node scripts/screenshots.mjs [--out docs/screenshots] [--runs DIR]';
const args = process.argv.slice(2);
function flag(name, fallback) {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  if (!args[i + 1]) fail(`${name} needs a value; ${USAGE}`);
  return args[i + 1];
}
function fail(msg) {
  console.error(`screenshots: ${msg}`);
  process.exit(1);
}
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const out = flag('--out', 'docs/screenshots');
const runsArg = flag('--runs', undefined);
const chromiumPath = process.env.NEURALIGN_CHROMIUM ?? '/usr/bin/chromium';
const buildDir = process.env.NEURALIGN_BUILD_DIR ?? 'dist';
if (!existsSync(chromiumPath)) fail(`no chromium at ${chromiumPath} (apt-get install chromium, or set NEURALIGN_CHROMIUM)`);
if (!existsSync(join(buildDir, 'web', 'lab.html')) || !existsSync(join(buildDir, 'cli.js'))) fail(`no built pages at ${buildDir}/web: run node scripts/build.mjs first`);
if (runsArg && !existsSync(runsArg)) fail(`no run folders at ${runsArg}`);

const { chromium } = await import('playwright-core');

let fixtureDir; // removed at the end

/** A folder of run folders with one small run, "quick" (as test/web/report.test.ts writes it). */
async function fixtureRuns() {
  const { build } = await import('esbuild');
  const bundled = await build({ entryPoints: ['src/reproduce/presets.ts'], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'warning' });
  const dir0 = (fixtureDir = mkdtempSync(join(tmpdir(), 'neuralign-shots-')));
  const presetsFile = join(dir0, 'presets.mjs');
  writeFileSync(presetsFile, bundled.outputFiles[0].text);
  const { PRESETS } = await import(pathToFileURL(presetsFile).href);
  const meanStd = (v) => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return { mean, std: v.length > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (v.length - 1)) : null, values: v };
  };
  const pathOf = (pair, accs) => ({
    pair,
    points: accs.map((a, i) => ({ t: i / (accs.length - 1), accuracy: a, loss: 1 - a })),
    endpoints: [accs[0], accs[accs.length - 1]],
    avgAccuracy: accs.reduce((s, a) => s + a, 0) / accs.length,
    minAccuracy: Math.min(...accs),
    minAt: 0.5,
    barriers: { entezari: 0.5, gitRebasin: 0.6, repairMidpointLoss: 0.4, repairMidpointAccuracyDrop: 0.1 },
  });
  const variant = (name, pairs) => {
    const m = (f) => meanStd(pairs.map(f));
    return { variant: name, pairs, endpoints: m((p) => (p.endpoints[0] + p.endpoints[1]) / 2), avg: m((p) => p.avgAccuracy), min: m((p) => p.minAccuracy) };
  };
  const runs = join(dir0, 'runs');
  const dir = join(runs, 'quick');
  mkdirSync(join(dir, 'planes'), { recursive: true });
  const unaligned = [pathOf(1, [0.9, 0.8, 0.9]), pathOf(2, [0.92, 0.78, 0.9])];
  const aligned = [pathOf(1, [0.9, 0.88, 0.9]), pathOf(2, [0.92, 0.87, 0.9])];
  const preset = PRESETS['cifar10-tinyten'];
  writeFileSync(join(dir, 'results.json'), JSON.stringify({
    preset,
    pairs: 2,
    versions: { neuralign: '0.1.0' },
    batchNorm: 'BN re-estimated at every t',
    curves: [variant('unaligned', unaligned), variant('aligned', aligned)],
    lines: [variant('A-B', unaligned), variant('A-P(B)', aligned)],
    alignment: [{ layer: 'layers.0', units: 16, before: 0.1, after: 0.7 }],
    planes: [{ variant: 'aligned', file: join(dir, 'planes', 'pair1-aligned.json') }],
    stages: [{ name: 'train-s1', seconds: 30 }],
    paper: preset.paper,
    robust: null,
    effect: { alignedMinusUnalignedMin: meanStd([8, 9]), lineAlignedMinusUnalignedMin: meanStd([8, 9]) },
  }));
  writeFileSync(join(dir, 'planes', 'pair1-aligned.json'), JSON.stringify({
    grid: { xs: [0, 1, 2], ys: [0, 1] },
    loss: [[1, 2, 3], [4, 5, 6]],
    curveProjection: { t: [0, 0.5, 1], x: [0, 1, 2], y: [0, 0.5, 0] },
    lineProjection: { t: [0, 1], x: [0, 2], y: [0, 0] },
    controlPoints: [{ label: 'A', x: 0, y: 0 }, { label: 'B', x: 2, y: 0 }],
  }));
  return runs;
}

/** `node dist/cli.js serve --port 0`: resolves with its URL once it prints it. */
function serve(runsDir) {
  const child = spawn(process.execPath, [join(buildDir, 'cli.js'), 'serve', '--port', '0', '--runs', runsDir, '--web', join(buildDir, 'web')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let errText = '';
  child.stderr.on('data', (d) => (errText += d));
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      const m = /neuralign serve: (http:\/\/\S+\/)/.exec(text);
      if (m) resolve({ url: m[1], child });
    });
    child.on('exit', (code) => reject(new Error(`neuralign serve exited (${code}) before printing its URL: ${errText.trim()}`)));
  });
}

// The condition each test waits on: lab (lab.test.ts) a report or an error; report and live: done or error.
const PAGES = [
  { name: 'index', path: 'index.html', wait: null },
  { name: 'lab', path: 'lab.html?auto=1&sizes=32,96&tune=64&reps=1&variants=naive,tiled,regblock&conv=1&nets=resnet32&batch=1', wait: 'report', timeout: 300_000 },
  { name: 'report', path: 'report.html', wait: 'done', timeout: 60_000 },
  { name: 'live', path: 'live.html?auto=1&n=512&epochs=3&points=3&test=250&width=0.125', wait: 'done', timeout: 300_000 },
];

mkdirSync(out, { recursive: true });
const runsDir = runsArg ?? (await fixtureRuns());
const server = await serve(runsDir);
const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'], timeout: 60_000 });
let failed = false;
try {
  for (const p of PAGES) {
    const t0 = Date.now();
    process.stdout.write(`${p.name}: ${server.url}${p.path} ... `);
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}${p.path}`);
    if (p.wait) {
      await page.waitForFunction(
        (kind) => {
          const n = window.neuralign;
          if (!n) return false;
          if (n.state === 'error') return true;
          return kind === 'report' ? !!n.report : n.state === 'done';
        },
        p.wait,
        { timeout: p.timeout, polling: 500 },
      );
      const state = await page.evaluate(() => window.neuralign.state);
      if (state === 'error') {
        const msg = await page.evaluate(() => window.neuralign.error);
        errors.push(`page state error: ${msg}`);
      }
    } else {
      await page.waitForLoadState('load');
    }
    // Let the last plots settle before the shot.
    await page.waitForTimeout(500);
    const file = join(out, `${p.name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    await page.close();
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (errors.length) {
      failed = true;
      console.log(`${file} (${secs} s) WITH ERRORS: ${errors.join('; ')}`);
    } else console.log(`${file} (${secs} s)`);
  }
} finally {
  await browser.close();
  server.child.kill();
  if (fixtureDir) rmSync(fixtureDir, { recursive: true, force: true });
}
if (failed) process.exit(1);
