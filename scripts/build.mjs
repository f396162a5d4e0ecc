// Builds src/ into dist/ with esbuild: the CLI as one ESM bundle (WGSL files inlined as text),
// the browser pages into dist/web/ (src/web/: one bundle per page for platform 'browser', the same
// engine sources with the WGSL inlined the same way, plus the static HTML and CSS), and with
// --tests every test/**/*.test.ts as its own bundle under dist/test/ for uvu.
// `webgpu` stays external: it loads a native addon (dawn.node) at run time.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

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

// The live page's data: the first 4,000 training and 1,000 test images of the installed
// Fashion-MNIST (Debian's dataset-fashion-mnist), as plain IDX files under web/data/ (about 4 MB;
// never committed). Where the data set is missing the page trains on its synthetic task instead.
const FASHION = '/usr/share/datasets/fashion-mnist';
const LIVE_SUBSET = { train: ['train', 4000], test: ['t10k', 1000] };
if (existsSync(join(FASHION, 'train-images-idx3-ubyte.gz'))) {
  const dataOut = join(webOut, 'data', 'fashion-mnist');
  mkdirSync(dataOut, { recursive: true });
  for (const [split, [prefix, n]] of Object.entries(LIVE_SUBSET)) {
    for (const [kind, rank, itemBytes] of [['images', 3, 28 * 28], ['labels', 1, 1]]) {
      const idx = gunzipSync(readFileSync(join(FASHION, `${prefix}-${kind}-idx${rank}-ubyte.gz`)));
      const header = Buffer.from(idx.subarray(0, 4 + 4 * rank));
      header.writeUInt32BE(n, 4); // the first dimension, N
      writeFileSync(join(dataOut, `${split}-${kind}.idx`), Buffer.concat([header, idx.subarray(4 + 4 * rank, 4 + 4 * rank + n * itemBytes)]));
    }
  }
}
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
