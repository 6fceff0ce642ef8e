// End to end: token rules judge real streams from real mock upstreams through a real veer; evaluation is driven by hand.

import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { MockOptions } from '../../bench/mock-upstream.js';
import type { Verdict } from '../../src/guard/evaluate.js';
import { deepMerge, memoryLogger, type Stack, startStack } from '../helpers/stack.js';

const MIN_SAMPLES = 20;

interface Answer {
  upstream: string;
  status: number;
  body: string;
}

describe('token rules, end to end', () => {
  let stack: Stack | undefined;
  const agent = new Agent({ connections: 32 });
  let key = 0;

  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  async function start(
    legacy: MockOptions,
    next: MockOptions,
    rules: string[],
    extra: Record<string, unknown> = {},
  ): Promise<Stack> {
    stack = await startStack({
      legacy: { ttfb: 5, tokens: 12, tokenIntervalMs: 8, ...legacy },
      next: { ttfb: 5, tokens: 12, tokenIntervalMs: 8, ...next },
      config: deepMerge(
        {
          rollout: { id: `tokens-${key}`, weight: 50 },
          // Evaluation is driven by tick() below, not by the timer.
          slo: { window: '10m', slices: 10, interval: '1h', min_samples: MIN_SAMPLES, cooldown: '0s', rules },
        },
        extra,
      ),
    });
    return stack;
  }

  /** One streamed chat completion, read to its end (or cut after its first chunk with `abort`). */
  async function send(s: Stack, abort = false): Promise<Answer> {
    const res = await request(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'x-user-id': `user-${key++}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const upstream = String(res.headers['x-mock-upstream']);
    if (abort) {
      for await (const _chunk of res.body) break;
      res.body.destroy();
      return { upstream, status: res.statusCode, body: '' };
    }
    return { upstream, status: res.statusCode, body: await res.body.text() };
  }

  /** Streams in batches of 10 until new has `n` streams judged (as the window counts them). */
  async function traffic(s: Stack, n: number, abortOnNew = false): Promise<Answer[]> {
    const out: Answer[] = [];
    const judged = () => s.veer.recorder.windows.new.snapshot().tokens.answers;
    for (let round = 0; judged() < n && round < 50; round++) {
      out.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => send(s, abortOnNew && i % 2 === 0)))));
    }
    return out;
  }

  /** Ticks until rolled back (at most `max`), returning the verdicts. */
  function evaluate(s: Stack, max: number): Verdict[] {
    const verdicts: Verdict[] = [];
    for (let i = 0; i < max && s.veer.table.state !== 'rolled_back'; i++) verdicts.push(s.veer.controller.tick());
    return verdicts;
  }

  it('rolls back new with the same TTFB and half the decode speed by tpot_p95 <= 1.3 x legacy, within two evaluations of min_samples', async () => {
    // Intervals long enough that a loaded machine's timer noise (a few ms) cannot close the gap.
    const s = await start({ tokenIntervalMs: 20 }, { tokenIntervalMs: 40 }, [
      // Both TTFBs are 5 ms at the mock; an absolute bound stays clear of a loaded machine's noise.
      'ttfb_p95 <= 500ms',
      'tpot_p95 <= 1.3 x legacy',
    ]);
    // Below min_samples the rule is inconclusive: no rollback.
    await Promise.all(Array.from({ length: 6 }, () => send(s)));
    const early = s.veer.controller.tick();
    expect(early.rules.find((r) => r.name === 'tpot_p95_vs_legacy')?.status).toBe('inconclusive');
    expect(s.veer.table.state).toBe('progressing');

    await traffic(s, MIN_SAMPLES);
    const windows = { legacy: s.veer.recorder.windows.legacy.snapshot(), new: s.veer.recorder.windows.new.snapshot() };
    expect(Math.min(windows.legacy.tokens.tpotSamples, windows.new.tokens.tpotSamples)).toBeGreaterThanOrEqual(
      MIN_SAMPLES,
    );
    const verdicts = evaluate(s, 2);
    expect(s.veer.table).toMatchObject({ state: 'rolled_back', weightBp: 0 });
    const last = verdicts.at(-1)!;
    expect(last.rules.find((r) => r.name === 'tpot_p95_vs_legacy')).toMatchObject({ status: 'breach', unit: 'ms' });
    // TTFB alone would not have caught it.
    expect(last.rules.find((r) => r.name === 'ttfb_p95')?.status).toBe('pass');
    const [entry] = s.veer.audit.read(1);
    expect(entry).toMatchObject({ actor: 'slo-guard', action: 'rollback' });
  });

  it('keeps a healthy new when legacy is noisy (jitter and stalls)', async () => {
    const s = await start(
      { tokenIntervalMs: 8, tokenJitterMs: 6, stallRate: 0.2, stallMs: 120 },
      { tokenIntervalMs: 8 },
      [
        'tpot_p95 <= 1.3 x legacy',
        'itl_p99 <= 250ms',
        'incomplete_rate <= legacy + 0.5%',
        'tokens_per_s_p5 >= 0.8 x legacy',
      ],
    );
    await traffic(s, MIN_SAMPLES * 2);
    const verdicts = evaluate(s, 5);
    expect(s.veer.table.state).toBe('progressing');
    expect(verdicts.at(-1)!.rules.map((r) => r.status)).toEqual(['pass', 'pass', 'pass', 'pass']);
  });

  it('rolls back a new that truncates streams (a clean end without [DONE]) by incomplete_rate', async () => {
    const { logger, lines } = memoryLogger();
    stack = undefined;
    const s = await startStack({
      legacy: { ttfb: 5, tokens: 8, tokenIntervalMs: 4 },
      next: { ttfb: 5, tokens: 8, tokenIntervalMs: 4, truncateRate: 0.5 },
      logger,
      config: {
        rollout: { id: 'tokens-truncate', weight: 50 },
        slo: { window: '10m', interval: '1h', min_samples: MIN_SAMPLES, rules: ['incomplete_rate <= legacy + 0.5%'] },
        log: { level: 'info', access: true },
      },
    });
    stack = s;
    // A relative rate rule breaches on evidence: enough answers that new's lower bound clears legacy's upper.
    const answers = await traffic(s, 3 * MIN_SAMPLES);
    // The client saw 200s that ended early: no error status anywhere.
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.some((a) => a.upstream === 'new' && !a.body.includes('[DONE]'))).toBe(true);
    evaluate(s, 2);
    expect(s.veer.table.state).toBe('rolled_back');
    const access = lines().filter((l) => l.msg === 'request');
    const truncated = access.find((l) => l.end === 'truncated');
    expect(truncated).toMatchObject({ upstream: 'new', outcome: 'ok', token_events: 4 });
    expect(access.find((l) => l.end === 'complete')).toMatchObject({ events: 10, token_events: 8 });
    expect(typeof access.find((l) => l.end === 'complete')?.tpot_ms).toBe('number');
  });

  it('rolls back a new that sends in-band errors, by inband_error_rate and by error_rate', async () => {
    const s = await start({}, { inbandErrorRate: 0.5 }, ['inband_error_rate <= 0.5%', 'error_rate <= 1%']);
    // Rates breach on evidence: enough answers that new's lower bound clears 1 % whatever the draw.
    await traffic(s, 2 * MIN_SAMPLES);
    const verdicts = evaluate(s, 2);
    expect(s.veer.table.state).toBe('rolled_back');
    expect(verdicts.at(-1)!.rules.map((r) => r.status)).toEqual(['breach', 'breach']);
    const metrics = await (await fetch(`${s.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/veer_answer_ends_total\{upstream="new",end="inband_error"\} [1-9]/);
  });

  it('never counts a client abort against new', async () => {
    // 20 ms between tokens: a loaded machine's timer noise stays well inside 1.3 x.
    const s = await start({ tokenIntervalMs: 20 }, { tokenIntervalMs: 20 }, [
      'incomplete_rate <= 0.5%',
      'error_rate <= 1%',
      'tpot_p95 <= 1.3 x legacy',
    ]);
    // Half the streams are cut by their clients, on both sides: twice the answers for min_samples of timed streams.
    await traffic(s, 2 * MIN_SAMPLES, true);
    const w = s.veer.recorder.windows.new.snapshot();
    expect(w.tokens.ends.client_abort).toBeGreaterThan(0);
    expect(w.tokens.incomplete.failures).toBe(0);
    const verdicts = evaluate(s, 3);
    expect(s.veer.table.state).toBe('progressing');
    expect(verdicts.at(-1)!.rules.map((r) => r.status)).toEqual(['pass', 'pass', 'pass']);
  });

  it('below min_samples token rules are inconclusive and never promote', async () => {
    const s = await start({}, { tokenIntervalMs: 4 }, ['tpot_p95 <= 1.3 x legacy', 'incomplete_rate <= 1%'], {
      rollout: { id: 'tokens-gate', weight: 10, steps: [10, 50], step_min_duration: '0s', auto_promote: true },
      slo: { min_samples: 1000 },
    });
    await traffic(s, 30);
    const verdicts = [s.veer.controller.tick(), s.veer.controller.tick(), s.veer.controller.tick()];
    for (const v of verdicts) {
      expect(v.rules.map((r) => r.status)).toEqual(['inconclusive', 'inconclusive']);
      expect(v.action.kind).not.toBe('promote');
    }
    expect(s.veer.table).toMatchObject({ state: 'progressing', weightBp: 1000 });
  });
});
