// End to end: the new upstream's TTFB degrades at runtime and veer rolls it back by itself, cutting no stream.

import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRule } from '../../src/config/rule.js';
import { judgeRule } from '../../src/guard/evaluate.js';
import { type Stack, startStack, waitFor } from '../helpers/stack.js';

const INTERVAL_MS = 250;
const WINDOW_MS = 10_000;
const SLICES = 5;
const SLICE_MS = WINDOW_MS / SLICES;
const P95_RULE = (() => {
  const parsed = parseRule('ttfb_p95 <= 550ms', 20);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.rule;
})();

interface Sent {
  key: string;
  startedAt: number;
  endedAt: number;
  status: number;
  upstream: string;
  complete: boolean;
}

describe('SLO guard, end to end', () => {
  let stack: Stack;
  const agent = new Agent({ connections: 64, pipelining: 0 });

  beforeAll(async () => {
    stack = await startStack({
      legacy: { ttfb: 20, tokens: 4, tokenIntervalMs: 5 },
      next: { ttfb: { dist: 'uniform', min: 95, max: 105 }, tokens: 4, tokenIntervalMs: 5 },
      config: {
        rollout: { id: 'guard-e2e', weight: 10 },
        slo: {
          window: `${WINDOW_MS}ms`,
          slices: SLICES,
          interval: `${INTERVAL_MS}ms`,
          min_samples: 20,
          rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%'],
        },
      },
    });
  });
  afterAll(async () => {
    await agent.close();
    await stack.close();
  });

  async function send(key: string): Promise<Sent> {
    const startedAt = performance.now();
    const res = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'x-user-id': key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.body.text();
    return {
      key,
      startedAt,
      endedAt: performance.now(),
      status: res.statusCode,
      upstream: String(res.headers['x-mock-upstream']),
      complete: text.trimEnd().endsWith('data: [DONE]'),
    };
  }

  it('rolls back within interval + slice of the first breach; later requests go to legacy; no stream is cut', async () => {
    const sent: Sent[] = [];
    let running = true;
    let n = 0;
    const worker = async () => {
      while (running) sent.push(await send(`user-${n++}`));
    };
    const workers = Array.from({ length: 16 }, worker);

    // Healthy: new gathers enough fast samples to be judged, and passes.
    const newWindow = () => stack.veer.recorder.windows.new.snapshot();
    const guardView = () => ({
      legacy: stack.veer.recorder.sideView('legacy'),
      new: stack.veer.recorder.sideView('new'),
    });
    await waitFor(() => newWindow().ttfbSamples >= 60, 10_000);
    await waitFor(() => stack.veer.controller.lastVerdict?.rules.every((r) => r.status === 'pass') === true, 2_000);
    expect(stack.veer.table).toMatchObject({ state: 'progressing', weightBp: 1000 });

    // Degrade new at runtime, then watch the window (as the guard reads it) and the routing table.
    const degradedAt = performance.now();
    stack.next.set({ ttfb: 900 });
    let firstBreachAt = 0;
    let rolledBackAt = 0;
    await waitFor(
      () => {
        const now = performance.now();
        // As the guard reads it: requests still waiting past 550 ms count as samples at least that slow.
        if (!firstBreachAt && judgeRule(P95_RULE, guardView()).status === 'breach') firstBreachAt = now;
        if (stack.veer.table.state === 'rolled_back') rolledBackAt = now;
        return rolledBackAt > 0;
      },
      10_000,
      5,
    );
    // Keep sending after the flip, then let every stream in flight finish.
    await new Promise((r) => setTimeout(r, 1_000));
    running = false;
    await Promise.all(workers);

    const reactionMs = rolledBackAt - firstBreachAt;
    const sinceDegradationMs = rolledBackAt - degradedAt;
    console.log(
      `guard e2e: degradation → rollback ${sinceDegradationMs.toFixed(0)} ms; first breach in the window → rollback ${reactionMs.toFixed(0)} ms (interval ${INTERVAL_MS} ms, slice ${SLICE_MS} ms); ${sent.length} streams`,
    );
    expect(firstBreachAt).toBeGreaterThan(0);
    // A 25 ms allowance for the poll above (5 ms steps) and timer jitter on a busy machine.
    expect(reactionMs).toBeLessThanOrEqual(INTERVAL_MS + SLICE_MS + 25);
    expect(stack.veer.table.weightBp).toBe(0);

    const [entry] = stack.veer.audit.read(1);
    expect(entry).toMatchObject({ actor: 'slo-guard', action: 'rollback', after: { state: 'rolled_back' } });
    expect(entry!.rules?.find((r) => r.name === 'ttfb_p95')).toMatchObject({ status: 'breach' });

    // No stream was cut: every one answered 200 and ended with [DONE], including those on new at the flip.
    expect(sent.every((s) => s.status === 200 && s.complete)).toBe(true);
    const inFlightOnNew = sent.filter(
      (s) => s.upstream === 'new' && s.startedAt < rolledBackAt && s.endedAt > rolledBackAt,
    );
    expect(inFlightOnNew.length).toBeGreaterThan(0);
    // Every request that started after the flip went to legacy.
    const after = sent.filter((s) => s.startedAt > rolledBackAt);
    expect(after.length).toBeGreaterThan(50);
    expect(after.filter((s) => s.upstream !== 'legacy')).toEqual([]);
  });
});
