// Runs the built uvu test files (dist/test/**/*.test.js) in one process, so they share one
// WebGPU device, and ends with the line CI reads: `N passed, N failed, N skipped`, after a list of
// the skipped tests and why (test/helpers.ts testUnless records the reasons). A skipped test is
// never counted as passed.
// Usage: node scripts/test.mjs [--dir BUILD_DIR] [filter]   (filter: a substring of the test file path;
// BUILD_DIR defaults to dist, as written by `node scripts/build.mjs --tests [--outdir BUILD_DIR]`)
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const dirAt = args.indexOf('--dir');
const buildDir = dirAt >= 0 ? args.splice(dirAt, 2)[1] : 'dist';
const root = resolve(buildDir, 'test');
// Tests that need other build outputs (the browser pages, BUILD_DIR/web/) find them here.
process.env.NEURALIGN_BUILD_DIR = resolve(buildDir);
const filter = args[0] ?? '';

function find(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'chunks') find(p, out);
    } else if (p.endsWith('.test.js') && p.includes(filter)) out.push(p);
  }
  return out;
}

const files = find(root);
if (files.length === 0) {
  console.error(`no test files under ${root}${filter ? ` matching '${filter}'` : ''}`);
  process.exit(1);
}

globalThis.UVU_DEFER = 1;
const uvu = await import('uvu');
files.forEach((file, i) => {
  globalThis.UVU_QUEUE.push([relative(root, file)]);
});
for (const [i, file] of files.entries()) {
  globalThis.UVU_INDEX = i;
  await import(pathToFileURL(file).href);
}

// uvu prints its own totals; capture them to print the summary line as well.
let printed = '';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  printed += String(chunk);
  return write(chunk, ...rest);
};
await uvu.exec(false);
process.stdout.write = write;
const plain = printed.replace(/\x1b\[[0-9;]*m/g, '');
// uvu's Total counts the tests that ran; skipped ones are counted apart.
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const failed = total - passed;
const reasons = globalThis.NEURALIGN_SKIPS ?? [];
if (skipped) {
  console.log('skipped:');
  for (const s of reasons) console.log(`  ${s.test}: ${s.reason}`);
  if (skipped > reasons.length) console.log(`  ${skipped - reasons.length} test(s) by test.skip with no reason recorded`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
// A WebGPU device keeps Node's event loop alive; exit explicitly with uvu's verdict.
process.exit(failed > 0 || total === 0 ? 1 : 0);
