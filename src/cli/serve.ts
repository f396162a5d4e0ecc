// `neuralign serve`: the browser pages (kernel lab, report viewer, live page) and the run folders on
// localhost, until Ctrl-C. The pages are built by `npm run build` into dist/web/ beside the CLI.
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError, type FlagSpec } from './args.js';
import { defineCommand } from './command.js';
import { startStaticServer } from './static-server.js';

const spec = {
  port: { type: 'number', default: 8080, help: 'TCP port on localhost (0 picks a free one)' },
  runs: { type: 'string', default: 'runs', help: 'the folder of run folders, served read-only under /runs/ for the report viewer' },
  web: { type: 'string', help: 'the folder of built pages (default: web/ beside this CLI, i.e. dist/web/)' },
} satisfies FlagSpec;

/** dist/web/ for dist/cli.js: the CLI is one bundle, so its own URL locates the pages. */
function defaultWebDir(): string {
  return fileURLToPath(new URL('./web/', import.meta.url));
}

export const serve = defineCommand({
  usage: 'neuralign serve [--port 8080] [--runs runs/] [--web DIR]',
  description: 'Serves the browser pages (kernel lab, report viewer, live alignment) and the run folders on localhost; prints the URL. Ctrl-C stops it.',
  spec,
  device: false,
  async run(flags) {
    if (!Number.isInteger(flags.port) || flags.port < 0 || flags.port > 65535) throw new UsageError(`--port needs an integer from 0 to 65535, got ${flags.port}`);
    const webDir = flags.web ?? defaultWebDir();
    if (!existsSync(webDir)) throw new Error(`no pages at ${webDir}: run \`npm run build\` first (it writes dist/web/)`);
    const runsDir = existsSync(flags.runs) ? flags.runs : undefined;
    const server = await startStaticServer({ webDir, runsDir, port: flags.port });
    console.log(`neuralign serve: ${server.url} (pages ${webDir}; run folders ${runsDir ?? `none: ${flags.runs} does not exist`})`);
    const pages = readdirSync(webDir).filter((f) => f.endsWith('.html') && f !== 'index.html');
    for (const p of pages) console.log(`  ${server.url}${p}`);
    console.log('Ctrl-C stops it.');
    await new Promise<void>((done) => server.server.on('close', () => done()));
    return 0;
  },
});
