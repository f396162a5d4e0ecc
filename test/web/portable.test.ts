// The engine and the alignment code run in a browser page from the same sources: bundled by
// esbuild for the browser, src/engine/index.ts and src/align/index.ts reach no Node built-in
// module and not Dawn's native `webgpu` package (those live in src/engine/dawn.ts, src/cli and
// src/nn's file I/O), and the bundles name no Node-only global (`process.x`, setImmediate,
// SharedArrayBuffer, Buffer) outside a guarded `globalThis.process?.` read (src/engine/env.ts).
import { builtinModules } from 'node:module';
import { build, type Metafile } from 'esbuild';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('portable engine');

const NODE_ONLY = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'webgpu']);

/** Bundles `entry` for the browser; every import esbuild cannot or must not bundle is kept as external and listed. */
async function browserBundle(entry: string): Promise<{ code: string; externals: string[]; metafile: Metafile }> {
  const externals: string[] = [];
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    metafile: true,
    minifyWhitespace: true, // drops comments, which may name Node globals harmlessly
    logLevel: 'silent',
    loader: { '.wgsl': 'text' },
    plugins: [
      {
        name: 'record-node-only',
        setup(b) {
          b.onResolve({ filter: /.*/ }, (args) => {
            const bare = args.path.replace(/\/.*$/, '');
            if (!NODE_ONLY.has(args.path) && !NODE_ONLY.has(bare)) return undefined;
            externals.push(`${args.importer} -> ${args.path}`);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  return { code: result.outputFiles[0]!.text, externals, metafile: result.metafile };
}

/** Uses of Node-only globals in bundled code (an unguarded `process.` would throw in a page). */
function nodeGlobals(code: string): string[] {
  const found = code.match(/(?<![.\w$])(process\.\w+|setImmediate|SharedArrayBuffer|Buffer\.\w+|__dirname|require\()/g) ?? [];
  return [...new Set(found)];
}

for (const entry of ['src/engine/index.ts', 'src/align/index.ts']) {
  test(`${entry} bundles for the browser without Node built-ins or webgpu`, async () => {
    const { code, externals, metafile } = await browserBundle(entry);
    assert.equal(externals, [], `Node-only imports reachable from ${entry}`);
    const inputs = Object.keys(metafile.inputs);
    assert.ok(inputs.some((f) => f.endsWith('.wgsl')), 'the bundle holds the WGSL kernels as text');
    assert.not.ok(inputs.some((f) => f.includes('node_modules/webgpu')), 'the webgpu package is bundled');
    assert.equal(nodeGlobals(code), [], `Node-only globals in the bundle of ${entry}`);
  });
}

test('the check catches a Node built-in and a Node global', async () => {
  // The same checks on a module that imports node:fs and reads process.env directly.
  const { externals } = await browserBundle('src/engine/dawn.ts');
  assert.ok(externals.some((e) => e.endsWith('-> webgpu')), 'dawn.ts imports webgpu');
  assert.equal(nodeGlobals('const a = process.env.X; const b = globalThis.process?.env; setImmediate(f);'), ['process.env', 'setImmediate']);
});

test.run();
