// Builds the dashboard's three assets (page, script with uPlot bundled in, stylesheet) from source with esbuild.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface DashboardAssets {
  html: string;
  js: string;
  css: string;
}

/** The asset file names, as written by `npm run build` and read back by the server. */
export const ASSET_FILES = { html: 'index.html', js: 'app.js', css: 'app.css' } as const;

/**
 * Needs esbuild (a devDependency) and the client source, so it runs at build time and, when veer runs from
 * source (tests, `npm start`), lazily on the first page request; a production install serves the files
 * `npm run build` wrote and never gets here.
 */
export async function bundleDashboard(): Promise<DashboardAssets> {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [`${dir}client/app.ts`],
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['chrome109', 'firefox115', 'safari16'],
    write: false,
    outdir: 'out',
    entryNames: 'app',
    // uPlot's own header is not a legal comment, so its MIT notice is restated.
    banner: { js: '/*! uPlot (c) Leon Sorokin, MIT License, https://github.com/leeoniya/uPlot */' },
    legalComments: 'eof',
    logLevel: 'silent',
  });
  const pick = (ext: string) => {
    const file = result.outputFiles.find((f) => f.path.endsWith(ext));
    if (!file) throw new Error(`dashboard bundle: esbuild produced no ${ext} file`);
    return file.text;
  };
  return { html: await readFile(`${dir}page.html`, 'utf8'), js: pick('.js'), css: pick('.css') };
}
