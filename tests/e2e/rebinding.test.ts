// DNS rebinding and cross-site pages in headless Chromium against a real veer: neither reads the admin API nor writes its audit log.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programPath, requireProgram } from '../helpers/programs.js';
import { type Stack, startStack } from '../helpers/stack.js';

const skip = requireProgram('chromium');
const CHROMIUM = programPath('chromium') ?? 'chromium';
const OPERATOR = 'rebinding-operator-0123456789';

/**
 * The attack an outside probe made work: a page on evil.example whose name then resolves to 127.0.0.1
 * (here Chromium's --host-resolver-rules maps it for good). The page's first load is the attacker's own
 * document (served by a route, as the attacker's server would before the rebinding); every request it
 * makes after that goes over the network to veer's admin port under the name evil.example, so the browser
 * treats veer's answers as same-origin and would hand them to the page.
 */

interface Probe {
  path: string;
  status: number;
  body: string;
}

let stack: Stack;
let browser: Browser;
let adminPort: number;
let auditPath: string;

beforeAll(async () => {
  if (skip) return;
  const dir = mkdtempSync(join(tmpdir(), 'veer-rebind-'));
  writeFileSync(join(dir, 'op'), `${OPERATOR}\n`);
  auditPath = join(dir, 'audit.jsonl');
  stack = await startStack({
    config: {
      admin: { tokens: [{ name: 'oncall', file: join(dir, 'op') }] },
      routing: { overrides: { new: ['alice@example.com'] } },
      state: { path: join(dir, 'state.json'), audit_path: auditPath },
    },
  });
  adminPort = Number(new URL(stack.adminUrl).port);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    chromiumSandbox: false,
    args: [
      '--host-resolver-rules=MAP evil.example 127.0.0.1',
      // Chromium's own Local Network Access checks would stop the page before veer is asked (the page's
      // first document comes from a route, which Chromium counts as public). Firefox and Safari have no
      // such checks, and a user may allow them: veer must hold without the browser's help.
      '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

const auditLines = () => readFileSync(auditPath, 'utf8').split('\n').filter(Boolean).length;

/** Opens the attacker's page at `origin` and runs `probe` in it; what the page could read comes back. */
async function fromPage(origin: string, probe: string): Promise<Probe[]> {
  const page = await browser.newPage();
  try {
    await page.route(`${origin}/attack.html`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>cats</title>' }),
    );
    await page.goto(`${origin}/attack.html`);
    return (await page.evaluate(probe)) as Probe[];
  } finally {
    await page.close();
  }
}

const READ_EVERYTHING = `(async () => {
  const out = [];
  for (const path of ['/api/status', '/api/overrides', '/api/audit', '/metrics', '/']) {
    try {
      const res = await fetch(path);
      out.push({ path, status: res.status, body: await res.text() });
    } catch (err) {
      out.push({ path, status: 0, body: String(err) });
    }
  }
  return out;
})()`;

describe.skipIf(skip)('a DNS-rebinding page', () => {
  it('reaches veer under its own name but reads nothing: 421 on every route', async () => {
    const got = await fromPage(`http://evil.example:${adminPort}`, READ_EVERYTHING);
    expect(got.map((p) => p.status)).toEqual([421, 421, 421, 421, 421]);
    for (const p of got) {
      // It was veer that answered (the rebinding worked), and it said nothing of the rollout.
      expect(JSON.parse(p.body).error.code).toBe('misdirected_request');
      expect(p.body).not.toMatch(/alice|test-rollout|veer_requests_total|weight/);
    }
  });

  it('cannot write to the audit log with no-cors POSTs either', async () => {
    const before = auditLines();
    const version = stack.veer.controller.snapshot.version;
    await fromPage(
      `http://evil.example:${adminPort}`,
      `(async () => {
        for (let i = 0; i < 50; i++) {
          await fetch('/api/kill', { method: 'POST', mode: 'no-cors', body: '{"reason":"x"}' }).catch(() => {});
        }
        return [];
      })()`,
    );
    expect(auditLines()).toBe(before);
    expect(stack.veer.controller.snapshot.version).toBe(version);
  });
});

describe.skipIf(skip)('a page on another site aiming at 127.0.0.1', () => {
  it('cannot read the API (no CORS) and its no-cors POSTs are refused before they are audited', async () => {
    const before = auditLines();
    const admin = `http://127.0.0.1:${adminPort}`;
    const got = await fromPage(
      // Another port of evil.example: a page that is not served by veer at all.
      `http://evil.example:${adminPort + 1}`,
      `(async () => {
        const out = [];
        try {
          const res = await fetch('${admin}/api/status');
          out.push({ path: 'read', status: res.status, body: await res.text() });
        } catch (err) {
          out.push({ path: 'read', status: 0, body: String(err) });
        }
        for (let i = 0; i < 30; i++) {
          await fetch('${admin}/api/kill', { method: 'POST', mode: 'no-cors', body: '{"reason":"x"}' }).catch(() => {});
        }
        return out;
      })()`,
    );
    // The browser withholds the answer (no Access-Control-Allow-Origin): a TypeError, status 0.
    expect(got).toEqual([{ path: 'read', status: 0, body: expect.stringContaining('TypeError') }]);
    // The POSTs reached veer (Sec-Fetch-Site: cross-site) and were turned away before any audit line.
    expect(auditLines()).toBe(before);
    const refused = (await stack.veer.metrics.adminRequests.get()).values.filter(
      (v) => v.labels.code === '403' && v.labels.route === 'unknown',
    );
    expect(refused.reduce((n, v) => n + v.value, 0)).toBeGreaterThanOrEqual(30);
  });

  it('the same API still answers the operator at 127.0.0.1', async () => {
    const page = await browser.newPage();
    const res = await page.goto(`http://127.0.0.1:${adminPort}/api/status`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['x-content-type-options']).toBe('nosniff');
    await page.close();
  });
});
