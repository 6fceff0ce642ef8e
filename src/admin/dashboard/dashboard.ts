// The dashboard's admin routes: the page at GET /, its script and stylesheet (its data: GET /api/series in routes.ts).

import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';
import { type AdminRoute, sendError } from '../server.js';
import { ASSET_FILES, bundleDashboard, type DashboardAssets } from './bundle.js';

export interface DashboardContext {
  logger: Logger;
}

/** Where `npm run build` puts the assets: next to this module's compiled file in dist/. */
const BUILT = new URL('./assets/', import.meta.url);

// The page loads nothing from anywhere but this listener; the browser enforces it too.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

let loading: Promise<DashboardAssets> | undefined;

async function readBuilt(): Promise<DashboardAssets> {
  const read = (name: string) => readFile(new URL(name, BUILT), 'utf8');
  const [html, js, css] = await Promise.all([read(ASSET_FILES.html), read(ASSET_FILES.js), read(ASSET_FILES.css)]);
  return { html, js, css };
}

/** Built files when present, otherwise a bundle made now from source; one attempt at a time, kept once made. */
function assets(): Promise<DashboardAssets> {
  loading ??= readBuilt()
    .catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return bundleDashboard();
    })
    .catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
  return loading;
}

export function dashboardRoutes(ctx: DashboardContext): AdminRoute[] {
  const serve = (kind: keyof DashboardAssets, type: string) => async (_req: IncomingMessage, res: ServerResponse) => {
    let body: string;
    try {
      body = (await assets())[kind];
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message }, 'dashboard assets unavailable');
      sendError(
        res,
        'dashboard_unavailable',
        'the dashboard assets are not built and cannot be bundled here: run `npm run build`',
      );
      return;
    }
    res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS });
    res.end(body);
  };

  return [
    { method: 'GET', path: '/', handler: serve('html', 'text/html; charset=utf-8') },
    { method: 'GET', path: '/dashboard/app.js', handler: serve('js', 'text/javascript; charset=utf-8') },
    { method: 'GET', path: '/dashboard/app.css', handler: serve('css', 'text/css; charset=utf-8') },
  ];
}
