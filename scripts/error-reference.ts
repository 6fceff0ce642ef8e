// Writes the error tables of docs/errors.md (proxy) and docs/admin-api.md (admin) from the catalogue in src/errors.ts.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_ROWS, type ErrorRow } from '../src/errors.js';

const root = new URL('../', import.meta.url);

export const ERROR_DOCS: Readonly<Record<ErrorRow['plane'], string>> = {
  proxy: 'docs/errors.md',
  admin: 'docs/admin-api.md',
};

export function errorTable(plane: ErrorRow['plane']): string {
  const rows = ERROR_ROWS.filter((row) => row.plane === plane).sort((a, b) => a.status - b.status);
  return [
    '| status | code | when |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.status} | \`${r.code}\` | ${r.when} |`),
  ].join('\n');
}

/** The doc with its table between the `errors:<plane>` markers replaced by the catalogue's rows. */
export function withErrorTable(doc: string, plane: ErrorRow['plane']): string {
  const start = `<!-- errors:${plane}:start -->`;
  const end = `<!-- errors:${plane}:end -->`;
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${ERROR_DOCS[plane]} has no ${start} ... ${end} markers`);
  return `${doc.slice(0, a + start.length)}\n${errorTable(plane)}\n${doc.slice(b)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const plane of ['proxy', 'admin'] as const) {
    const path = new URL(ERROR_DOCS[plane], root);
    writeFileSync(path, withErrorTable(readFileSync(path, 'utf8'), plane));
    process.stdout.write(`${ERROR_DOCS[plane]} error table updated\n`);
  }
}
