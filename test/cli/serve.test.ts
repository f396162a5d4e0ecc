// `neuralign serve`'s server (src/cli/static-server.ts): the pages and run folders are served,
// a path that leaves its root is refused, and a taken port is a one-line error.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveUnder, startStaticServer } from '../../src/cli/static-server.js';

const test = suite('serve');

function fetchRaw(port: number, path: string): Promise<{ status: number; body: string }> {
  // node:http sends the path as given (no normalization of `..`), unlike fetch().
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

function folders(): { web: string; runs: string; secret: string } {
  const root = mkdtempSync(join(tmpdir(), 'neuralign-serve-'));
  const web = join(root, 'web');
  const runs = join(root, 'runs');
  mkdirSync(web);
  mkdirSync(join(runs, 'quick'), { recursive: true });
  writeFileSync(join(web, 'index.html'), '<p>index</p>');
  writeFileSync(join(runs, 'quick', 'results.json'), '{"ok":true}');
  writeFileSync(join(root, 'secret.txt'), 'secret');
  return { web, runs, secret: join(root, 'secret.txt') };
}

test('resolveUnder keeps paths inside the root', () => {
  assert.is(resolveUnder('/srv/web', '/a/b.html'), '/srv/web/a/b.html');
  assert.is(resolveUnder('/srv/web', '/'), '/srv/web');
  for (const bad of ['/../x', '/a/../../x', '/%2e%2e/x', '/a%2f..%2f..%2fx', '/a%5c..%5cx', '/a%00', '/%zz']) {
    assert.is(resolveUnder('/srv/web', bad), null, bad);
  }
});

test('pages, run folders and listings are served; traversal is refused', async () => {
  const { web, runs } = folders();
  const server = await startStaticServer({ webDir: web, runsDir: runs, port: 0 });
  try {
    assert.equal(await fetchRaw(server.port, '/'), { status: 200, body: '<p>index</p>' });
    assert.equal(await fetchRaw(server.port, '/runs/quick/results.json'), { status: 200, body: '{"ok":true}' });
    assert.equal(JSON.parse((await fetchRaw(server.port, '/runs/')).body), { entries: [{ name: 'quick', dir: true }] });
    assert.is((await fetchRaw(server.port, '/missing.html')).status, 404);
    for (const path of ['/../secret.txt', '/runs/../../secret.txt', '/%2e%2e/secret.txt', '/runs/%2e%2e/%2e%2e/secret.txt']) {
      const r = await fetchRaw(server.port, path);
      assert.is(r.status, 400, path);
      assert.not.match(r.body, /secret/);
    }
  } finally {
    await server.close();
  }
});

test('a port in use is a one-line error', async () => {
  const { web } = folders();
  const first = await startStaticServer({ webDir: web, port: 0 });
  try {
    const second = startStaticServer({ webDir: web, port: first.port });
    await second.then(
      (s) => (s.close(), assert.unreachable('a second server on the same port started')),
      (e: Error) => assert.match(e.message, new RegExp(`^port ${first.port} is in use; pick another with --port`)),
    );
  } finally {
    await first.close();
  }
});

test.run();
