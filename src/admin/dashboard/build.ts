// `npm run build`'s last step: bundles the dashboard (page, script with uPlot inside, stylesheet) into dist/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ASSET_FILES, bundleDashboard } from './bundle.js';

// It lives in src/ (not scripts/) because the Docker build copies only src/. tsc compiles dashboard.ts to
// dist/src/admin/dashboard/, and the built server looks for assets/ beside it.
const out = fileURLToPath(new URL('../../../dist/src/admin/dashboard/assets/', import.meta.url));
const assets = await bundleDashboard();
mkdirSync(out, { recursive: true });
for (const kind of ['html', 'js', 'css'] as const) writeFileSync(`${out}${ASSET_FILES[kind]}`, assets[kind]);
const kb = (s: string) => (Buffer.byteLength(s) / 1024).toFixed(1);
process.stdout.write(
  `dashboard assets in ${out}: ${ASSET_FILES.html} ${kb(assets.html)} KiB, ` +
    `${ASSET_FILES.js} ${kb(assets.js)} KiB, ${ASSET_FILES.css} ${kb(assets.css)} KiB\n`,
);
