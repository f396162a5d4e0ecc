// Builds src/ into dist/ with esbuild: the CLI as one ESM bundle (WGSL files inlined as text),
// the browser pages into dist/web/ (src/web/: one bundle per page for platform 'browser', the same
// engine sources with the WGSL inlined the same way, plus the static HTML and CSS), and with
// --tests every test/**/*.test.ts as its own bundle under dist/test/ for uvu.
// `webgpu` stays external: it loads a native addon (dawn.node) at run time.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';

// --outdir DIR builds elsewhere than dist/ (a folder inside the repo, so `webgpu` and `uvu` still
// resolve from node_modules): parallel work can build and test without clobbering one another.
const withTests = process.argv.includes('--tests');
const outdirAt = process.argv.indexOf('--outdir');
const outdir = outdirAt >= 0 ? process.argv[outdirAt + 1] : 'dist';
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  loader: { '.wgsl': 'text' },
  external: ['webgpu', 'uvu', 'uvu/assert', 'esbuild', 'playwright-core'],
  logLevel: 'warning',
};

function findFiles(dir, suffix, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) findFiles(p, suffix, out);
    else if (p.endsWith(suffix)) out.push(p);
  }
  return out;
}

await build({ ...common, entryPoints: { cli: 'src/cli.ts', index: 'src/index.ts' }, outdir });

// The browser pages: src/web/<page>.ts -> web/<page>.js beside web/<page>.html (served by
// `neuralign serve`). A Node built-in reachable from a page fails this build (platform 'browser').
const webOut = join(outdir, 'web');
rmSync(webOut, { recursive: true, force: true });
mkdirSync(webOut, { recursive: true });
const webFiles = readdirSync('src/web');
const pages = webFiles.filter((f) => f.endsWith('.html')).map((f) => f.slice(0, -'.html'.length));
await build({
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: ['chrome113', 'firefox141', 'safari26'],
  minify: true,
  sourcemap: 'linked',
  loader: { '.wgsl': 'text' },
  logLevel: 'warning',
  entryPoints: Object.fromEntries(pages.filter((p) => webFiles.includes(`${p}.ts`)).map((p) => [p, `src/web/${p}.ts`])),
  outdir: webOut,
});
for (const f of webFiles.filter((f) => f.endsWith('.html') || f.endsWith('.css'))) copyFileSync(join('src/web', f), join(webOut, f));
if (withTests) {
  rmSync(join(outdir, 'test'), { recursive: true, force: true });
  // One shared chunk holds the engine, so every test file in the one test process uses the same
  // runtime (one device) rather than a copy each.
  await build({
    ...common,
    entryPoints: findFiles('test', '.test.ts'),
    outdir: join(outdir, 'test'),
    outbase: 'test',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
  });
}
