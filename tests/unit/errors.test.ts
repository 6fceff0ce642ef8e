// The error catalogue is the one list: statuses come from it, and the docs' error tables are generated from it.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_DOCS, withErrorTable } from '../../scripts/error-reference.js';
import { ERROR_ROWS, errorBody, statusOf, VeerError } from '../../src/errors.js';
import { ERROR_STATUS } from '../../src/proxy/errors.js';

describe('the error catalogue', () => {
  it('gives each code the status of its first row, and lets a sender name another row', () => {
    expect(statusOf('upstream_timeout')).toBe(504);
    expect(statusOf('bad_request')).toBe(400);
    expect(new VeerError('conflict', 'no').status).toBe(409);
    expect(new VeerError('bad_request', 'too big', 431).status).toBe(431);
    expect(ERROR_STATUS.upstream_unavailable).toBe(503);
  });

  it('sends every error in one JSON shape, with problems only when there are some', () => {
    expect(JSON.parse(errorBody('bad_config', 'invalid', ['a: b']))).toEqual({
      error: { code: 'bad_config', message: 'invalid', problems: ['a: b'] },
    });
    expect(JSON.parse(errorBody('not_found', 'no route'))).toEqual({
      error: { code: 'not_found', message: 'no route' },
    });
  });

  it('declares each (plane, status, code) once', () => {
    const seen = ERROR_ROWS.map((row) => `${row.plane} ${row.status} ${row.code}`);
    expect(new Set(seen).size).toBe(seen.length);
  });

  for (const plane of ['proxy', 'admin'] as const) {
    it(`keeps ${ERROR_DOCS[plane]}'s error table in step with the catalogue (npm run docs:config)`, () => {
      const doc = readFileSync(new URL(`../../${ERROR_DOCS[plane]}`, import.meta.url), 'utf8');
      expect(withErrorTable(doc, plane)).toBe(doc);
    });
  }
});
