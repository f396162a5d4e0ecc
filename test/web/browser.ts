// Shared by the browser tests: Debian's chromium driven by playwright-core (no browser download),
// with WebGPU on SwiftShader (a CPU adapter), and the built pages served in-process.
import { existsSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { suite, type Test } from 'uvu';
import { startStaticServer, type RunningServer } from '../../src/cli/static-server.js';

/** The browser: NEURALIGN_CHROMIUM, else Debian's /usr/bin/chromium (scripts/setup.sh installs it). */
export const CHROMIUM = process.env.NEURALIGN_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null. */
export const browserSkipReason: string | null = existsSync(CHROMIUM)
  ? null
  : `no chromium at ${CHROMIUM} (Debian: apt-get install chromium, which scripts/setup.sh does as root; or set NEURALIGN_CHROMIUM)`;

/**
 * WebGPU in headless chromium without a GPU: --enable-unsafe-webgpu turns it on for Linux, and
 * SwiftShader (chromium's own Vulkan on the CPU) is its adapter.
 */
export const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** The built pages: BUILD_DIR/web/, as `node scripts/build.mjs` writes them (scripts/test.mjs sets BUILD_DIR). */
export function webDir(): string {
  const dir = join(process.env.NEURALIGN_BUILD_DIR ?? 'dist', 'web');
  if (!existsSync(join(dir, 'lab.html'))) throw new Error(`no built pages at ${dir}: run node scripts/build.mjs first`);
  return dir;
}

/** Serves the built pages and `runsDir` (default: a new empty folder) on a free port. */
export function servePages(runsDir = mkdtempSync(join(tmpdir(), 'neuralign-runs-'))): Promise<RunningServer> {
  return startStaticServer({ webDir: webDir(), runsDir, port: 0 });
}

/** What a browser suite's tests use: set by its `before` hook (absent when the suite is skipped). */
export interface BrowserSession {
  browser?: Browser;
  server?: RunningServer;
}

/**
 * A uvu suite whose `before` starts the browser and serves the pages (and `runsDir()`, default a
 * new empty folder) and whose `after` stops both; nothing starts where browserSkipReason says the
 * browser is missing (the tests are then registered as skipped through testUnless).
 */
export function browserSuite(name: string, runsDir?: () => string): { test: Test; session: BrowserSession } {
  const test = suite(name);
  const session: BrowserSession = {};
  test.before(async () => {
    if (browserSkipReason) return;
    session.server = await servePages(runsDir?.());
    session.browser = await launchBrowser();
  });
  test.after(async () => {
    await session.browser?.close();
    await session.server?.close();
  });
  return { test, session };
}
