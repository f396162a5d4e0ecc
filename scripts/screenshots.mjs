// Usage: node scripts/screenshots.mjs [--out docs/screenshots] [--runs DIR]
//
// Screenshots of the browser pages (README, "In the browser"), taken as test/web/ drives them:
// headless chromium (NEURALIGN_CHROMIUM, else /usr/bin/chromium) with WebGPU on SwiftShader,
// the built pages (node scripts/build.mjs -> dist/web/) served by `node dist/cli.js serve`.
// Each page is opened with the small parameters its test uses and shot (full page) once it says
// it is done: index, lab (?auto=1 sweep), report (a run folder: --runs DIR, else a small
// results.json fixture of test/report/fixture.ts, bundled here), live (?auto=1).
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

/** A folder of run folders with one small run, "quick": test/report/fixture.ts, as the report viewer's test writes it. */
async function fixtureRuns() {
  const { build } = await import('esbuild');
  const bundled = await build({ entryPoints: ['test/report/fixture.ts'], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'warning' });
  const dir0 = (fixtureDir = mkdtempSync(join(tmpdir(), 'neuralign-shots-')));
  const fixtureFile = join(dir0, 'fixture.mjs');
  writeFileSync(fixtureFile, bundled.outputFiles[0].text);
  const { writeViewerRuns } = await import(pathToFileURL(fixtureFile).href);
  const runs = join(dir0, 'runs');
  writeViewerRuns(runs);
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
