// The dashboard in headless Chromium against a real veer and mock upstreams: clean load, live charts, rollback, kill.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programPath, requireProgram } from '../helpers/programs.js';
import { type Stack, startStack } from '../helpers/stack.js';

const skip = requireProgram('chromium');
const CHROMIUM = programPath('chromium') ?? 'chromium';
const OPERATOR = 'dashboard-operator-0123456789';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

let page: Page;

/** Waits for the confirmation dialog, types `reason` when given, and confirms. */
async function confirm(reason?: string): Promise<void> {
  await page.waitForSelector('#confirm-dialog[open]', { timeout: 5000 });
  if (reason !== undefined) await page.fill('#confirm-reason', reason);
  await page.click('#confirm-ok');
  await page.waitForSelector('#confirm-dialog:not([open])', { state: 'attached', timeout: 5000 });
}

async function status(stack: Stack) {
  const res = await request(`${stack.adminUrl}/api/status`);
  return (await res.body.json()) as {
    rollout: {
      state: string;
      weight_percent: number;
      kill_reason: string | null;
      last_change: { actor: string; action: string; reason: string } | null;
    };
  };
}

/**
 * Open-loop client traffic until stopped: a streaming completion every `everyMs`, without waiting for the
 * previous one (as real clients do), so a slow upstream cannot throttle its own samples away. No key: the
 * hash draws each request's side.
 */
function traffic(url: string, everyMs: number, maxInflight = 200) {
  const inflight = new Set<Promise<void>>();
  const one = async () => {
    try {
      const res = await request(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"stream":true}',
      });
      await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
    } catch {
      // A 5xx or a reset is traffic too.
    }
  };
  const timer = setInterval(() => {
    if (inflight.size >= maxInflight) return;
    const p = one().finally(() => inflight.delete(p));
    inflight.add(p);
  }, everyMs);
  return async () => {
    clearInterval(timer);
    await Promise.all(inflight);
  };
}

describe.skipIf(skip)('dashboard in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  let stopTraffic: () => Promise<void>;
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  const foreign: string[] = [];
  /** Measured figures, saved next to the screenshots. */
  const figures: Record<string, number> = {};

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-dash-'));
    writeFileSync(join(dir, 'op'), `${OPERATOR}\n`);
    stack = await startStack({
      legacy: { ttfb: 5, tokens: 3, tokenIntervalMs: 2 },
      next: { ttfb: 5, tokens: 3, tokenIntervalMs: 2 },
      config: {
        admin: { tokens: [{ name: 'oncall', file: join(dir, 'op') }] },
        rollout: { weight: 50 },
        routing: { overrides: { legacy: ['vip-7'] } },
        // A short window and interval so a degradation is judged within a second or two.
        slo: {
          window: '3s',
          slices: 6,
          interval: '250ms',
          min_samples: 30,
          rules: ['ttfb_p95 <= 500ms', 'error_rate <= 5%'],
        },
      },
    });
    // Bundling the page and starting Chromium take the CPU for a moment: do both before the traffic starts, so
    // no stall on this 2-core machine can look like a slow upstream to the guard.
    const warm = await request(`${stack.adminUrl}/dashboard/app.js`);
    await warm.body.dump({ limit: Number.MAX_SAFE_INTEGER });
    expect(warm.statusCode).toBe(200);
    browser = await chromium.launch({ executablePath: CHROMIUM, chromiumSandbox: false });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('request', (r) => {
      if (!r.url().startsWith(`${stack.adminUrl}/`) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    stopTraffic = traffic(stack.url, 20);
  });

  afterAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'dashboard-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
    await browser?.close();
    await stopTraffic?.();
    await stack?.close();
  });

  it('loads with no console errors and no request outside the admin listener', async () => {
    const res = await page.goto(`${stack.adminUrl}/`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('#state[data-state="progressing"]', { timeout: 5000 });
    expect(await page.textContent('#rollout-id')).toBe('test-rollout');
    expect(await page.textContent('#weight')).toBe('50 %');
    await page.waitForSelector('#rules tbody tr[data-status]');
    await page.waitForSelector('#audit tbody tr[data-action="start"]');
    // Override keys act as bearer secrets: the status carries them only for a token holder.
    expect(await page.textContent('#overrides-legacy')).toContain('shown with a token');
    // Warm (assets bundled by the first load): the whole page, script included, loads within a second.
    await page.reload();
    await page.waitForSelector('#state[data-state="progressing"]');
    // Page-side code is passed as text (this project's types are Node's); evaluate() is exempt from the CSP.
    const loadMs = Number(
      await page.evaluate(
        `(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; })()`,
      ),
    );
    figures.warm_load_ms = loadMs;
    expect(loadMs).toBeLessThan(1000);
    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(foreign).toEqual([]);
  });

  it('draws data points on every chart and keeps adding them', async () => {
    const points = async (id: string) => Number(await page.getAttribute(`#${id}`, 'data-points'));
    const charts = ['chart-latency', 'chart-errors', 'chart-rps', 'chart-share', 'chart-decode', 'chart-completeness'];
    for (const id of charts) {
      await expect.poll(() => points(id), { timeout: 8000, interval: 100 }).toBeGreaterThanOrEqual(3);
      expect(await page.locator(`#${id} canvas`).count()).toBe(1);
    }
    const before = await points('chart-rps');
    await expect.poll(() => points('chart-rps'), { timeout: 4000, interval: 100 }).toBeGreaterThan(before);
    // The summary a screen reader gets carries real numbers, not dashes.
    expect(await page.textContent('#chart-rps-summary')).toMatch(/legacy \d+\.\d req\/s, new \d+\.\d req\/s/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    expect(consoleErrors).toEqual([]);
  });

  it('shows the API refusal when the kill switch is used without a token, from the keyboard', async () => {
    await page.focus('#kill-open');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement?.id')).toBe('kill-reason');
    await page.keyboard.type('trying without a token');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.id')).toBe('kill-confirm');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#action-result[data-ok="false"]', { timeout: 5000 });
    const text = await page.textContent('#action-result');
    expect(text).toContain('401 unauthorized');
    expect(text).toContain('send Authorization: Bearer <token>');
    // The refused kill changed nothing (on a loaded machine the guard itself may have rolled back by now).
    const after = await status(stack);
    expect(after.rollout.state, JSON.stringify(after.rollout)).not.toBe('killed');
    expect(after.rollout.kill_reason).toBeNull();
    expect(after.rollout.last_change?.actor ?? 'config').not.toMatch(/^admin:/);
  });

  it('turns the state on the page to rolled back within a few seconds of new degrading', async () => {
    const started = Date.now();
    stack.next.set({ ttfb: 900 });
    await page.waitForSelector('#state[data-state="rolled_back"]', { timeout: 10_000 });
    const seconds = (Date.now() - started) / 1000;
    figures.degrade_to_rolled_back_on_page_s = seconds;
    expect(seconds).toBeLessThan(10);
    expect(await page.textContent('#state')).toBe('rolled back');
    expect(await page.textContent('#weight')).toBe('0 %');
    await page.waitForSelector('#audit tbody tr[data-action="rollback"]', { timeout: 6000 });
    // The cause reads in the header: who acted, and which rule breached (new's samples drain after the rollback,
    // so the rules table soon shows the rule inconclusive again).
    const cause = await page.textContent('#last-change');
    expect(cause).toContain('rollback by slo-guard: SLO breach');
    expect(cause).toContain('ttfb_p95');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-rolled-back.png'), fullPage: true });
  });

  it('kills the rollout with a token kept in sessionStorage, never in the URL', async () => {
    await page.fill('#token', OPERATOR);
    await page.click('#token-form button[type="submit"]');
    expect(await page.inputValue('#token')).toBe('');
    expect(page.url()).not.toContain(OPERATOR);
    expect(await page.evaluate('Object.values(sessionStorage)')).toEqual([OPERATOR]);
    await page.click('#kill-open');
    await page.fill('#kill-reason', 'new backend melting, paging the owners');
    await page.click('#kill-confirm');
    await page.waitForSelector('#action-result[data-ok="true"]', { timeout: 5000 });
    expect(await page.textContent('#action-result')).toContain('Kill: done');
    const s = await status(stack);
    expect(s.rollout.state).toBe('killed');
    expect(s.rollout.kill_reason).toBe('new backend melting, paging the owners');
    await page.waitForSelector('#state[data-state="killed"]', { timeout: 5000 });
    await page.waitForSelector('#audit tbody tr[data-action="kill"]', { timeout: 5000 });
    expect(await page.textContent('#audit tbody tr[data-action="kill"]')).toContain('admin:oncall');
  });

  it("promotes, resumes and sets the weight with the token after confirming each, showing a refusal in the API's words", async () => {
    const result = () => page.textContent('#action-result');
    await page.fill('#promote-reason', 'looks fine now');
    await page.click('#promote-form button[type="submit"]');
    await confirm();
    await expect.poll(result, { timeout: 5000 }).toContain('Promote refused: 409 conflict:');
    expect(await result()).toContain('killed');
    await page.click('#resume-form button[type="submit"]');
    await confirm();
    // A resume returns to exactly where the kill found the rollout.
    await expect.poll(result, { timeout: 5000 }).toContain('Resume: done');
    expect(await result()).toContain('The rollout is rolled back at 0 %.');
    stack.next.set({ ttfb: 5 });
    // New's slow samples from the degradation must leave the 3 s window first, or the guard rolls the new
    // weight back on them (it judges the window, not the moment) and races the operator steps below.
    const newWindowSamples = async () => {
      const res = await request(`${stack.adminUrl}/api/status`);
      return ((await res.body.json()) as { upstreams: { new: { samples: number } } }).upstreams.new.samples;
    };
    await expect.poll(newWindowSamples, { timeout: 8000, interval: 100 }).toBe(0);
    await page.fill('#weight-percent', '10');
    await page.fill('#weight-reason', 'retry on a small cohort');
    await page.press('#weight-reason', 'Enter');
    // The reason typed beside the button is offered in the dialog.
    expect(await page.inputValue('#confirm-reason')).toBe('retry on a small cohort');
    expect(await page.textContent('#confirm-title')).toBe('Set the weight on new to 10 %?');
    await confirm();
    await expect.poll(result, { timeout: 5000 }).toContain('Set weight: done');
    expect(await result()).toContain('The rollout is progressing at 10 %.');
    await page.waitForSelector('#audit tbody tr[data-action="weight"]', { timeout: 5000 });
    expect(await page.textContent('#audit tbody tr[data-action="weight"]')).toContain('retry on a small cohort');
    expect(pageErrors).toEqual([]);
    expect(foreign).toEqual([]);
  });

  it("shows each upstream's URL and the streams in flight on each side", async () => {
    const row = (side: string) => `#upstreams tbody tr[data-upstream="${side}"]`;
    await page.waitForSelector(row('new'));
    expect(await page.textContent(`${row('legacy')} td.url`)).toBe(stack.legacy.url);
    expect(await page.textContent(`${row('new')} td.url`)).toBe(stack.next.url);
    // Long streams on legacy (20 tokens, 150 ms apart) keep some open at any moment.
    stack.legacy.set({ tokens: 20, tokenIntervalMs: 150 });
    try {
      const inflight = async () => Number(await page.textContent(`${row('legacy')} td.inflight`));
      await expect.poll(inflight, { timeout: 8000, interval: 100 }).toBeGreaterThan(0);
    } finally {
      stack.legacy.set({ tokens: 3, tokenIntervalMs: 2 });
    }
  });

  it('rolls back only after confirming with a reason; Cancel sends nothing', async () => {
    await page.click('#rollback-form button[type="submit"]');
    await page.waitForSelector('#confirm-dialog[open]');
    expect(await page.textContent('#confirm-title')).toBe('Roll new back to 0 %?');
    // The reason is required: the dialog will not submit without one.
    await page.click('#confirm-ok');
    expect(await page.getAttribute('#confirm-dialog', 'open')).not.toBeNull();
    await page.click('#confirm-cancel');
    await page.waitForSelector('#confirm-dialog:not([open])', { state: 'attached' });
    // Nothing sent: no operator rollback in the audit log.
    const audit = (await (await request(`${stack.adminUrl}/api/audit?limit=50`)).body.json()) as {
      entries: { actor: string; action: string }[];
    };
    expect(audit.entries.filter((e) => e.actor === 'admin:oncall' && e.action === 'rollback')).toEqual([]);
    await page.click('#rollback-form button[type="submit"]');
    await confirm('canary answers look wrong');
    await expect.poll(() => page.textContent('#action-result'), { timeout: 5000 }).toContain('Rollback: done');
    const after = (await status(stack)).rollout;
    expect(after.state).toBe('rolled_back');
    expect(after.last_change).toMatchObject({
      actor: 'admin:oncall',
      action: 'rollback',
      reason: 'canary answers look wrong',
    });
    await page.waitForSelector('#state[data-state="rolled_back"]', { timeout: 5000 });
    await page.waitForSelector('#audit tbody tr[data-action="rollback"]', { timeout: 5000 });
    expect(await page.textContent('#audit tbody tr[data-action="rollback"]')).toContain('canary answers look wrong');
  });

  it('lists, pins and unpins override keys, showing what a client or operator wrote as text, never as markup', async () => {
    await page.waitForSelector('#overrides-legacy li[data-key="vip-7"]');
    const key = '<img src=x onerror="window.__owned=1">';
    const reason = '<script>window.__owned=2</script> QA cohort';
    await page.fill('#override-key', key);
    await page.selectOption('#override-side', 'new');
    await page.click('#override-form button[type="submit"]');
    await page.waitForSelector('#confirm-dialog[open]');
    expect(await page.textContent('#confirm-detail')).toContain(`Key: ${key}`);
    await confirm(reason);
    await expect.poll(() => page.textContent('#action-result'), { timeout: 5000 }).toContain('Pin: done');
    const overrides = (await (
      await request(`${stack.adminUrl}/api/overrides`, { headers: { authorization: `Bearer ${OPERATOR}` } })
    ).body.json()) as { new: string[] };
    expect(overrides.new).toContain(key);
    const item = page.locator('#overrides-new li').filter({ hasText: key });
    await item.waitFor({ timeout: 5000 });
    expect(await item.locator('code').textContent()).toBe(key);
    await page.waitForSelector('#audit tbody tr[data-action="overrides_set"]', { timeout: 5000 });
    expect(await page.textContent('#audit tbody tr[data-action="overrides_set"]')).toContain(reason);
    expect(await page.locator('#overrides-new img, #audit img, #audit script').count()).toBe(0);
    expect(await page.evaluate('window.__owned')).toBeUndefined();
    // Unpin it: confirmed, with a reason.
    await item.locator('button').click();
    await page.waitForSelector('#confirm-dialog[open]');
    expect(await page.textContent('#confirm-title')).toBe('Unpin this key from new?');
    await confirm('QA done');
    await expect.poll(() => page.textContent('#action-result'), { timeout: 5000 }).toContain('Unpin: done');
    await expect.poll(() => item.count(), { timeout: 5000 }).toBe(0);
    expect(
      (
        (await (
          await request(`${stack.adminUrl}/api/overrides`, { headers: { authorization: `Bearer ${OPERATOR}` } })
        ).body.json()) as { new: string[] }
      ).new,
    ).not.toContain(key);
    expect(pageErrors).toEqual([]);
  });

  it("asks before a reload and shows the API's refusal with its problems", async () => {
    await page.click('#reload-form button[type="submit"]');
    await page.waitForSelector('#confirm-dialog[open]');
    expect(await page.textContent('#confirm-title')).toBe('Reload the config file?');
    await confirm();
    await expect
      .poll(() => page.textContent('#action-result'), { timeout: 5000 })
      .toContain('Reload refused: 400 bad_config:');
    // This veer runs from a config object, not a file: the API says so, and the page repeats it.
    expect(await page.textContent('#action-result')).toContain('not started from a config file');
    expect(await page.getAttribute('#action-result', 'data-ok')).toBe('false');
  });

  it('switches the charts between 5 min, 15 min and 1 h of the sampler, and keeps the choice for the tab', async () => {
    const options = await page.$$eval('#range option', (els) => els.map((e) => e.textContent));
    expect(options).toEqual(['5 min', '15 min', '1 h']);
    expect(await page.getAttribute('#chart-grid', 'data-range')).toBe('300');
    await page.selectOption('#range', '3600');
    await page.waitForSelector('#chart-grid[data-range="3600"]');
    expect(await page.textContent('#range-note')).toMatch(/^last 1 h/);
    // Fewer points than the range holds: every point veer has is drawn.
    const drawn = Number(await page.getAttribute('#chart-latency', 'data-points'));
    expect(drawn).toBe(Number(await page.getAttribute('#chart-grid', 'data-points')));
    expect(drawn).toBeGreaterThan(3);
    await page.selectOption('#range', '900');
    await page.reload();
    await page.waitForSelector('#chart-grid[data-range="900"]', { timeout: 5000 });
    expect(await page.inputValue('#range')).toBe('900');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-actions.png'), fullPage: true });
    // The refusals above (401, 409, 400) are logged by the browser as failed loads; nothing else may be.
    expect(
      consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(e)),
    ).toEqual([]);
    expect(foreign).toEqual([]);
  });
});
