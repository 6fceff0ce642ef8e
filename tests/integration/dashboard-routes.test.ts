// The dashboard's routes on a real admin listener: a self-contained page under a strict CSP, and /api/series.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.js';

const READER = 'reader-secret-0123456789ab';

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('dashboard routes', () => {
  let stack: Stack;
  let now = Date.parse('2026-11-24T15:00:00Z');
  beforeAll(async () => {
    stack = await startStack({ clock: () => now });
    // Samples are taken by hand on a stepped clock below, not by the one-second timer.
    stack.veer.series.stop();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('serves the page at / with a CSP that allows nothing but this listener', async () => {
    const r = await get(`${stack.adminUrl}/`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/https?:|\*/);
    // Every URL the page references is on this listener.
    const refs = [...r.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs).toEqual(expect.arrayContaining(['/dashboard/app.css', '/dashboard/app.js']));
    for (const ref of refs) expect(ref).toMatch(/^(\/|#|data:)/);
  });

  it('serves a script with uPlot bundled in and its stylesheet', async () => {
    const js = await get(`${stack.adminUrl}/dashboard/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.text).toContain('uPlot');
    expect(js.text).not.toMatch(/\bimport\s*\(|from\s*["']/);
    const css = await get(`${stack.adminUrl}/dashboard/app.css`);
    expect(css.status).toBe(200);
    expect(css.text).toContain('.uplot');
  });

  it('answers /api/series with the sampled points, and only the newer ones after since', async () => {
    for (let i = 0; i < 3; i++) {
      now += 1000;
      stack.veer.series.sample();
    }
    const all = JSON.parse((await get(`${stack.adminUrl}/api/series`)).text);
    expect(all.interval_ms).toBe(1000);
    expect(all.time).toBe(new Date(now).toISOString());
    expect(all.points.map((p: { t: number }) => p.t)).toEqual([now - 2000, now - 1000, now]);
    const [a, b] = all.points;
    expect(Object.keys(a.new)).toEqual([
      ...['ttfb_p50_ms', 'ttfb_p95_ms', 'ttfb_p99_ms', 'error_rate', 'rps'],
      ...['itl_p50_ms', 'itl_p99_ms', 'tpot_p95_ms', 'incomplete_rate', 'inband_error_rate', 'empty_rate'],
    ]);
    const later = JSON.parse((await get(`${stack.adminUrl}/api/series?since=${a.t}`)).text);
    expect(later.points[0].t).toBe(b.t);
    const bad = await get(`${stack.adminUrl}/api/series?since=yesterday`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.code).toBe('bad_request');
  });

  it('asks for a token on /api/series when reads require one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-dash-'));
    writeFileSync(join(dir, 'ro'), `${READER}\n`);
    const closed = await startStack({
      config: {
        admin: { read_requires_token: true, tokens: [{ name: 'viewer', file: join(dir, 'ro'), role: 'read' }] },
      },
    });
    try {
      const no = await get(`${closed.adminUrl}/api/series`);
      expect(no.status).toBe(401);
      expect(JSON.parse(no.text).error.code).toBe('unauthorized');
      const yes = await get(`${closed.adminUrl}/api/series`, { authorization: `Bearer ${READER}` });
      expect(yes.status).toBe(200);
      // The page itself holds no data, so it loads without a token and asks for one.
      expect((await get(`${closed.adminUrl}/`)).status).toBe(200);
    } finally {
      await closed.close();
    }
  });
});
