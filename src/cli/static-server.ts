// The HTTP server behind `neuralign serve`: the browser pages (dist/web/) at /, and the run
// folders read-only under /runs/ (a folder listing as JSON at /runs/ and /runs/<folder>/, so the
// report viewer can find results.json). Node's http module only; a request that names a path
// outside its root (`..`, an encoded slash or backslash, a NUL) is refused with 400.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

export interface StaticServerOptions {
  /** The folder of the browser pages (index.html, lab.html, the bundles). */
  webDir: string;
  /** The folder of run folders, served under /runs/ (undefined: no /runs/). */
  runsDir?: string;
  /** 0 picks a free port. */
  port: number;
  host?: string;
}

export interface RunningServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'application/jsonl; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The file a URL path names under `root`, or null when the path leaves it or is malformed.
 * Segments are decoded one by one, so `%2e%2e` and `%2f` cannot smuggle a `..` or a separator.
 */
export function resolveUnder(root: string, urlPath: string): string | null {
  const segments: string[] = [];
  for (const raw of urlPath.split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (seg === '' || seg === '.') continue;
    if (seg === '..' || /[/\\\0]/.test(seg)) return null;
    segments.push(seg);
  }
  const base = resolve(root);
  const file = resolve(base, ...segments);
  return file === base || file.startsWith(base + sep) ? file : null;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

/** A folder as JSON: its entries with whether each is a folder, for the report viewer. */
function listing(dir: string): string {
  const entries = readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .map((e) => ({ name: e.name, dir: e.isDirectory() }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return JSON.stringify({ entries });
}

function serveFile(req: IncomingMessage, res: ServerResponse, root: string, path: string, listDirs: boolean): void {
  const file = resolveUnder(root, path);
  if (file === null) return send(res, 400, 'bad path\n');
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return send(res, 404, 'not found\n');
  }
  if (stat.isDirectory()) {
    const index = join(file, 'index.html');
    if (existsSync(index)) return serveFile(req, res, root, `${path}/index.html`, listDirs);
    if (listDirs) return send(res, 200, listing(file), TYPES['.json']);
    return send(res, 404, 'not found\n');
  }
  res.writeHead(200, {
    'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': stat.size,
    'Cache-Control': 'no-store',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}

function handler(opts: StaticServerOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'GET only\n');
    const path = (req.url ?? '/').split(/[?#]/)[0]!;
    if (path === '/runs' || path.startsWith('/runs/')) {
      if (!opts.runsDir) return send(res, 404, 'no run folders served (neuralign serve --runs DIR)\n');
      return serveFile(req, res, opts.runsDir, path.slice('/runs'.length), true);
    }
    serveFile(req, res, opts.webDir, path, false);
  };
}

/** Starts the server; rejects with a one-line reason when the port is taken or not allowed. */
export function startStaticServer(opts: StaticServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer(handler(opts));
  return new Promise((resolvePromise, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new Error(`port ${opts.port} is in use; pick another with --port (0: any free port)`));
      else if (e.code === 'EACCES') reject(new Error(`port ${opts.port} needs privileges; pick one above 1023 with --port`));
      else reject(e);
    });
    server.listen(opts.port, host, () => {
      const port = (server.address() as AddressInfo).port;
      resolvePromise({
        server,
        port,
        url: `http://localhost:${port}/`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
