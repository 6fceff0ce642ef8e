// Notifications through a running veer: a hanging webhook delays no decision, and each decision reaches a working one.

import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type Stack, startStack, waitFor } from '../helpers/stack.js';

const OPERATOR = 'operator-secret-0123456789';

function tokenFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'veer-tokens-')), 'op');
  writeFileSync(file, `${OPERATOR}\n`);
  return file;
}

/** A webhook receiver: `hang` accepts each request and never answers; otherwise 200. */
async function receiver(hang: boolean) {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      bodies.push(Buffer.concat(parts).toString('utf8'));
      if (!hang) res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const post = (stack: Stack, path: string, body: unknown) =>
  request(`${stack.adminUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${OPERATOR}` },
    body: JSON.stringify(body),
  });

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

describe('notifications from a running veer', () => {
  it('applies and answers a kill on time while the webhook hangs, and the webhook is still told', async () => {
    const hook = await receiver(true);
    cleanup.push(hook.close);
    const stack = await startStack({
      config: {
        admin: { tokens: [{ name: 'alice', file: tokenFile() }] },
        notify: [{ name: 'stuck', url: hook.url, events: ['kill', 'resume'], timeout: '30s' }],
      },
    });
    cleanup.push(() => stack.close());
    const started = performance.now();
    const res = await post(stack, '/api/kill', { reason: 'incident 7' });
    const answeredMs = performance.now() - started;
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(stack.veer.table.state).toBe('killed');
    expect(answeredMs).toBeLessThan(1000);
    // A second decision queues behind the stuck one and is not held up either.
    const again = performance.now();
    const resumed = await post(stack, '/api/resume', { reason: 'over' });
    await resumed.body.dump();
    expect(resumed.statusCode).toBe(200);
    expect(performance.now() - again).toBeLessThan(1000);
    await waitFor(() => hook.bodies.length === 1, 3000);
    expect(JSON.parse(hook.bodies[0]!)).toMatchObject({ event: 'kill', actor: 'admin:alice', reason: 'incident 7' });
  });

  it('tells a webhook of a rollback the guard made, with the rule that decided it', async () => {
    const hook = await receiver(false);
    cleanup.push(hook.close);
    const stack = await startStack({
      next: { errorRate: 1 },
      config: {
        rollout: { weight: 100 },
        slo: { interval: '100ms', min_samples: 5, rules: ['error_rate <= 1%'] },
        notify: [{ name: 'oncall', url: hook.url, events: ['rollback', 'breach'], format: 'json' }],
      },
    });
    cleanup.push(() => stack.close());
    for (let i = 0; i < 10; i++) {
      const res = await request(`${stack.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
      await res.body.dump();
    }
    await waitFor(() => hook.bodies.length >= 1, 5000);
    const payload = JSON.parse(hook.bodies[0]!);
    expect(payload).toMatchObject({
      event: 'rollback',
      actor: 'slo-guard',
      from: { weight_percent: 100 },
      to: { state: 'rolled_back', weight_percent: 0 },
    });
    expect(payload.rules).toEqual([expect.objectContaining({ name: 'error_rate', status: 'breach', value: 1 })]);
    // The rollback's own notification names the breach: no separate breach event for the same evaluation.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hook.bodies.map((body) => JSON.parse(body).event)).toEqual(['rollback']);
  });
});
